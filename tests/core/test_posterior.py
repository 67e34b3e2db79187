"""The empirical posterior and ideal denoiser against closed forms."""

from __future__ import annotations

import pytest
import torch

from cmtutor.core.posterior import IdealDenoiser, posterior_variance, posterior_weights, sample_posterior
from cmtutor.core.solvers import ode_step


def _two_points() -> torch.Tensor:
    return torch.tensor([[-1.0, 0.0], [1.0, 0.5]], dtype=torch.float64)


def test_two_point_posterior_is_a_logistic() -> None:
    """p(a | x) = σ((‖x − b‖² − ‖x − a‖²)/(2σ²)) for data {a, b}."""
    data = _two_points()
    x = torch.randn(50, 2, dtype=torch.float64)
    s = 0.7
    a, b = data
    expected = torch.sigmoid((((x - b) ** 2).sum(1) - ((x - a) ** 2).sum(1)) / (2 * s * s))
    w = posterior_weights(x, s, data)
    assert torch.allclose(w[:, 0], expected, atol=1e-12)
    assert torch.allclose(w.sum(1), torch.ones(50, dtype=torch.float64))
    # the mean and the variance of a two-point posterior: p·a + (1−p)·b and p(1−p)‖a − b‖²
    assert torch.allclose(IdealDenoiser(data)(x, s), expected[:, None] * a + (1 - expected[:, None]) * b)
    assert torch.allclose(posterior_variance(x, s, data), expected * (1 - expected) * ((a - b) ** 2).sum())


def test_per_row_sigma_matches_scalar_sigma() -> None:
    data = torch.randn(100, 2, dtype=torch.float64)
    x = torch.randn(7, 2, dtype=torch.float64)
    sig = torch.linspace(0.1, 2.0, 7, dtype=torch.float64)
    per_row = IdealDenoiser(data, chunk=3)(x, sig)
    one_by_one = torch.cat([IdealDenoiser(data)(x[i:i + 1], float(sig[i])) for i in range(7)])
    assert torch.allclose(per_row, one_by_one)


def test_ideal_denoiser_of_gaussian_data_shrinks_towards_the_mean() -> None:
    """For x₀ ~ N(0, s²I) the posterior mean is s²/(s² + σ²)·x (up to sampling error of the data set)."""
    g = torch.Generator().manual_seed(0)
    s = 0.5
    data = s * torch.randn(40_000, 2, generator=g, dtype=torch.float64)
    x = torch.tensor([[0.3, -0.2], [0.8, 0.4], [-0.5, 0.1]], dtype=torch.float64)
    for sigma in (0.3, 1.0):
        got = IdealDenoiser(data)(x, sigma)
        assert torch.allclose(got, s * s / (s * s + sigma * sigma) * x, atol=0.02)
        assert torch.allclose(posterior_variance(x, sigma, data),
                              torch.full((3,), 2 * s * s * sigma * sigma / (s * s + sigma * sigma),
                                         dtype=torch.float64), rtol=0.05)


def test_small_sigma_denoises_to_the_nearest_point_and_the_ode_memorises() -> None:
    data = _two_points()
    x = torch.tensor([[-0.9, 0.1], [0.7, 0.3]], dtype=torch.float64)
    assert torch.allclose(IdealDenoiser(data)(x, 0.01), data)
    # a PF-ODE step with the ideal denoiser at tiny σ moves straight to the nearest data point
    assert torch.allclose(ode_step(IdealDenoiser(data), x, 0.01, 0.0, "euler"), data)


def test_posterior_samples_follow_the_weights() -> None:
    data = _two_points()
    x = torch.tensor([0.2, 0.1], dtype=torch.float64)
    p = posterior_weights(x[None], 0.8, data)[0]
    draws = sample_posterior(x, 0.8, data, 20_000, torch.Generator().manual_seed(1))
    frac_a = (draws[:, 0] < 0).double().mean()
    assert abs(float(frac_a - p[0])) < 0.015
    with pytest.raises(ValueError):
        sample_posterior(x[None], 0.8, data, 10)
