"""Plot helpers used by the notebooks: point clouds, ODE trajectories beside consistency jumps, curves.

Every function draws on matplotlib axes and returns the figure (or axes), so notebooks stay short and
figures look the same across the course.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DATA_COLOR = "#9aa5b1"
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

#: One colour per method across the course: a curve, bar or cloud whose label names a method (its first word:
#: "CD, N = 18", "iCT", "+pairs = iCT", "Direct CM", "IC" for iCT's independent coupling) takes that colour.
METHOD_COLORS = {"cd": "#1f77b4", "ict": "#d62728", "gc": "#2ca02c", "ot": "#ff7f0e", "tcm": "#9467bd",
                 "ct": "#8c564b", "direct": "#e377c2", "scm": "#17becf", "meanflow": "#bcbd22",
                 "diffusion": "#7f7f7f"}
#: Colours of the other series of a plot that shows methods (a second run of a method, a variant, a baseline).
EXTRA_COLORS = ["#393b79", "#8c6d31", "#637939", "#843c39", "#7b4173", "#6b6ecf", "#b5cf6b", "#e7ba52"]
_METHOD_WORDS = {"cd": "cd", "ict": "ict", "ic": "ict", "gc": "gc", "ot": "ot", "tcm": "tcm", "ct": "ct",
                 "direct": "direct", "scm": "scm", "sct": "scm", "meanflow": "meanflow", "teacher": "diffusion",
                 "diffusion": "diffusion"}


def method_color(label: str) -> str | None:
    """The course's colour of the method that ``label`` names, else None (module constant METHOD_COLORS)."""
    def first(text: str) -> str | None:
        words = [w for w in re.split(r"[^a-z0-9+]+", text.lower()) if w]
        return _METHOD_WORDS.get(words[0]) if words else None

    # "+pairs = iCT" names iCT after its sign; "CD, N = 18" names CD first
    method = (first(label.rsplit("=", 1)[1]) if "=" in label else None) or first(label)
    return METHOD_COLORS[method] if method else None


def series_colors(names: Sequence[str]) -> dict[str, str]:
    """A colour per series: its method's colour where the name names one (the first series of that method, so two
    runs of one method stay apart); the others take EXTRA_COLORS in a plot that shows methods, else COLORS."""
    fixed: dict[str, str | None] = {}
    for n in names:
        c = method_color(n)
        fixed[n] = c if c not in fixed.values() else None
    free = iter((EXTRA_COLORS if any(fixed.values()) else COLORS) * 4)
    return {n: fixed[n] or next(free) for n in names}


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def square_limits(ax: Axes, points: Any, pad: float = 0.1) -> None:
    """Equal aspect and limits covering ``points`` with a margin."""
    p = _np(points).reshape(-1, 2)
    lo, hi = np.percentile(p, 0.5, axis=0), np.percentile(p, 99.5, axis=0)
    c, r = (lo + hi) / 2, (hi - lo).max() / 2 * (1 + pad)
    ax.set_xlim(c[0] - r, c[0] + r)
    ax.set_ylim(c[1] - r, c[1] + r)
    ax.set_aspect("equal")


def scatter(ax: Axes, x: Any, title: str = "", color: str = COLORS[0], s: float = 2.0, alpha: float = 0.5,
            label: str | None = None) -> Axes:
    p = _np(x)
    ax.scatter(p[:, 0], p[:, 1], s=s, alpha=alpha, color=color, linewidths=0, label=label)
    if title:
        ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def clouds(panels: Mapping[str, Any], data: Any | None = None, ncols: int | None = None,
           size: float = 2.6, limits_from: Any | None = None) -> Figure:
    """One panel per point cloud (title → points), the data drawn faintly behind each."""
    n = len(panels)
    ncols = ncols or n
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    ref = limits_from if limits_from is not None else (data if data is not None else next(iter(panels.values())))
    for ax, (title, pts) in zip(axes.flat, panels.items()):
        if data is not None:
            scatter(ax, data, color=DATA_COLOR, alpha=0.3)
        scatter(ax, pts, title, color=method_color(title) or COLORS[0])
        square_limits(ax, ref)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def trajectories(ax: Axes, traj: Any, color: str = COLORS[0], n: int = 64, alpha: float = 0.6,
                 lw: float = 0.8, endpoints: bool = True) -> Axes:
    """Draw ``n`` ODE trajectories, traj [T, N, 2], from their start (hollow) to their end (filled)."""
    t = _np(traj)[:, :n]
    for i in range(t.shape[1]):
        ax.plot(t[:, i, 0], t[:, i, 1], color=color, alpha=alpha, lw=lw)
    if endpoints:
        ax.scatter(t[0, :, 0], t[0, :, 1], s=10, facecolors="none", edgecolors=color, lw=0.6)
        ax.scatter(t[-1, :, 0], t[-1, :, 1], s=10, color=color)
    return ax


def jumps(ax: Axes, starts: Any, ends: Any, color: str = COLORS[1], n: int = 64, alpha: float = 0.7) -> Axes:
    """Consistency jumps: straight arrows from each start point to where the model maps it."""
    s, e = _np(starts)[:n], _np(ends)[:n]
    for a, b in zip(s, e):
        ax.annotate("", xy=b, xytext=a, arrowprops={"arrowstyle": "->", "color": color, "alpha": alpha, "lw": 0.8})
    ax.scatter(s[:, 0], s[:, 1], s=10, facecolors="none", edgecolors=color, lw=0.6)
    ax.scatter(e[:, 0], e[:, 1], s=10, color=color)
    return ax


def ode_vs_jumps(traj: Any, jump_ends: Any, data: Any | None = None, n: int = 48,
                 titles: tuple[str, str] = ("teacher PF-ODE (many steps)", "consistency model (one jump)")
                 ) -> Figure:
    """Two panels: the teacher's curved ODE paths, and the consistency model's single jumps from the same noise."""
    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    t = _np(traj)
    for ax, title in zip(axes, titles):
        if data is not None:
            scatter(ax, data, color=DATA_COLOR, alpha=0.25)
        ax.set_title(title, fontsize=10)
    trajectories(axes[0], t, n=n)
    jumps(axes[1], t[0], jump_ends, n=n)
    for ax in axes:
        square_limits(ax, np.concatenate([t[0, :n], t[-1, :n]]))
    fig.tight_layout()
    return fig


def curves(ax: Axes, series: Mapping[str, tuple[Any, Any]], ylabel: str = "", xlabel: str = "step",
           logy: bool = False, spread: Mapping[str, Any] | None = None) -> Axes:
    """Line plot of named (x, y) series; ``spread`` optionally maps a name to a ±band (same length as y)."""
    colors = series_colors(list(series))
    for name, (x, y) in series.items():
        color = colors[name]
        ax.plot(_np(x), _np(y), label=name, color=color)
        if spread and name in spread:
            y, band = _np(y), _np(spread[name])
            ax.fill_between(_np(x), y - band, y + band, color=color, alpha=0.2, lw=0)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def history_series(history: Sequence[Mapping[str, float]], key: str = "loss") -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one key of a run's logged history."""
    rows = [h for h in history if key in h]
    return np.array([h["step"] for h in rows]), np.array([h[key] for h in rows])


def bars(ax: Axes, values: Mapping[str, float], errors: Mapping[str, float] | None = None,
         ylabel: str = "", reference: float | None = None, reference_label: str = "", points: bool = False) -> Axes:
    """Bar chart of named values (± errors), with an optional horizontal reference line (e.g. the floor).

    ``points=True`` draws a dot with its error bar instead of a bar, on an axis fitted to the values rather than
    starting at zero: for differences (0.04 between 1.3 and 1.34) that bars from zero would hide.
    """
    names = list(values)
    colors = series_colors(names)
    if points:
        for i, n in enumerate(names):
            ax.errorbar([i], [values[n]], yerr=[errors[n]] if errors else None, fmt="o", capsize=4, color=colors[n])
        ax.set_xlim(-0.6, len(names) - 0.4)
    else:
        ax.bar(range(len(names)), [values[n] for n in names], color=[colors[n] for n in names],
               yerr=[errors[n] for n in names] if errors else None, capsize=3)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=20, ha="right", fontsize=8)
    if reference is not None:
        ax.axhline(reference, color="k", ls="--", lw=1, label=reference_label or None)
        if reference_label:
            ax.legend(fontsize=8)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    return ax


# --- notebooks 01–03: noising, score fields, solver convergence, one-sample targets ---------------------

def grid_points(lim: float, n: int = 21) -> np.ndarray:
    """An n×n grid of points covering [−lim, lim]², as an array [n², 2] (float32)."""
    g = np.linspace(-lim, lim, n, dtype=np.float32)
    xx, yy = np.meshgrid(g, g)
    return np.stack([xx.ravel(), yy.ravel()], 1)


def noised_clouds(x: Any, sigmas: Sequence[float], z: Any, n: int = 2000, size: float = 2.4) -> Figure:
    """The forward process: one panel per σ showing x + σ·z, each with its own limits (the axes grow with σ)."""
    p, e = _np(x)[:n], _np(z)[:n]
    fig, axes = plt.subplots(1, len(sigmas), figsize=(size * len(sigmas), size), squeeze=False)
    for ax, s in zip(axes[0], sigmas):
        pts = p + s * e
        scatter(ax, pts, f"σ = {s:g}", alpha=0.4)
        square_limits(ax, pts)
        for axis in (ax.xaxis, ax.yaxis):  # the scale is the point of this figure: keep a few ticks
            axis.set_major_locator(MaxNLocator(3))
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def vector_field(ax: Axes, points: Any, vectors: Any, data: Any | None = None, title: str = "",
                 color: str = COLORS[0], unit: bool = True, magnitude: str = "arrow's length") -> Axes:
    """Arrows ``vectors`` at ``points`` (a quiver), over faint ``data``.

    ``unit=True`` draws every arrow with the same length (direction only) and shades it by its magnitude
    on a log scale, with a colour bar named ``magnitude``, so a field whose size varies by orders of magnitude
    (a score near the data) stays legible.
    """
    p, v = _np(points), _np(vectors)
    if data is not None:
        scatter(ax, data, color=DATA_COLOR, alpha=0.3)
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    if unit:
        # arrows of 0.8 grid spacings (for a square grid of points), shaded by log10 of the true length
        spacing = (p[:, 0].max() - p[:, 0].min()) / max(np.sqrt(len(p)) - 1, 1)
        shade = np.log10(np.maximum(norm[:, 0], 1e-12))
        arrows = ax.quiver(p[:, 0], p[:, 1], *(v / np.maximum(norm, 1e-12)).T, shade, cmap="viridis",
                           angles="xy", scale_units="xy", scale=1 / (0.8 * spacing), pivot="mid", width=0.005)
        bar = ax.figure.colorbar(arrows, ax=ax, shrink=0.75, pad=0.02)
        bar.set_label(f"log₁₀ of the {magnitude}", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    else:
        ax.quiver(p[:, 0], p[:, 1], v[:, 0], v[:, 1], color=color, angles="xy", pivot="mid", width=0.004)
    if title:
        ax.set_title(title, fontsize=10)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def convergence(ax: Axes, series: Mapping[str, tuple[Any, Any]], xlabel: str = "network evaluations (NFE)",
                ylabel: str = "error", orders: Sequence[int] = (1, 2)) -> Axes:
    """Log-log error curves with dashed reference slopes −order (anchored at the first series' first point)."""
    first = None
    for i, (name, (x, y)) in enumerate(series.items()):
        x, y = _np(x), _np(y)
        ax.loglog(x, y, "o-", label=name, color=COLORS[i % len(COLORS)], ms=4)
        first = (x, y) if first is None else first
    if first is not None:
        x, y = first
        for order, ls in zip(orders, ("--", ":", "-.")):
            ax.loglog(x, y[0] * (x / x[0]) ** (-order), ls, color="k", lw=0.8, label=f"slope −{order}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return ax


def one_sample_targets(ax: Axes, data: Any, x_sigma: Any, targets: Any, means: Mapping[str, Any],
                       title: str = "") -> Axes:
    """A noisy point x_σ (star), clean points drawn from p(x | x_σ) (dots), and estimates of their mean."""
    scatter(ax, data, color=DATA_COLOR, alpha=0.25)
    scatter(ax, targets, color=COLORS[0], s=6, alpha=0.5, label="x ~ p(x | x_σ): one-sample targets")
    xs = _np(x_sigma).reshape(-1)
    ax.scatter([xs[0]], [xs[1]], marker="*", s=450, color="k", label="x_σ", zorder=5)
    for i, (name, m) in enumerate(means.items()):
        mm = _np(m).reshape(-1)
        ax.scatter([mm[0]], [mm[1]], marker=["o", "X", "s", "^"][i % 4], s=120 - 40 * (i % 3),
                   color=COLORS[(i + 1) % len(COLORS)], edgecolors="k", label=name, zorder=6 + i)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
    return ax
