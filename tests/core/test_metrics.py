"""Metrics against brute force and known values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from cmtutor.core.metrics import mmd, ode_error, ratio_se, sliced_w2, transport_cost, vector_metrics, w2_exact, w2_floor


def test_w2_exact_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    best = min(((a - b[list(p)]) ** 2).sum(1).mean() for p in itertools.permutations(range(6)))
    assert w2_exact(a, b) == pytest.approx(math.sqrt(best))
    assert w2_exact(a, a[::-1]) == pytest.approx(0.0, abs=1e-12)  # a permutation costs nothing
    assert w2_exact(a, a + [3.0, 4.0]) == pytest.approx(5.0)  # a translation costs its length


def test_sliced_is_below_exact_and_mmd_separates() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 2)), rng.normal(size=(300, 2)) + 1.0
    assert sliced_w2(a, b) <= w2_exact(a, b) + 1e-9
    same = mmd(a, rng.normal(size=(300, 2)))
    diff = mmd(a, b)
    assert abs(same) < 0.02 and diff > 10 * abs(same)


def test_floor_and_report() -> None:
    rng = np.random.default_rng(2)
    data = rng.normal(size=(5000, 2))
    floor = w2_floor(data, 1000)
    assert 0.05 < floor < 0.5
    rep = vector_metrics(rng.normal(size=(2000, 2)), data)
    assert rep["w2_ratio"] == pytest.approx(1.0, abs=0.25)  # a perfect model sits at the floor
    bad = vector_metrics(rng.normal(size=(2000, 2)) * 2, data)
    assert bad["w2_ratio"] > 3


def _thin_rings(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    r = np.where(rng.uniform(size=n) < 0.5, 1.0, 2.0)
    t = rng.uniform(0, 2 * np.pi, n)
    return (np.stack([r * np.cos(t), r * np.sin(t)], 1) + 0.08 * rng.standard_normal((n, 2))) / 1.6


def test_ratio_of_data_to_itself_is_one_within_its_error() -> None:
    """On thin rings one W2 draw varies by about ±15%: averaged over many draws, samples from the data
    distribution itself score 1 within a few standard errors, and the reported error is of that size."""
    heldout, fresh = _thin_rings(2000, 0), _thin_rings(2000, 1)
    rep = vector_metrics(fresh, heldout, n=400, repeats=20)
    assert rep["repeats"] == 20
    assert 0.01 < rep["w2_ratio_se"] < 0.15
    assert abs(rep["w2_ratio"] - 1.0) < 3 * rep["w2_ratio_se"]
    wide = vector_metrics(_thin_rings(2000, 2) * 1.15, heldout, n=400, repeats=20)
    assert wide["w2_ratio"] - 1.0 > 3 * wide["w2_ratio_se"]  # rings 15% too large are told apart


def test_ratio_se_delta_method() -> None:
    assert ratio_se([2.0], [1.0]) == 0.0  # one draw: no error estimate
    num, den = [1.0, 3.0], [2.0, 2.0]  # se(num) = √2/√2 = 1 on a mean of 2; den has no spread
    assert ratio_se(num, den) == pytest.approx(1.0 * 1 / 2)


def test_transport_cost_and_ode_error() -> None:
    x = np.zeros((4, 3))
    z = np.ones((4, 3))
    assert transport_cost(x, z) == pytest.approx(3.0)
    assert ode_error(x, z) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        ode_error(x, z[:2])
