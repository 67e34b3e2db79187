"""What several explorers compute once when they are built: samples after each step, W2, ODE errors.

All in the model's standardised coordinates, from fixed seeds, so an explorer draws the same figure on
every run of the notebook.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from cmtutor.core.metrics import ode_error, w2_exact, w2_floor
from cmtutor.core.solvers import sample_ode, sampling_sigmas, solve_ode
from cmtutor.sampler import unit_noise


def samples_per_step(sampler: Any, n: int, max_steps: int, seed: int) -> list[np.ndarray]:
    """[sample after 1 step, after 2 steps, …]: K-step consistency sampling, one run per K.

    Entry k−1 is the K = k sample (Song et al. 2023, Algorithm 1, with the sampler's levels σ_max, τ, τ/4, …);
    a diffusion model (PF-ODE) gets k Heun steps instead. Unit noise from ``seed`` (the same for every K).
    """
    z = unit_noise(n, (sampler.dim,), seed).to(sampler.device)
    out = []
    for k in range(1, max_steps + 1):
        gen = torch.Generator(device=sampler.device).manual_seed(seed + 1)
        out.append(sampler.generate(z, k, gen=gen).cpu().numpy())
    return out


def teacher_solution(teacher: Any, n: int, seed: int, steps: int = 64) -> np.ndarray:
    """The teacher's PF-ODE solution (Heun) from the unit noise of ``seed``: the ODE-error reference."""
    z = unit_noise(n, (teacher.dim,), seed).to(teacher.device)
    noise = teacher.noise
    with torch.no_grad():
        x = sample_ode(teacher.model.eval(), z, noise.sigma_min, noise.sigma_max, steps=steps)
    return x.cpu().numpy()  # type: ignore[union-attr]


def w2(samples: np.ndarray, ref: np.ndarray) -> float:
    m = min(len(samples), len(ref))
    return w2_exact(samples[:m], ref[:m])


def floor(ref_pool: np.ndarray, n: int) -> float:
    """The W2 between two independent size-n data samples: the best any model can score here."""
    return w2_floor(ref_pool, n=min(n, len(ref_pool) // 2), repeats=2)


def sigma_levels(noise: Any, count: int = 8) -> list[float]:
    return [float(s) for s in np.geomspace(max(noise.sigma_min * 10, 0.02), noise.sigma_max, count)]


def per_sigma_reference(teacher: Any, x_data: np.ndarray, levels: Sequence[float], seed: int,
                        steps: int = 24) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """For each σ: noisy points x_σ = x + σ·ε and the teacher's PF-ODE solution from (x_σ, σ) to σ_min."""
    eps = np.random.default_rng(seed + 7).standard_normal(x_data.shape).astype(np.float32)
    noise = teacher.noise
    starts, ends = [], []
    with torch.no_grad():
        for s in levels:
            x_s = torch.as_tensor(x_data + s * eps, device=teacher.device)
            grid = sampling_sigmas(steps, noise.sigma_min, s, noise.rho)
            ends.append(solve_ode(teacher.model.eval(), x_s, grid, "heun").cpu().numpy())  # type: ignore[union-attr]
            starts.append(x_s.cpu().numpy())
    return starts, ends


def per_sigma_error(sampler: Any, levels: Sequence[float], starts: list[np.ndarray], ends: list[np.ndarray]
                    ) -> list[float]:
    """ODE error of one consistency step f(x_σ, σ) against the teacher's solution, at each σ."""
    model = sampler.network.eval()  # for TCM, the piecewise f: the frozen stage-1 model below t'
    errs = []
    with torch.no_grad():
        for s, x_s, ref in zip(levels, starts, ends):
            x = torch.as_tensor(x_s, device=sampler.device)
            f = model(x, torch.full((len(x),), float(s), device=sampler.device))
            errs.append(ode_error(f.cpu().numpy(), ref))
    return errs
