"""Plot helpers for images: sample grids side by side, noised images, metric bars."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cmtutor.data.images import grid


def show_grid(ax: Axes, images: np.ndarray, ncols: int = 8, title: str = "") -> Axes:
    """Draw uint8 images [N, H, W, C] as one tiled picture (grey for C = 1)."""
    g = grid(np.asarray(images, np.uint8), ncols)
    if g.shape[2] == 1:
        ax.imshow(g[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(g, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def panels(images: Mapping[str, np.ndarray], ncols: int = 4, grid_cols: int = 4, size: float = 2.0) -> Figure:
    """One tiled grid per entry (title → uint8 images), laid out ``ncols`` panels per row."""
    n = len(images)
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows * 1.05), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, (title, imgs) in zip(axes.flat, images.items()):
        show_grid(ax, imgs, grid_cols, title)
    fig.tight_layout()
    return fig


def method_rows(samples: Mapping[str, Mapping[str, np.ndarray]], grid_cols: int = 8, size: float = 2.4) -> Figure:
    """A table of grids: one row per method, one column per sampling setting (e.g. "1 step", "2 steps")."""
    methods = list(samples)
    cols = list(next(iter(samples.values())))
    fig, axes = plt.subplots(len(methods), len(cols), figsize=(size * 1.6 * len(cols), size * 0.55 * len(methods)),
                             squeeze=False)
    for i, m in enumerate(methods):
        for j, c in enumerate(list(samples[m])):
            show_grid(axes[i, j], samples[m][c], grid_cols, f"{m}: {c}")
    fig.tight_layout()
    return fig


def noised(images: np.ndarray, sigmas: Sequence[float], seed: int = 0) -> Figure:
    """x + σz for a few images at each σ (pixels in [−1, 1]; values outside are clipped for display)."""
    x = images.astype(np.float32) / 127.5 - 1.0
    z = np.random.default_rng(seed).standard_normal(x.shape).astype(np.float32)
    fig, axes = plt.subplots(1, len(sigmas), figsize=(1.8 * len(sigmas), 2.0))
    for ax, s in zip(axes, sigmas):
        xs = np.clip((x + s * z + 1.0) * 127.5, 0, 255).astype(np.uint8)
        show_grid(ax, xs, ncols=int(np.ceil(np.sqrt(len(images)))), title=f"σ = {s:g}")
    fig.tight_layout()
    return fig


def bars(ax: Axes, values: Mapping[str, Sequence[float]], labels: Sequence[str], ylabel: str = "",
         floor: float | None = None, logy: bool = False, errors: Mapping[str, Sequence[float]] | None = None,
         floor_label: str = "floor (real digits)") -> Axes:
    """Grouped bars: one group per key of ``values`` (e.g. a method), one bar per entry of ``labels``;
    ``errors`` (same shape) draws ± error bars (e.g. the standard deviation over seeds)."""
    keys = list(values)
    width = 0.8 / max(1, len(labels))
    for j, lab in enumerate(labels):
        xs = np.arange(len(keys)) + (j - (len(labels) - 1) / 2) * width
        yerr = None if errors is None else [errors[k][j] for k in keys]
        ax.bar(xs, [values[k][j] for k in keys], width, label=lab, yerr=yerr, capsize=3 if yerr else 0)
    if floor is not None:
        ax.axhline(floor, color="k", lw=0.8, ls="--", label=floor_label)
    ax.set_xticks(np.arange(len(keys)), keys)
    if logy:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    return ax


def as_table(rows: Sequence[Mapping[str, Any]], floatfmt: str = "{:.1f}") -> str:
    """A plain-text table of dict rows (same keys), numbers formatted with ``floatfmt``."""
    if not rows:
        return ""
    keys = list(rows[0])
    cells = [[floatfmt.format(r[k]) if isinstance(r[k], float) else str(r[k]) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    line = "  ".join(k.ljust(w) for k, w in zip(keys, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(out)
