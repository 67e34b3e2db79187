"""The image defaults that fit a short CPU budget as well as the papers' runs (docs/defaults.md):
CD's squared L2, its share of the teacher's rate and its 1/Δσ weights, CT's target EMA scaled to the run, TCM's
stage 2 at half the learning rate, the photos teacher's noise levels drawn higher (EDM2's P_mean)."""

from __future__ import annotations

import math

import pytest
import torch

from cmtutor.config import default_config
from cmtutor.core.noise import IMAGE_NOISE
from cmtutor.core.schedules import lognormal_sigmas
from cmtutor.methods import get_method


@pytest.mark.parametrize("data", ["digits", "cifar10"])
def test_cd_on_images_uses_squared_l2(data: str) -> None:
    assert default_config("cd", data).hp["distance"] == "l2"


def _time_constants(steps: int, horizon: int) -> list[float]:
    cfg = default_config("ct", "cifar10", steps=steps, hp={"target_horizon": horizon})
    ct = get_method("ct")(cfg.hp, IMAGE_NOISE, steps, 3 * 32 * 32)
    return [-1.0 / math.log(ct.target_decay(k)) for k in range(0, steps, max(1, steps // 50))]


@pytest.mark.parametrize("data", ["digits", "photos", "cifar10"])
def test_cd_trains_at_the_papers_share_of_its_teachers_rate(data: str) -> None:
    # CIFAR-10: CD 4e-4 (Song et al. 2023) against EDM's 1e-3; the small images had trained CD at its teacher's rate
    cd, teacher = default_config("cd", data).lr, default_config("diffusion", data).lr
    assert cd == pytest.approx(0.4 * teacher)


def test_cd_weighs_its_pairs_by_inverse_gap_on_the_small_images_only() -> None:
    """iCT's λ = 1/Δσ on the digits and photos, measured against the papers' uniform weight
    (docs/defaults.md#cds-weighting-on-the-small-images); CIFAR-10 and 2D keep Song et al. 2023's λ = 1."""
    for data in ("digits", "photos"):
        assert default_config("cd", data).hp["weighting"] == "inv_delta"
        assert default_config("cd", data, hp={"weighting": "uniform"}).hp["weighting"] == "uniform"  # a user's wins
    for data in ("cifar10", "moons"):
        assert default_config("cd", data).hp["weighting"] == "uniform"
    assert "weighting" not in default_config("direct", "digits").hp  # Direct CM, a CD subclass, keeps λ = 1
    assert default_config("cd", "digits").hp["distance"] == "l2"  # the rest of CD's image hp is kept


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


def test_photos_teacher_trains_its_high_noise_levels_more() -> None:
    """The photos teacher draws σ ≥ 1 for Φ(P_mean/P_std) of its examples: 37 % with EDM2's −0.4, against
    16 % with EDM's −1.2, which the digits and CIFAR-10 keep
    (docs/defaults.md#the-photos-teacher-trains-its-high-noise-levels-more)."""
    def high_share(hp: dict[str, float]) -> tuple[float, float]:
        closed = 0.5 * (1.0 + math.erf(hp["p_mean"] / (hp["p_std"] * math.sqrt(2.0))))
        drawn = lognormal_sigmas(200_000, hp["p_mean"], hp["p_std"], generator=torch.Generator().manual_seed(0))
        return closed, float((drawn >= 1.0).double().mean())

    photos = default_config("diffusion", "photos").hp
    assert photos["p_mean"] == -0.4 and photos["p_std"] == 1.2
    closed, drawn = high_share(photos)
    assert closed == pytest.approx(0.3694, abs=1e-4) and drawn == pytest.approx(closed, abs=0.005)
    for data in ("digits", "cifar10"):
        edm = default_config("diffusion", data).hp
        assert (edm["p_mean"], edm["p_std"]) == (-1.2, 1.2)
        assert high_share(edm)[0] == pytest.approx(0.1587, abs=1e-4)
    # only the photos teacher: its students keep their own settings, and a user's setting still wins
    assert default_config("cd", "photos").hp == default_config("cd", "digits").hp
    assert default_config("diffusion", "photos", hp={"p_mean": -1.2}).hp["p_mean"] == -1.2
