"""Distances and the two training losses every method is built from.

* :func:`denoising_loss`: the EDM diffusion loss (Karras et al. 2022, Eq. 2 with the λ of Table 1).
* :func:`consistency_loss`: the one consistency step shared by CD, CT, iCT, GC, OT, TCM and Direct CM:
  ``mean( λ · d(f_θ(x_hi, σ_hi), target) )``. A method only decides how (σ_hi, σ_lo) are drawn, where the
  clean endpoint comes from, which network gives the target, and the distance and weighting.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

Distance = Callable[[Tensor, Tensor], Tensor]


def _flat_sq(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).flatten(1).pow(2).sum(1)


def squared_l2(a: Tensor, b: Tensor) -> Tensor:
    """Per-sample mean squared error ‖a − b‖²/D (the CM paper's "L2", a mean of squares)."""
    return (a - b).flatten(1).pow(2).mean(1)


def pseudo_huber_constant(dim: int) -> float:
    """c = 0.00054·√D (iCT, Section 3.3): c ≈ 0.03 for CIFAR-10 (D = 3072)."""
    return 0.00054 * math.sqrt(dim)


def pseudo_huber(a: Tensor, b: Tensor, c: float | None = None) -> Tensor:
    """Per-sample pseudo-Huber distance √(‖a − b‖₂² + c²) − c (iCT Eq. 9), on the flattened vector.

    ``c=None`` uses :func:`pseudo_huber_constant` of the sample dimension.
    """
    if c is None:
        c = pseudo_huber_constant(a[0].numel())
    return torch.sqrt(_flat_sq(a, b) + c * c) - c


#: The distances a consistency method can use (``hp.distance``).
DistanceName = Literal["l2", "pseudo_huber"]


def get_distance(name: str, dim: int) -> Distance:
    """``"l2"`` (mean of squares) or ``"pseudo_huber"`` (with c = 0.00054·√dim)."""
    if name == "l2":
        return squared_l2
    if name == "pseudo_huber":
        c = pseudo_huber_constant(dim)
        return lambda a, b: pseudo_huber(a, b, c)
    raise ValueError(f"unknown distance {name!r}; expected 'l2' or 'pseudo_huber'")


def edm_loss_weight(sigma: Tensor, sigma_data: float) -> Tensor:
    """λ(σ) = (σ² + σ_d²)/(σ·σ_d)² (EDM, Table 1): makes the effective network target unit-variance."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def denoising_loss(denoiser: nn.Module, x: Tensor, sigma: Tensor, noise: Tensor, sigma_data: float) -> Tensor:
    """EDM denoising loss E[λ(σ)·‖D_θ(x + σn, σ) − x‖²] (Karras et al. 2022, Eq. 2), per-dimension mean."""
    sig = sigma.reshape(-1, *([1] * (x.ndim - 1)))
    denoised = denoiser(x + sig * noise, sigma)
    return (edm_loss_weight(sigma, sigma_data) * squared_l2(denoised, x)).mean()


def consistency_loss(model: nn.Module, x_hi: Tensor, sigma_hi: Tensor, target: Tensor, weight: Tensor,
                     distance: Distance) -> Tensor:
    """The shared consistency step: mean over the batch of λ · d(f_θ(x_hi, σ_hi), target).

    ``target`` must already be detached (sg(·)): it comes from the EMA or online network at the smaller
    noise level, a frozen boundary model, or a teacher's ODE solution, depending on the method.
    """
    if target.requires_grad:
        raise ValueError("the consistency target must be computed without gradients (stop-gradient)")
    return (weight * distance(model(x_hi, sigma_hi), target)).mean()
