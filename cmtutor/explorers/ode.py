"""Notebook 01: the forward process and the probability-flow ODE of the diffusion teacher.

Controls: the noise level σ of the forward process p_σ = p_data ∗ N(0, σ²I) (Karras et al. 2022, Eq. 1),
which point's ODE path to follow, the solver (Euler, or Heun: Karras et al. 2022, Algorithm 1) and the
number of steps. Everything is computed once when the explorer is built: the teacher's paths for every
(solver, steps) choice and a 256-step Heun reference from the same noise, so a control change only
re-draws. All coordinates are the model's (standardised) ones, where σ is measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes

from cmtutor.core.metrics import ode_error
from cmtutor.core.solvers import sampling_sigmas, solve_ode
from cmtutor.course.plots import COLORS, DATA_COLOR, scatter, square_limits
from cmtutor.explorers.base import (
    Explorer,
    as_sampler,
    dropdown,
    fmt,
    reference_data,
    selection,
    style,
)
from cmtutor.sampler import unit_noise

SOLVERS = ("heun", "euler")
DEFAULT_STEPS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)


def ode_paths(teacher: Any, data: Any | None = None, n: int = 256, steps: Sequence[int] = DEFAULT_STEPS,
              ref_steps: int = 256, n_paths: int = 48, seed: int = 0) -> Explorer:
    """Explorer of the forward process and the PF-ODE (notebook 01).

    teacher: the diffusion teacher, a ``cmtutor`` ``Run`` (e.g. ``cmtutor.course.teacher()``) or ``Sampler``
        of an EDM denoiser.
    data: raw data points ``[N, 2]`` (default: the held-out split of the teacher run).
    n: how many noise points are integrated; ``steps``: the step counts offered; ``ref_steps``: Heun steps
        of the reference solution; ``n_paths``: paths drawn; ``seed``: the noise.
    """
    sampler = as_sampler(teacher)
    if not sampler.method.ode_sampling:
        raise ValueError("ode_paths needs a diffusion (EDM denoiser) teacher")
    model, noise = sampler.model, sampler.noise
    steps = sorted(int(k) for k in steps)
    x_data = reference_data([teacher], data, sampler.standardizer, 1000, seed)
    eps = np.random.default_rng(seed + 1).standard_normal(x_data.shape).astype(np.float32)

    z = unit_noise(n, (sampler.dim,), seed).to(sampler.device)
    x_t = z * noise.sigma_max
    was_training = model.training
    model.eval()
    try:
        ref_sig = sampling_sigmas(ref_steps, noise.sigma_min, noise.sigma_max, noise.rho)
        _, ref = solve_ode(model, x_t, ref_sig, "heun", return_trajectory=True)
        paths: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
        for solver in SOLVERS:
            for k in steps:
                sig = sampling_sigmas(k, noise.sigma_min, noise.sigma_max, noise.rho)
                _, traj = solve_ode(model, x_t, sig, solver, return_trajectory=True)
                paths[solver, k] = (sig.numpy(), traj.cpu().numpy())
    finally:
        model.train(was_training)
    ref_np, ref_sig_np = ref.cpu().numpy(), ref_sig.numpy()
    errors = {key: ode_error(traj[-1], ref_np[-1]) for key, (_, traj) in paths.items()}
    path_lim = np.concatenate([ref_np[0, :n_paths], ref_np[-1, :n_paths]])

    sigma_levels = [float(s) for s in np.geomspace(noise.sigma_min * 10, noise.sigma_max, 16)]
    controls = {
        "σ": selection("σ", sigma_levels, value=sigma_levels[9]),
        "point": selection("point", list(range(min(n, n_paths))), value=0),
        "solver": dropdown("solver", list(SOLVERS)),
        "steps": selection("steps", steps, value=steps[len(steps) // 2]),
    }

    def draw(axes: list[Axes], **v: Any) -> str:
        sigma, i, solver, k = float(v["σ"]), int(v["point"]), str(v["solver"]), int(v["steps"])
        sig, traj = paths[solver, k]
        # (a) the forward-process marginal at σ and the chosen point's ODE path below σ
        ax = axes[0]
        noisy = x_data + sigma * eps
        scatter(ax, x_data, color=DATA_COLOR, alpha=0.3)
        scatter(ax, noisy, color=COLORS[0], alpha=0.35)
        j = int(np.argmin(np.abs(np.log(ref_sig_np) - np.log(sigma))))
        seg = ref_np[j:, i]
        ax.plot(seg[:, 0], seg[:, 1], color=COLORS[1], lw=1.2)
        ax.scatter(*seg[0], marker="*", s=90, color=COLORS[1], zorder=3, label="x(σ) on the ODE path")
        ax.scatter(*seg[-1], s=20, color=COLORS[1], zorder=3)
        square_limits(ax, np.concatenate([noisy, x_data]))
        ax.set_title(f"p_σ = data + σ·noise, σ = {fmt(sigma)}", fontsize=9)
        ax.legend(fontsize=7, loc="lower left")
        # (b) the solver's paths from σ_max
        ax = axes[1]
        for p in range(min(n_paths, traj.shape[1])):
            ax.plot(traj[:, p, 0], traj[:, p, 1], color=COLORS[0], alpha=0.25, lw=0.7)
        ax.plot(ref_np[:, i, 0], ref_np[:, i, 1], color="k", ls="--", lw=1, label="reference (Heun, 256)")
        ax.plot(traj[:, i, 0], traj[:, i, 1], color=COLORS[1], lw=1.5, marker="o", ms=3, label=f"{solver}, {k}")
        square_limits(ax, path_lim)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"PF-ODE paths from σ_max = {fmt(noise.sigma_max)}", fontsize=9)
        ax.legend(fontsize=7, loc="lower left")
        # (c) where the solver lands vs the reference
        ax = axes[2]
        scatter(ax, x_data, color=DATA_COLOR, alpha=0.3)
        end, ref_end = traj[-1], ref_np[-1]
        scatter(ax, end, color=COLORS[0], s=5, alpha=0.7)
        ax.plot([end[i, 0], ref_end[i, 0]], [end[i, 1], ref_end[i, 1]], color=COLORS[1], lw=1)
        ax.scatter(*end[i], s=25, color=COLORS[1], zorder=3)
        ax.scatter(*ref_end[i], s=25, facecolors="none", edgecolors="k", zorder=3)
        square_limits(ax, x_data)
        ax.set_title(f"samples, {solver} {k} steps: ODE error {fmt(errors[solver, k])}", fontsize=9)
        # (d) error against the reference vs steps, both solvers
        ax = axes[3]
        for c, s in zip((COLORS[2], COLORS[3]), SOLVERS):
            ax.loglog(steps, [errors[s, kk] for kk in steps], marker="o", ms=3, color=c, label=s)
        ax.scatter([k], [errors[solver, k]], s=80, facecolors="none", edgecolors="k", zorder=3)
        style(ax, "error vs number of steps", "steps k (evaluations: Euler k, Heun 2k)", "ODE error vs reference")
        return f"{solver}, {k} steps, point {i}, σ = {fmt(sigma)}"

    statics = [{"σ": sigma_levels[12], "solver": "euler", "steps": _near(steps, 2)},
               {"σ": sigma_levels[9], "solver": "heun", "steps": _near(steps, 2)},
               {"σ": sigma_levels[5], "solver": "heun", "steps": _near(steps, 16)}]
    return Explorer("ode_paths", "The forward process and the probability-flow ODE", controls, 4, draw, statics,
                    help_text="σ: noise level of the forward process; point: whose ODE path is drawn; "
                              "solver and steps: how the PF-ODE is integrated from σ_max.")


def _near(values: Sequence[int], target: int) -> int:
    return min(values, key=lambda v: abs(v - target))
