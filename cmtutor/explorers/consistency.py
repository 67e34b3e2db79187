"""Notebooks 02, 03 and 05: consistency sampling of trained models, and grids of trained runs.

* :func:`consistency_sampling`: two models side by side (CD vs CT, CT vs iCT, …) and the number of
  sampling steps K (one-step vs multistep consistency sampling, Song et al. 2023, Algorithm 1).
* :func:`run_grid`: runs the notebook trained over a grid of settings (the discretisation N of CT/iCT,
  the EMA decay, TCM's t' and w_b, …); one control per setting picks a run.

Both take trained ``Run``\\ s (or ``Sampler``\\ s) and compute every sample and metric when built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle

from cmtutor.course.plots import COLORS, DATA_COLOR, scatter, series_colors, square_limits
from cmtutor.explorers import common
from cmtutor.explorers.base import (
    Explorer,
    as_sampler,
    dropdown,
    fmt,
    reference_data,
    selection,
    single_threaded,
    style,
)


def _draw_samples(ax: Axes, x_data: np.ndarray, steps_out: list[np.ndarray], k: int, title: str,
                  color: str = COLORS[0], n_arrows: int = 24) -> None:
    """Samples after k steps over the data; arrows show what the k-th step changed."""
    scatter(ax, x_data, color=DATA_COLOR, alpha=0.3)
    x = steps_out[k - 1]
    scatter(ax, x, color=color, s=4, alpha=0.7)
    if k > 1:
        prev = steps_out[k - 2]
        for a, b in zip(prev[:n_arrows], x[:n_arrows]):
            arrow = ax.annotate("", xy=b, xytext=a, arrowprops={"arrowstyle": "->", "color": COLORS[1], "lw": 0.7,
                                                                "alpha": 0.7})
            arrow.arrow_patch.set_clip_path(ax.patch)  # points far outside the data stay inside the panel
    square_limits(ax, x_data)
    ax.set_title(title, fontsize=9)


@single_threaded
def consistency_sampling(models: Mapping[str, Any], data: Any | None = None, max_steps: int = 4, n: int = 500,
                         seed: int = 0, left: str | None = None, right: str | None = None) -> Explorer:
    """Two trained models side by side, sampled in K = 1 … ``max_steps`` consistency steps (notebooks 02/03).

    models: label → trained consistency model (``Run`` or ``Sampler``), e.g. ``{"CD": cd_run, "CT": ct_run}``;
        a diffusion run may be included (it is sampled with K Heun steps of its PF-ODE).
    data: raw data points (default: the held-out split of the first ``Run``); n: samples per model.
    left, right: the models shown first (default: the first two).
    """
    names = list(models)
    if not names:
        raise ValueError("consistency_sampling needs at least one model")
    samplers = {k: as_sampler(v) for k, v in models.items()}
    first = samplers[names[0]]
    pool = reference_data(list(models.values()), data, first.standardizer, 4 * n, seed)
    x_data = pool[:n]
    outs = {k: common.samples_per_step(s, n, max_steps, seed) for k, s in samplers.items()}
    w2_floor = common.floor(pool, n)  # scores as W2 / floor, the metric the notebooks' text uses
    scores = {k: [common.w2(x, x_data) / w2_floor for x in o] for k, o in outs.items()}
    ks = list(range(1, max_steps + 1))
    palette = series_colors(names)  # one colour per method, as in every figure of the course

    controls = {
        "left": dropdown("left", names, left or names[0]),
        "right": dropdown("right", names, right or names[min(1, len(names) - 1)]),
        "steps": selection("steps", ks),
    }

    def draw(axes: list[Axes], **v: Any) -> str:
        k = int(v["steps"])
        for ax, side in zip(axes[:2], (v["left"], v["right"])):
            color = palette[side]
            _draw_samples(ax, x_data, outs[side], k, f"{side}, {k}-step: W2/floor {fmt(scores[side][k - 1])}", color)
        ax = axes[2]
        for i, (name, sc) in enumerate(scores.items()):
            bold = name in (v["left"], v["right"])
            ax.plot(ks, sc, marker="o", ms=3, lw=2 if bold else 0.8, alpha=1 if bold else 0.4,
                    color=palette[name], label=name)
        for side in (v["left"], v["right"]):
            ax.scatter([k], [scores[side][k - 1]], s=70, facecolors="none", edgecolors="k", zorder=3)
        ax.axhline(1.0, color="k", ls="--", lw=1, label="floor: data vs data")
        ax.set_xticks(ks)
        ax.set_ylim(bottom=0)
        style(ax, "quality vs steps", "sampling steps K", f"W2 / floor ({n} points)")
        return f"{v['left']} vs {v['right']}, {k}-step sampling"

    statics = [{"steps": 1}, {"steps": min(2, max_steps)}]
    return Explorer("consistency_sampling", "One-step vs multistep consistency sampling", controls, 3, draw,
                    statics, help_text="left/right: which trained models; steps: K of multistep sampling "
                                       "(arrows: what the K-th step changed).")


def _label(v: Any, labels: Mapping[Any, str] | None = None) -> str:
    if labels is not None and v in labels:
        return labels[v]
    return fmt(v) if isinstance(v, float) else str(v)


@single_threaded
def run_grid(runs: Mapping[Any, Any], axes: Sequence[str], data: Any | None = None,
             steps: Sequence[int] = (1, 2), teacher: Any | None = None, mark_sigma: str | None = None,
             n: int = 500, seed: int = 0, title: str = "Trained runs over a grid of settings",
             static: Sequence[Mapping[str, Any]] | None = None, labels: Mapping[Any, str] | None = None,
             help_text: str = "each control picks a setting; every run was trained beforehand.") -> Explorer:
    """Pick one of several trained runs by its settings (notebooks 02/03: N, EMA decay; 05: t', w_b of TCM).

    runs: settings → trained ``Run``/``Sampler``. Keys are tuples with one value per name in ``axes``
        (a plain value when there is one axis), e.g. ``{(10, 0.99): run, (10, 0.999): run, (40, 0.99): run}``;
        a missing combination is shown as "not trained".
    axes: the settings' names, e.g. ``("N", "EMA decay")`` or ``("t'", "w_b")``.
    steps: the sampling step counts offered. teacher: the diffusion teacher; if given, a panel shows each
        run's one-step ODE error along σ (``mark_sigma`` names an axis whose value is a σ to mark, e.g. "t'").
    static: the settings of the static figure's rows, e.g. ``[{"N": 10, "EMA decay": 0.99}]`` (default: the
        grid's first and last corners). labels: display names of axis values, e.g. ``{0.0: "0 (raw)"}``.
    """
    axes = list(axes)
    grid = {(k if isinstance(k, tuple) else (k,)): as_sampler(v) for k, v in runs.items()}
    if not grid or any(len(k) != len(axes) for k in grid):
        raise ValueError(f"run_grid needs keys with one value per axis {axes}")
    values = [list(dict.fromkeys(k[i] for k in grid)) for i in range(len(axes))]
    values = [sorted(v) if all(isinstance(x, (int, float)) for x in v) else v for v in values]
    first = next(iter(grid.values()))
    pool = reference_data(list(runs.values()), data, first.standardizer, 4 * n, seed)
    x_data = pool[:n]
    steps = sorted(int(s) for s in steps)
    outs = {k: common.samples_per_step(s, n, max(steps), seed) for k, s in grid.items()}
    w2_floor = common.floor(pool, n)  # scores as W2 / floor, the metric the notebooks' text uses
    scores = {k: {kk: common.w2(o[kk - 1], x_data) / w2_floor for kk in steps} for k, o in outs.items()}
    per_sigma: dict[tuple[Any, ...], list[float]] = {}
    if teacher is not None:
        t = as_sampler(teacher)
        levels = common.sigma_levels(t.noise)
        starts, ends = common.per_sigma_reference(t, x_data[:256], levels, seed)
        per_sigma = {k: common.per_sigma_error(s, levels, starts, ends) for k, s in grid.items()}

    controls: dict[str, Any] = {a: selection(a, vals, labels=[_label(x, labels) for x in vals])
                                for a, vals in zip(axes, values)}
    if len(steps) > 1:
        controls["steps"] = selection("steps", steps)
    ncols = 3 if per_sigma else 2

    def draw(axs: list[Axes], **v: Any) -> str:
        key = tuple(v[a] for a in axes)
        k = int(v.get("steps", steps[0]))
        setting = ", ".join(f"{a} = {_label(x, labels)}" for a, x in zip(axes, key))
        if key in outs:
            _draw_samples(axs[0], x_data, outs[key], k, f"{k}-step samples: W2/floor {fmt(scores[key][k])}")
        else:
            axs[0].text(0.5, 0.5, "not trained", ha="center", va="center", transform=axs[0].transAxes)
            axs[0].set_xticks([])
            axs[0].set_yticks([])
        _draw_scores(axs[1], axes, values, scores, key, k, n, labels)
        if per_sigma:
            ax = axs[2]
            for other, errs in per_sigma.items():
                mine = other == key
                ax.loglog(levels, errs, color=COLORS[1] if mine else DATA_COLOR, lw=2 if mine else 0.8,
                          marker="o" if mine else None, ms=3, zorder=3 if mine else 1)
            marked = mark_sigma is not None and mark_sigma in axes
            if marked:
                ax.axvline(float(key[axes.index(mark_sigma)]), color="k", ls="--", lw=1, label=mark_sigma)
            style(ax, "error vs the teacher's ODE along σ", "σ of the noisy input", "one-step ODE error",
                  legend=marked)
        return setting

    if static is None:
        corners = [tuple(vals[0] for vals in values), tuple(vals[-1] for vals in values)]
        static = [{**dict(zip(axes, c)), "steps": steps[0]} for c in corners]
    statics = [{k: v for k, v in s.items() if k in controls} for s in static]
    return Explorer("run_grid", title, controls, ncols, draw, statics, help_text=help_text)


def _draw_scores(ax: Axes, axes: list[str], values: list[list[Any]], scores: dict[tuple[Any, ...], dict[int, float]],
                 key: tuple[Any, ...], k: int, n: int, labels: Mapping[Any, str] | None = None) -> None:
    """W2 / floor over the grid: a heat map over two axes, bars otherwise; the current run marked."""
    if len(axes) == 2:
        m = np.full((len(values[0]), len(values[1])), np.nan)
        for (a, b), sc in scores.items():
            m[values[0].index(a), values[1].index(b)] = sc[k]
        image = ax.imshow(m, cmap="Blues", origin="lower", aspect="auto")
        ax.figure.colorbar(image, ax=ax, shrink=0.8, pad=0.02).ax.tick_params(labelsize=7)  # W2 / floor: the title
        mid = np.nanmean(m) if np.isfinite(m).any() else 0.0
        for (i, j), val in np.ndenumerate(m):
            ax.text(j, i, "—" if np.isnan(val) else fmt(val), ha="center", va="center", fontsize=8,
                    color="w" if np.isfinite(val) and val > mid else "k")
        ax.add_patch(Rectangle((values[1].index(key[1]) - 0.5, values[0].index(key[0]) - 0.5), 1, 1, fill=False,
                               ec=COLORS[1], lw=2.5))
        ax.set_xticks(range(len(values[1])), [_label(x, labels) for x in values[1]], fontsize=7)
        ax.set_yticks(range(len(values[0])), [_label(x, labels) for x in values[0]], fontsize=7)
        style(ax, f"W2 / floor, {k}-step ({n} points)", axes[1], axes[0], legend=False, grid=False)
        return
    names = [", ".join(_label(x, labels) for x in kk) for kk in scores]
    vals = [sc[k] for sc in scores.values()]
    colors = [COLORS[1] if kk == key else COLORS[0] for kk in scores]
    ax.bar(range(len(vals)), vals, color=colors)
    ax.set_xticks(range(len(vals)), names, rotation=30, ha="right", fontsize=7)
    ax.axhline(1.0, color="k", ls="--", lw=1, label="floor: data vs data")
    style(ax, f"W2 / floor, {k}-step ({n} points)", ", ".join(axes), "W2 / floor", grid=False)
