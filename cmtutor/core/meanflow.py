"""MeanFlow (Geng et al. 2025, "Mean flows for one-step generative modeling"): the average velocity and its
identity, the paper's Eqs. 3–10, one function each so that the tests check them in closed form.

Flow matching's path is z_t = (1 − t)·x + t·ε, t ∈ [0, 1], with the conditional velocity v = ε − x. MeanFlow
learns the *average* velocity over an interval,

    u(z_t, r, t) = 1/(t − r) ∫_r^t v(z_τ, τ) dτ,   so that   z_r = z_t − (t − r)·u(z_t, r, t),

and one step from noise is z₀ = ε − u(ε, 0, 1). Differentiating (t − r)·u in t gives the MeanFlow identity (Eq. 6)

    u(z_t, r, t) = v(z_t, t) − (t − r)·d/dt u(z_t, r, t),   d/dt u = v·∂_z u + ∂_t u,

whose right-hand side, with v replaced by its one-sample estimate ε − x and u by sg(u_θ), is the regression
target (Eq. 10). d/dt u is one JVP with the tangent (v, 0, 1) for (z, r, t) (:mod:`cmtutor.core.jvp`).

The path is the course's VE process in other coordinates: z_t = x_σ/(1 + σ) with t = σ/(1 + σ); a logit-normal t
is a lognormal σ (``cmtutor.nets.flow_models.MeanFlowModel`` keeps the σ-interface of every cmtutor model).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from cmtutor.core.jvp import JvpMode, jvp
from cmtutor.core.trigflow import expand_like


def time_of_sigma(sigma: Tensor | float) -> Tensor | float:
    """t = σ/(1 + σ): the flow time of the VE level σ."""
    return sigma / (1 + sigma)


def sigma_of_time(t: Tensor | float) -> Tensor | float:
    """σ = t/(1 − t): the VE level of flow time t."""
    return t / (1 - t)


def interpolate(x: Tensor, eps: Tensor, t: Tensor) -> Tensor:
    """z_t = (1 − t)·x + t·ε (Eq. 1)."""
    tt = expand_like(t, x)
    return (1 - tt) * x + tt * eps


def meanflow_target(v: Tensor, du_dt: Tensor, t: Tensor, r: Tensor) -> Tensor:
    """u_tgt = v − (t − r)·du/dt, the right-hand side of the MeanFlow identity (Eqs. 6 and 10)."""
    return v - expand_like(t - r, v) * du_dt


def identity_target(average_velocity: Callable[[Tensor, Tensor, Tensor], Tensor], z: Tensor, r: Tensor, t: Tensor,
                    v: Tensor, mode: JvpMode = "exact") -> Tensor:
    """u_tgt = v − (t − r)·du/dt for a network u(z, r, t): du/dt is one JVP with the tangent (v, 0, 1) (Eq. 8).

    The tangent of r is 0 (r is held fixed while t moves) and that of t is 1; v is the velocity along which z moves.
    """
    _, du_dt = jvp(average_velocity, (z, r, t), (v, torch.zeros_like(r), torch.ones_like(t)), mode=mode)
    return meanflow_target(v, du_dt, t, r)


def sample_times(batch: int, p_mean: float, p_std: float, ratio: float, t_min: float, t_max: float,
                 device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """(t, r): two logit-normal draws sorted so that r ≤ t; a fraction 1 − ``ratio`` gets r = t (Sec. 4.3).

    r = t is plain flow matching (the identity gives u = v); ``ratio`` is the paper's "ratio of r ≠ t".
    Both are clamped to [t_min, t_max], the course's [σ_min, σ_max] in flow time.
    """
    a = torch.sigmoid(torch.randn(batch, device=device) * p_std + p_mean)
    b = torch.sigmoid(torch.randn(batch, device=device) * p_std + p_mean)
    t, r = torch.maximum(a, b), torch.minimum(a, b)
    same = torch.rand(batch, device=device) >= ratio
    r = torch.where(same, t, r)
    return t.clamp(t_min, t_max), r.clamp(t_min, t_max)


def adaptive_loss(error: Tensor, power: float, c: float = 1e-3) -> Tensor:
    """The per-sample loss ‖Δ‖² / sg((‖Δ‖² + c)^p) (Sec. 4.3: p = 0 is squared L2, p = 1 close to L1).

    ‖Δ‖² sums over a sample's coordinates, as the official code does.
    """
    sq = error.flatten(1).pow(2).sum(dim=1)
    return sq / (sq.detach() + c) ** power
