"""Closed-form checks of the grids, curricula and pair distributions (CM 2023, iCT 2023)."""

from __future__ import annotations

import math

import pytest
import torch

from cmtutor.core.schedules import (
    ct_num_scales,
    ct_target_ema,
    ict_num_scales,
    ict_stage_length,
    karras_sigmas,
    lognormal_pair_probs,
)


def test_karras_grid_endpoints_and_formula() -> None:
    s = karras_sigmas(18, 0.002, 80.0, 7.0)
    assert s[0].item() == pytest.approx(0.002, rel=1e-12)
    assert s[-1].item() == pytest.approx(80.0, rel=1e-12)
    assert torch.all(s[1:] > s[:-1])  # ascending
    i = 5
    expect = (0.002 ** (1 / 7) + i / 17 * (80 ** (1 / 7) - 0.002 ** (1 / 7))) ** 7
    assert s[i].item() == pytest.approx(expect, rel=1e-12)
    with pytest.raises(ValueError):
        karras_sigmas(1, 0.002, 80.0)


def test_ct_adaptive_num_scales() -> None:
    K = 800_000
    assert ct_num_scales(0, K, 2, 150) == 2  # N(0) = s0
    assert ct_num_scales(K, K, 2, 150) == 151  # N(K) = s1 + 1
    # the √ growth: at k/K = 1/2, N = ⌈√(0.5·(151² − 4) + 4) − 1⌉ + 1
    assert ct_num_scales(K // 2, K, 2, 150) == math.ceil(math.sqrt(0.5 * (151**2 - 4) + 4) - 1) + 1
    ns = [ct_num_scales(k, K, 2, 150) for k in range(0, K + 1, 10_000)]
    assert ns == sorted(ns)  # monotone


def test_ct_target_ema() -> None:
    assert ct_target_ema(0, 1000, 2, 150, 0.9) == pytest.approx(0.9)  # μ(0) = μ0
    last = ct_target_ema(1000, 1000, 2, 150, 0.9)
    assert last == pytest.approx(math.exp(2 * math.log(0.9) / 151))
    assert last > 0.998


def test_ict_curriculum_reaches_s1_on_schedule() -> None:
    K, s0, s1 = 400_000, 10, 1280
    kp = ict_stage_length(K, s0, s1)
    assert kp == K // 8  # log2(1280/10) + 1 = 8 stages
    assert ict_num_scales(0, K, s0, s1) == 11
    assert ict_num_scales(kp - 1, K, s0, s1) == 11
    assert ict_num_scales(kp, K, s0, s1) == 21  # doubles exactly at K'
    assert ict_num_scales(7 * kp - 1, K, s0, s1) == 641  # not yet at s1 one step before
    assert ict_num_scales(7 * kp, K, s0, s1) == 1281  # s1 + 1 reached on time
    assert ict_num_scales(K, K, s0, s1) == 1281  # and capped


def test_lognormal_pair_probs_match_erf_and_mean() -> None:
    sig = karras_sigmas(200, 0.002, 80.0, 7.0)
    p = lognormal_pair_probs(sig, -1.1, 2.0)
    assert p.sum().item() == pytest.approx(1.0, abs=1e-12)
    i = 100
    erf = lambda s: math.erf((math.log(s) - (-1.1)) / (math.sqrt(2) * 2.0))  # noqa: E731
    unnorm = erf(sig[i + 1].item()) - erf(sig[i].item())
    total = erf(80.0) - erf(0.002)
    assert p[i].item() == pytest.approx(unnorm / total, rel=1e-9)
    # with a fine grid, the mean of ln σ under p is close to P_mean = −1.1 (truncation shifts it a bit)
    mid = 0.5 * (torch.log(sig[1:]) + torch.log(sig[:-1]))
    mean = float((p * mid).sum())
    assert mean == pytest.approx(-1.1, abs=0.15)
    # the sign pitfall: +1.1 would put the mean on the other side
    p_wrong = lognormal_pair_probs(sig, +1.1, 2.0)
    assert float((p_wrong * mid).sum()) > 0.5
