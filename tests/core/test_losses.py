"""Distances and losses in closed form."""

from __future__ import annotations

import math

import pytest
import torch

from cmtutor.core.losses import (
    consistency_loss,
    denoising_loss,
    edm_loss_weight,
    get_distance,
    pseudo_huber,
    pseudo_huber_constant,
    squared_l2,
)


def test_pseudo_huber_constant() -> None:
    assert pseudo_huber_constant(3072) == pytest.approx(0.00054 * math.sqrt(3072))
    assert pseudo_huber_constant(3072) == pytest.approx(0.0299, abs=1e-4)  # the CIFAR-10 value
    assert pseudo_huber_constant(2) == pytest.approx(0.00054 * math.sqrt(2))


def test_pseudo_huber_closed_form_and_limits() -> None:
    a = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    b = torch.zeros(2, 2)
    c = 0.5
    d = pseudo_huber(a, b, c)
    assert d[0].item() == pytest.approx(math.sqrt(25 + 0.25) - 0.5)
    assert d[1].item() == 0.0
    # small errors: ≈ ‖δ‖²/(2c) (quadratic); large errors: ≈ ‖δ‖ − c (linear)
    small = torch.tensor([[1e-3, 0.0]], dtype=torch.float64)
    assert pseudo_huber(small, torch.zeros(1, 2, dtype=torch.float64), 1.0).item() == pytest.approx(1e-6 / 2, rel=1e-3)
    big = torch.tensor([[1e3, 0.0]])
    assert pseudo_huber(big, torch.zeros(1, 2), 1.0).item() == pytest.approx(1e3 - 1.0, rel=1e-6)
    # default c from the dimension
    x = torch.randn(4, 3, 8, 8)
    assert torch.allclose(pseudo_huber(x, 0 * x), pseudo_huber(x, 0 * x, pseudo_huber_constant(192)))


def test_squared_l2_is_mean_of_squares() -> None:
    a = torch.tensor([[1.0, 3.0]])
    assert squared_l2(a, torch.zeros_like(a)).item() == pytest.approx(5.0)
    assert get_distance("l2", 2) is squared_l2
    with pytest.raises(ValueError):
        get_distance("lpips", 2)


def test_edm_weight() -> None:
    s = torch.tensor([0.5, 2.0])
    assert torch.allclose(edm_loss_weight(s, 0.5), (s**2 + 0.25) / (s * 0.5) ** 2)


def test_denoising_loss_of_a_perfect_denoiser_is_zero() -> None:
    x = torch.randn(8, 2)
    perfect = lambda xn, s: x  # noqa: E731
    assert denoising_loss(perfect, x, torch.ones(8), torch.randn(8, 2), 0.5).item() == 0.0


def test_consistency_loss_refuses_a_target_with_gradients() -> None:
    model = torch.nn.Linear(2, 2)
    f = lambda x, s: model(x)  # noqa: E731
    x = torch.randn(4, 2)
    target = model(x)  # has grad
    with pytest.raises(ValueError):
        consistency_loss(f, x, torch.ones(4), target, torch.ones(4), squared_l2)
    loss = consistency_loss(f, x, torch.ones(4), target.detach(), 2 * torch.ones(4), squared_l2)
    assert loss.item() == pytest.approx(0.0)
