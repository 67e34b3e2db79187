"""TrigFlow (Lu & Song 2024, "Simplifying, stabilizing and scaling continuous-time consistency models", Sec. 2):
the diffusion process and consistency function of continuous-time consistency models (sCM).

TrigFlow writes the noisy point as x_t = cos(t)·x₀ + sin(t)·z with z ~ N(0, σ_d²I), t ∈ [0, π/2], and the
consistency function as (their Eq. 6)

    f_θ(x_t, t) = cos(t)·x_t − sin(t)·σ_d·F_θ(x_t/σ_d, c_noise(t)).

This is the VE process of the rest of the course in other coordinates: x_t = cos(t)·x_σ with σ = σ_d·tan(t), and
with F_θ = −F_EDM the function above *is* EDM's preconditioned denoiser (c_skip = cos²t, c_out = σ_d·sin t,
c_in = cos t/σ_d, Karras et al. 2022, Table 1). :class:`cmtutor.nets.flow_models.TrigFlowModel` therefore keeps
the σ-interface of every cmtutor model (sampling, evaluation and checkpoints are unchanged) and an EDM teacher's
weights are a valid initialisation. One deviation from the paper: c_noise = ¼·ln σ as in every cmtutor network
(the paper uses c_noise(t) = t); the JVP's tangent carries the factor cos t·sin t (the paper's "JVP
rearrangement"), so the time derivative it sees, cos t·sin t·d(¼ ln σ)/dt = ¼, is a constant
(docs/continuous.md).

The functions below are the paper's Algorithm 1, one line each, so that the tests check them in closed form.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from cmtutor.core.jvp import JvpMode, jvp
from cmtutor.core.noise import NoiseConfig


def time_of_sigma(sigma: Tensor, sigma_data: float) -> Tensor:
    """t = arctan(σ/σ_d): the TrigFlow time of the VE level σ."""
    return torch.atan(sigma / sigma_data)


def sigma_of_time(t: Tensor, sigma_data: float) -> Tensor:
    """σ = σ_d·tan(t): the VE level of TrigFlow time t."""
    return sigma_data * torch.tan(t)


def expand_like(c: Tensor, x: Tensor) -> Tensor:
    """A per-sample coefficient [B] as [B, 1, …] against x."""
    return c.reshape(-1, *([1] * (x.ndim - 1)))


def sct_velocity(x0: Tensor, z: Tensor, t: Tensor) -> Tensor:
    """dx_t/dt = cos(t)·z − sin(t)·x₀: the one-sample estimate of the PF-ODE velocity (consistency training)."""
    return expand_like(t.cos(), x0) * z - expand_like(t.sin(), x0) * x0


def teacher_velocity(denoiser: nn.Module, x_t: Tensor, t: Tensor, sigma_data: float) -> Tensor:
    """dx_t/dt of the PF-ODE from an EDM denoiser D (consistency distillation, sCD).

    With x_t = cos t·x_σ and dx_σ/dσ = (x_σ − D(x_σ, σ))/σ, dσ/dt = σ_d/cos²t:
    dx_t/dt = −sin t·x_σ + (x_σ − D(x_σ, σ))/sin t.
    """
    cos, sin = expand_like(t.cos(), x_t), expand_like(t.sin(), x_t)
    x_sigma = x_t / cos
    d = denoiser(x_sigma, sigma_of_time(t, sigma_data))
    return -sin * x_sigma + (x_sigma - d) / sin


def tangent(f_minus: Tensor, df_dt_cs: Tensor, x_t: Tensor, dxt_dt: Tensor, t: Tensor, sigma_data: float,
            warmup: float = 1.0) -> Tensor:
    """g = −cos²t·(σ_d·F⁻ − dx_t/dt) − r·(cos t·sin t·x_t + σ_d·[cos t·sin t·dF⁻/dt])  (Algorithm 1).

    ``df_dt_cs`` is cos t·sin t·dF⁻/dt, the JVP taken with tangents scaled by cos t·sin t. With r = 1,
    g = cos t·df⁻/dt: the total derivative of the consistency function along the ODE, which the continuous-time
    loss drives to zero. ``warmup`` is r ∈ [0, 1] (tangent warm-up).
    """
    cos, sin = expand_like(t.cos(), x_t), expand_like(t.sin(), x_t)
    return -cos**2 * (sigma_data * f_minus - dxt_dt) - warmup * (cos * sin * x_t + sigma_data * df_dt_cs)


def consistency_tangent(trig_network: Callable[[Tensor, Tensor], Tensor], x_t: Tensor, dxt_dt: Tensor, t: Tensor,
                        sigma_data: float, warmup: float = 1.0, mode: JvpMode = "exact") -> tuple[Tensor, Tensor]:
    """(F⁻, g): the network output and the tangent g of Algorithm 1 for a TrigFlow network F(x_t/σ_d, t).

    One JVP with the tangents (cos t·sin t·dx_t/dt/σ_d, cos t·sin t) (the paper's "JVP rearrangement": the time
    tangent stays bounded near t = π/2) gives cos t·sin t·dF/dt; :func:`tangent` assembles g from it.
    """
    cs = t.cos() * t.sin()
    f_minus, df_cs = jvp(trig_network, (x_t / sigma_data, t), (expand_like(cs, x_t) * dxt_dt / sigma_data, cs),
                         mode=mode)
    return f_minus, tangent(f_minus, df_cs, x_t, dxt_dt, t, sigma_data, warmup)


def normalize_tangent(g: Tensor, c: float = 0.1) -> Tensor:
    """g / (‖g‖ + c), ‖·‖ the per-sample root mean square (so c means the same at any resolution; Sec. 4.2)."""
    rms = g.flatten(1).pow(2).mean(dim=1).sqrt()
    return g / (expand_like(rms, g) + c)


def t_max(noise: NoiseConfig) -> float:
    """The largest TrigFlow time the course uses, arctan(σ_max/σ_d) (π/2 would be pure noise)."""
    return math.atan(noise.sigma_max / noise.sigma_data)
