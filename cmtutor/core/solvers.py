"""Samplers: the probability-flow ODE of a denoiser (Euler, Heun) and consistency-model sampling.

PF-ODE (Karras et al. 2022, Eq. 4 with σ(t) = t, s(t) = 1): dx/dσ = (x − D(x, σ))/σ.

* Euler: x' = x + (σ' − σ)·d(x, σ).
* Heun (Karras et al. 2022, Algorithm 1): an Euler predictor, then the average of the slopes at both
  ends; the last step to σ' = 0 is plain Euler (the slope is undefined at 0).

Consistency sampling (Song et al. 2023, Algorithm 1): x = f(σ_max·z, σ_max), then for each further level
τ: x = f(x + √(τ² − σ_min²)·z', τ).

Flow-map sampling (MeanFlow, Geng et al. 2025, Sec. 4.1; Boffi et al. 2025): a model that jumps along its ODE
from σ to any σ' < σ, X(x_σ, σ, σ'), takes the levels deterministically, x ← X(x, σ_i, σ_{i+1}), ending at 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from cmtutor.core.schedules import karras_sigmas

Solver = Literal["euler", "heun"]


def ode_derivative(denoiser: nn.Module, x: Tensor, sigma: Tensor | float) -> Tensor:
    """dx/dσ = (x − D(x, σ))/σ."""
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    s_b = s.reshape(-1, *([1] * (x.ndim - 1))) if s.ndim else s
    return (x - denoiser(x, s)) / s_b


def ode_step(denoiser: nn.Module, x: Tensor, sigma: Tensor | float, sigma_next: Tensor | float,
             solver: Solver = "heun") -> Tensor:
    """One Euler or Heun step of the PF-ODE from σ to σ_next (scalars or per-sample [B] tensors)."""
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    s_next = torch.as_tensor(sigma_next, dtype=x.dtype, device=x.device)
    shape = (-1, *([1] * (x.ndim - 1)))
    ds = (s_next - s).reshape(shape) if s_next.ndim or s.ndim else s_next - s
    d = ode_derivative(denoiser, x, s)
    x_euler = x + ds * d
    if solver == "euler":
        return x_euler
    if solver != "heun":
        raise ValueError(f"unknown solver {solver!r}; expected 'euler' or 'heun'")
    # Heun's correction wherever σ_next > 0 (Karras et al. 2022, Algorithm 1, lines 9–11)
    s_safe = torch.where(s_next > 0, s_next, torch.ones_like(s_next))
    d_next = ode_derivative(denoiser, x_euler, s_safe)
    x_heun = x + ds * 0.5 * (d + d_next)
    if s_next.ndim == 0:
        return x_heun if float(s_next) > 0 else x_euler
    return torch.where((s_next > 0).reshape(shape), x_heun, x_euler)


@torch.no_grad()
def solve_ode(denoiser: nn.Module, x: Tensor, sigmas: Sequence[float] | Tensor, solver: Solver = "heun",
              return_trajectory: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Integrate the PF-ODE through the *decreasing* levels ``sigmas`` (x is at sigmas[0]).

    Returns the final state, or ``(final, trajectory)`` with trajectory [len(sigmas), *x.shape].
    """
    sig = torch.as_tensor(sigmas, dtype=torch.float64).tolist()
    traj = [x]
    for s, s_next in zip(sig[:-1], sig[1:]):
        x = ode_step(denoiser, x, s, s_next, solver)
        if return_trajectory:
            traj.append(x)
    if return_trajectory:
        return x, torch.stack(traj)
    return x


def sampling_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0,
                    end_at_zero: bool = False) -> Tensor:
    """Decreasing Karras levels for ODE sampling: σ_max … σ_min (``steps`` + 1 values, or + a final 0)."""
    s = karras_sigmas(steps + 1, sigma_min, sigma_max, rho).flip(0)
    return torch.cat([s, s.new_zeros(1)]) if end_at_zero else s


@torch.no_grad()
def sample_ode(denoiser: nn.Module, z: Tensor, sigma_min: float, sigma_max: float, steps: int = 40,
               solver: Solver = "heun", rho: float = 7.0, return_trajectory: bool = False
               ) -> Tensor | tuple[Tensor, Tensor]:
    """Generate from unit noise z by solving the PF-ODE from σ_max to σ_min on a Karras grid."""
    sigmas = sampling_sigmas(steps, sigma_min, sigma_max, rho)
    return solve_ode(denoiser, z * sigma_max, sigmas, solver, return_trajectory)


@torch.no_grad()
def consistency_sample(model: nn.Module, z: Tensor, sigmas: Sequence[float], sigma_min: float,
                       generator: torch.Generator | None = None, return_all: bool = False,
                       pair: Callable[[Tensor, Tensor], Tensor] | None = None
                       ) -> Tensor | tuple[Tensor, list[Tensor]]:
    """Multistep consistency sampling (Song et al. 2023, Algorithm 1).

    ``sigmas`` are decreasing noise levels starting at σ_max: ``[σ_max]`` is one-step generation;
    ``[σ_max, τ]`` is two-step. z is unit noise; fresh noise for re-noising comes from ``generator``.
    ``pair(x, noise)``, if given, re-orders the fresh noise against the samples it re-noises (the OT
    coupling's pairing, :func:`cmtutor.methods.coupling.ot_renoise`); None keeps it independent.
    With ``return_all`` also returns the sample after every step.
    """
    sig = [float(s) for s in sigmas]
    x = model(z * sig[0], torch.full((z.shape[0],), sig[0], device=z.device))
    outs = [x]
    for tau in sig[1:]:
        noise = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
        if pair is not None:
            noise = pair(x, noise)
        x_tau = x + (tau**2 - sigma_min**2) ** 0.5 * noise
        x = model(x_tau, torch.full((z.shape[0],), tau, device=z.device))
        outs.append(x)
    return (x, outs) if return_all else x


def flow_map_sample(model: nn.Module, z: Tensor, sigmas: Sequence[float],
                    return_all: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
    """Deterministic multistep sampling with a flow map ``model.jump(x, σ, σ')`` (module doc).

    ``sigmas`` are decreasing levels starting at σ_max (``[σ_max]``: one jump to 0); z is unit noise. Unlike
    consistency sampling no fresh noise is drawn: each step moves along the same ODE trajectory. With
    ``return_all`` also returns the state after every jump.
    """
    sig = [float(s) for s in sigmas] + [0.0]
    x = z * sig[0]
    outs = []
    for s, s_next in zip(sig[:-1], sig[1:]):
        x = model.jump(x, torch.full((z.shape[0],), s, device=z.device),
                       torch.full((z.shape[0],), s_next, device=z.device))
        outs.append(x)
    return (x, outs) if return_all else x
