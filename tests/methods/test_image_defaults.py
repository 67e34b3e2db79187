"""The image defaults that fit a short CPU budget as well as the papers' runs (docs/defaults.md):
CD's squared L2, CT's target EMA scaled to the run, TCM's stage 2 at half the learning rate."""

from __future__ import annotations

import math

import pytest

from cmtutor.config import default_config
from cmtutor.core.noise import IMAGE_NOISE
from cmtutor.methods import get_method


@pytest.mark.parametrize("data", ["digits", "cifar10"])
def test_cd_on_images_uses_squared_l2(data: str) -> None:
    assert default_config("cd", data).hp["distance"] == "l2"


def _time_constants(steps: int, horizon: int) -> list[float]:
    cfg = default_config("ct", "cifar10", steps=steps, hp={"target_horizon": horizon})
    ct = get_method("ct")(cfg.hp, IMAGE_NOISE, steps, 3 * 32 * 32)
    return [-1.0 / math.log(ct.target_decay(k)) for k in range(0, steps, max(1, steps // 50))]


def test_ct_target_time_constant_is_the_same_share_of_any_run() -> None:
    assert default_config("ct", "cifar10").hp["target_horizon"] == 800_000  # Song et al. 2023's CIFAR-10 run
    paper = _time_constants(800_000, 0)  # μ(k) as written, over the paper's run
    short = _time_constants(3000, 800_000)
    assert max(paper) == pytest.approx(712, rel=0.005)  # μ(k) = exp(s0 ln μ0 / N(k)) at N = 150: 712 steps
    for p, s in zip(paper, short):
        assert s / 3000 == pytest.approx(p / 800_000, rel=1e-6)
    unscaled = _time_constants(3000, 0)
    assert max(unscaled) / 3000 > 0.2  # the collapse: θ⁻ lagged by up to a quarter of a 3000-step run
    assert _time_constants(10**6, 800_000) == _time_constants(10**6, 0)  # longer runs: μ(k) as written


@pytest.mark.parametrize("data", ["digits", "cifar10"])
def test_tcm_stage_two_trains_at_half_the_stage_one_rate(data: str) -> None:
    assert default_config("tcm", data).lr == pytest.approx(default_config("ict", data).lr / 2)
