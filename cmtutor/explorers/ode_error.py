"""Notebook 06: CD vs Direct CM, the ODE error beside the samples.

Vouitsis et al. (2024) train a consistency model to regress directly onto the teacher's ODE solution
(Direct CM) and find that a lower ODE-solving error does not give better samples. This explorer shows both
numbers for trained models from the same noise: the one-step ODE error ‖f(σ_max z, σ_max) − Φ(σ_max z)‖²/D
against the teacher's PF-ODE solution Φ, and the W2 distance of K-step samples to held-out data, plus the
one-step error along σ (where along the trajectory each model is off).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.axes import Axes

from cmtutor.core.metrics import ode_error as ode_error_metric
from cmtutor.course.plots import DATA_COLOR, scatter, series_colors, square_limits
from cmtutor.explorers import common
from cmtutor.explorers.base import Explorer, as_sampler, dropdown, fmt, reference_data, selection, style


def ode_error(models: Mapping[str, Any], teacher: Any, data: Any | None = None, max_steps: int = 2,
              n: int = 500, n_lines: int = 48, seed: int = 0) -> Explorer:
    """ODE error beside sample quality for trained consistency models (notebook 06: CD vs Direct CM).

    models: label → trained consistency model (``Run`` or ``Sampler``), e.g. ``{"CD": cd, "Direct CM": direct}``.
    teacher: the diffusion teacher (``Run``/``Sampler``) whose PF-ODE solution is the reference.
    data: raw data points (default: the held-out split of the first ``Run``); max_steps: K offered for samples.
    """
    names = list(models)
    samplers = {k: as_sampler(v) for k, v in models.items()}
    t = as_sampler(teacher)
    pool = reference_data([*models.values(), teacher], data, t.standardizer, 4 * n, seed)
    x_data = pool[:n]
    ref = common.teacher_solution(t, n, seed)
    outs = {k: common.samples_per_step(s, n, max_steps, seed) for k, s in samplers.items()}
    errs = {k: ode_error_metric(o[0], ref) for k, o in outs.items()}
    w2_floor = common.floor(pool, n)  # scores as W2 / floor, the metric the notebooks' text uses
    scores = {k: [common.w2(x, x_data) / w2_floor for x in o] for k, o in outs.items()}
    levels = common.sigma_levels(t.noise)
    starts, ends = common.per_sigma_reference(t, x_data[:256], levels, seed)
    per_sigma = {k: common.per_sigma_error(s, levels, starts, ends) for k, s in samplers.items()}
    color = series_colors(names)  # one colour per method, as in every figure of the course
    ks = list(range(1, max_steps + 1))

    controls = {"model": dropdown("model", names), "steps": selection("steps", ks)}

    def draw(axes: list[Axes], **v: Any) -> str:
        name, k = v["model"], int(v["steps"])
        x1 = outs[name][0]
        ax = axes[0]
        scatter(ax, x_data, color=DATA_COLOR, alpha=0.3)
        ax.plot(np.stack([x1[:n_lines, 0], ref[:n_lines, 0]]), np.stack([x1[:n_lines, 1], ref[:n_lines, 1]]),
                color="k", lw=0.6, alpha=0.6)
        ax.scatter(ref[:n_lines, 0], ref[:n_lines, 1], s=8, facecolors="none", edgecolors="k", lw=0.6)
        scatter(ax, x1[:n_lines], color=color[name], s=10, alpha=0.9)
        square_limits(ax, x_data)
        ax.set_title(f"{name} one-step (dots) vs ODE (circles): {fmt(errs[name])}", fontsize=9)
        ax = axes[1]
        scatter(ax, x_data, color=DATA_COLOR, alpha=0.3)
        scatter(ax, outs[name][k - 1], color=color[name], s=4, alpha=0.7)
        square_limits(ax, x_data)
        ax.set_title(f"{name} {k}-step samples: W2/floor {fmt(scores[name][k - 1])}", fontsize=9)
        ax = axes[2]
        for m in names:
            ax.scatter([errs[m]], [scores[m][k - 1]], s=90 if m == name else 40, color=color[m], label=m,
                       edgecolors="k" if m == name else "none", lw=1.5, zorder=3)
        ax.axhline(1.0, color="k", ls="--", lw=1, label="floor: data vs data")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        style(ax, "ODE error vs sample quality", "one-step ODE error (lower: closer to the teacher)",
              f"W2 / floor of {k}-step samples, {n} points")
        ax = axes[3]
        for m in names:
            ax.loglog(levels, per_sigma[m], color=color[m], lw=2 if m == name else 0.8, marker="o", ms=3, label=m)
        style(ax, "error vs the teacher's ODE along σ", "σ of the noisy input", "one-step ODE error")
        return f"{name}, {k}-step"

    statics = [{"model": m, "steps": 1} for m in names[:3]]
    return Explorer("ode_error", "ODE error beside sample quality", controls, 4, draw, statics,
                    help_text="model: which trained model; steps: K for the samples (the ODE error is one-step).")
