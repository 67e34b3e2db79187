"""Closed-form checks of the EDM and consistency-model preconditioning (Karras 2022; Song 2023)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cmtutor.core.noise import NoiseConfig
from cmtutor.core.precond import Preconditioned, c_noise, cm_scalings, edm_scalings
from cmtutor.nets.mlp import MLP, MLPConfig

SIGMAS = torch.tensor([0.002, 0.01, 0.1, 0.5, 1.0, 3.0, 10.0, 80.0], dtype=torch.float64)


@pytest.mark.parametrize("sd", [0.5, 1.0])
def test_edm_scalings_closed_form(sd: float) -> None:
    c_skip, c_out, c_in = edm_scalings(SIGMAS, sd)
    for s, a, b, c in zip(SIGMAS.tolist(), c_skip.tolist(), c_out.tolist(), c_in.tolist()):
        assert a == pytest.approx(sd**2 / (s**2 + sd**2), rel=1e-12)
        assert b == pytest.approx(s * sd / math.sqrt(s**2 + sd**2), rel=1e-12)
        assert c == pytest.approx(1 / math.sqrt(s**2 + sd**2), rel=1e-12)  # with the square root


def test_c_in_has_the_square_root() -> None:
    """c_in·x has unit variance when x ~ N(0, (σ² + σ_d²)I): the bug without √ fails this."""
    sd = 0.5
    for s in (0.1, 1.0, 80.0):
        _, _, c_in = edm_scalings(torch.tensor(s, dtype=torch.float64), sd)
        assert float(c_in**2 * (s**2 + sd**2)) == pytest.approx(1.0, rel=1e-12)
        _, _, c_in_cm = cm_scalings(torch.tensor(s, dtype=torch.float64), sd, 0.002)
        assert float(c_in_cm**2 * (s**2 + sd**2)) == pytest.approx(1.0, rel=1e-12)


def test_edm_variance_identity() -> None:
    """EDM's design rule: the effective training target (x0 − c_skip·(x0 + σn))/c_out has unit variance
    when Var[x0] = σ_d² (Karras et al. 2022, App. B.6)."""
    sd = 0.5
    c_skip, c_out, _ = edm_scalings(SIGMAS, sd)
    lhs = ((1 - c_skip) ** 2 * sd**2 + c_skip**2 * SIGMAS**2) / c_out**2
    assert torch.allclose(lhs, torch.ones_like(lhs), rtol=1e-10)


def test_cm_boundary_scalings() -> None:
    sd, eps = 0.5, 0.002
    c_skip, c_out, _ = cm_scalings(torch.tensor(eps, dtype=torch.float64), sd, eps)
    assert float(c_skip) == 1.0
    assert float(c_out) == 0.0
    c_skip, c_out, _ = cm_scalings(SIGMAS, sd, eps)
    expect_skip = sd**2 / ((SIGMAS - eps) ** 2 + sd**2)
    expect_out = sd * (SIGMAS - eps) / torch.sqrt(SIGMAS**2 + sd**2)
    assert torch.allclose(c_skip, expect_skip) and torch.allclose(c_out, expect_out)
    # far from the boundary the CM scalings approach the EDM ones
    e_skip, e_out, _ = edm_scalings(torch.tensor(80.0, dtype=torch.float64), sd)
    c80 = cm_scalings(torch.tensor(80.0, dtype=torch.float64), sd, eps)
    assert float(c80[0]) == pytest.approx(float(e_skip), rel=1e-3)
    assert float(c80[1]) == pytest.approx(float(e_out), rel=1e-3)


def test_c_noise_is_quarter_log() -> None:
    assert torch.allclose(c_noise(SIGMAS), 0.25 * torch.log(SIGMAS))


class _Wild(nn.Module):
    """A 'network' with large arbitrary output, to show the boundary holds for any F."""

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return 1e3 * torch.sin(7 * x) + c[:, None] * 50


def test_boundary_condition_exact_for_any_network() -> None:
    noise = NoiseConfig(sigma_min=0.002, sigma_max=80.0, sigma_data=0.5)
    for net in (_Wild(), MLP(MLPConfig(dim=2))):
        f = Preconditioned(net, noise, "cm")
        x = torch.randn(64, 2)
        out = f(x, torch.full((64,), noise.sigma_min))
        assert torch.equal(out, x)  # exactly, not approximately


def test_edm_denoiser_is_not_exact_at_sigma_min() -> None:
    """EDM scalings give D(x, ε) ≈ x only approximately (why CMs use the shifted scalings)."""
    noise = NoiseConfig()
    d = Preconditioned(_Wild(), noise, "edm")
    x = torch.randn(16, 2)
    assert not torch.equal(d(x, torch.full((16,), noise.sigma_min)), x)


def test_preconditioned_broadcasts_images_and_scalars() -> None:
    class Echo(nn.Module):
        def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            return x

    f = Preconditioned(Echo(), NoiseConfig(), "edm")
    x = torch.randn(3, 1, 4, 4)
    s = torch.tensor([0.1, 1.0, 10.0])
    c_skip, c_out, c_in = edm_scalings(s, 0.5)
    expect = c_skip[:, None, None, None] * x + c_out[:, None, None, None] * c_in[:, None, None, None] * x
    assert torch.allclose(f(x, s), expect, atol=1e-6)
    assert torch.allclose(f(x, 1.0), f(x, torch.ones(3)))


def test_unknown_parameterization() -> None:
    with pytest.raises(ValueError):
        Preconditioned(_Wild(), NoiseConfig(), "vp")  # type: ignore[arg-type]
