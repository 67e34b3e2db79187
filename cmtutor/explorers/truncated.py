"""Notebook 05: the truncation time t' and the boundary weight w_b of TCM (Lee et al. 2025, Eq. 5 and 7).

A TCM stage-2 run for every (t', w_b) costs about as much CPU time as the whole notebook may take, so this
explorer trains nothing and computes nothing new: it shows the *stored* results of the 3-seed study behind
notebook 05 (:mod:`cmtutor.benchmarks.studies.truncated`; ``python -m cmtutor.benchmarks.papers --only truncated``
re-measures them), and, where the notebook trained the run for the chosen setting itself (the default TCM
t' = 1, w_b = 0.1 and stage 2 without the boundary model), that run's samples.

The study varies one setting at a time around (t' = 1, w_b = 0.1): t' at w_b = 0.1, w_b at t' = 1, and stage 2
without the frozen boundary model (``anchor="none"``, shown as w_b = "none"). Other combinations were not
trained; the explorer says so instead of filling them in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter

from cmtutor.benchmarks.studies import Evaluator
from cmtutor.benchmarks.studies.truncated import Study, variants
from cmtutor.course.plots import COLORS, DATA_COLOR, scatter, square_limits
from cmtutor.explorers import common
from cmtutor.explorers.base import Explorer, as_sampler, reference_data, selection, style

#: The w_b value that stands for stage 2 without the boundary model (no frozen targets at all).
NO_ANCHOR = "none"
#: The study's baselines, drawn beside the chosen stage-2 run (name in the results → label).
BASELINES = {"stage1": "stage 1 alone", "ict_same_budget": "iCT, same budget"}


def study_grid(results: Mapping[str, Any]) -> dict[tuple[float, Any], str]:
    """(t', w_b) → the name of the study's stage-2 run with those settings (``cmtutor.benchmarks.studies.truncated``)."""
    st = results["study"]
    study = Study(t_prime=float(st["t_prime"]), w_b=float(st["w_b"]), t_primes=tuple(st["t_primes"]),
                  w_bs=tuple(st["w_bs"]))
    grid: dict[tuple[float, Any], str] = {}
    for name, hp in variants(study):
        w_b: Any = NO_ANCHOR if hp.get("anchor") == "none" else float(hp.get("w_b", study.w_b))
        grid[float(hp.get("t_prime", study.t_prime)), w_b] = name
    missing = [name for name in grid.values() if name not in results["runs"]]
    if missing:
        raise ValueError(f"the stored results lack the runs {missing}; re-run the truncated study")
    return grid


def truncation(results: Mapping[str, Any], runs: Mapping[str, Any] | None = None, data: Any | None = None,
               n: int = 500, seed: int = 0) -> Explorer:
    """t' and w_b of TCM: the stored 3-seed study, and this notebook's own runs where it has them (notebook 05).

    results: the stored study, ``cmtutor.benchmarks.studies.load_results("truncated")`` (or a fresh
        ``cmtutor.benchmarks.studies.truncated.run()``).
    runs: the study's run name → a ``Run``/``Sampler`` the notebook trained with those settings, e.g.
        ``{"tcm": tcm, "no_anchor": naive}``; their K-step samples are drawn (computed once, here).
    data: raw data points for the samples panel (default: the held-out split of the first run).
    """
    grid = study_grid(results)
    stored = results["runs"]
    curves = results.get("curves", {})
    t_values = sorted({tp for tp, _ in grid})
    w_numbers = sorted({w for _, w in grid if w != NO_ANCHOR})
    w_values: list[Any] = ([NO_ANCHOR] if any(w == NO_ANCHOR for _, w in grid) else []) + w_numbers
    default = (float(results["study"]["t_prime"]), float(results["study"]["w_b"]))
    runs = dict(runs or {})
    unknown = [k for k in runs if k not in grid.values()]
    if unknown:
        raise ValueError(f"runs {unknown} are not in the study's grid {sorted(grid.values())}")
    samplers = {k: as_sampler(v) for k, v in runs.items()}
    outs: dict[str, list[np.ndarray]] = {}
    ratios: dict[tuple[str, int], float] = {}
    evaluator: Any = None
    x_data = np.zeros((0, 2))
    if samplers:
        first = next(iter(samplers.values()))
        x_data = reference_data(list(runs.values()), data, first.standardizer, n, seed)
        outs = {k: common.samples_per_step(s, n, 2, seed) for k, s in samplers.items()}
        # the study's own final evaluation (its n, 3 noise draws and held-out subsamples), so the numbers
        # of the notebook's runs read on the same scale as the stored ones
        heldout = np.asarray(data if data is not None else next(r for r in runs.values() if hasattr(r, "data"))
                             .data.heldout, dtype=np.float32)
        evaluator = Evaluator(heldout, int(results["study"].get("n_eval", 1000)), repeats=3)

    def ratio(run_name: str, k: int) -> float:
        """W2/floor of a notebook run, computed when first shown (about a second each) and kept."""
        if (run_name, k) not in ratios:
            ratios[run_name, k] = evaluator.w2_ratio(samplers[run_name], steps=k)
        return ratios[run_name, k]

    controls = {"t'": selection("t'", t_values, value=default[0], labels=[f"{v:g}" for v in t_values]),
                "w_b": selection("w_b", w_values, value=default[1],
                                 labels=[v if isinstance(v, str) else f"{v:g}" for v in w_values]),
                "steps": selection("steps", [1, 2])}

    def label(w: Any) -> str:
        return w if isinstance(w, str) else f"{w:g}"

    def draw(axes: list[Axes], **v: Any) -> str:
        key, k = (float(v["t'"]), v["w_b"]), int(v["steps"])
        name = grid.get(key)
        field = f"final_{k}step"
        setting = f"t' = {key[0]:g}, w_b = {label(key[1])}"
        # (a) the study's grid: mean W2/floor over seeds, the chosen setting boxed
        ax = axes[0]
        m = np.full((len(t_values), len(w_values)), np.nan)
        for (tp, w), run_name in grid.items():
            m[t_values.index(tp), w_values.index(w)] = np.mean(stored[run_name][field])
        finite = m[np.isfinite(m)]
        ax.imshow(np.log(m), cmap="Blues", origin="lower", aspect="auto")
        for (i, j), val in np.ndenumerate(m):
            dark = np.isfinite(val) and np.log(val) > np.log(finite).mean()
            ax.text(j, i, "not\ntrained" if np.isnan(val) else f"{val:.2f}", ha="center", va="center",
                    fontsize=7 if np.isnan(val) else 8, color="w" if dark else "k")
        ax.add_patch(Rectangle((w_values.index(key[1]) - 0.5, t_values.index(key[0]) - 0.5), 1, 1, fill=False,
                               ec=COLORS[1], lw=2.5))
        ax.set_xticks(range(len(w_values)), [label(w) for w in w_values], fontsize=7)
        ax.set_yticks(range(len(t_values)), [f"{t:g}" for t in t_values], fontsize=7)
        style(ax, f"study: {k}-step W2/floor, mean of seeds", "w_b ('none': no boundary model)", "t'",
              legend=False, grid=False)
        # (b) the chosen run, seed by seed, beside stage 1 and iCT at the same total budget
        ax = axes[1]
        rows = [(BASELINES[b], stored[b][field], DATA_COLOR) for b in BASELINES if b in stored]
        if name is not None:
            rows.append((f"TCM, {setting}", stored[name][field], COLORS[1]))
        for i, (row_label, vals, color) in enumerate(rows):
            ax.scatter(np.full(len(vals), i), vals, color=color, s=25, zorder=3)
            ax.hlines(np.mean(vals), i - 0.25, i + 0.25, color="k", lw=1.5)
        ax.set_xticks(range(len(rows)), [r[0] for r in rows], rotation=15, ha="right", fontsize=7)
        ax.set_xlim(-0.6, len(rows) - 0.4)
        title = "study: W2/floor per seed" if name is not None else "study: this setting was not trained"
        style(ax, title, "", f"{k}-step W2 / floor", legend=False)
        # (c) one-step W2/floor along stage 2 (recorded for some runs only)
        ax = axes[2]
        for i, (run_name, c) in enumerate(curves.items()):
            mine = run_name == name
            tp, w = next(kk for kk, nn in grid.items() if nn == run_name)
            ax.plot(c["steps"], np.mean(c["w2"], 0), lw=2 if mine else 1, ls="-" if mine else (":", "--", "-.")[i % 3],
                    color=COLORS[1] if mine else "gray", label=f"t' = {tp:g}, w_b = {label(w)}")
        ax.set_yscale("log")
        for axis_fmt in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
            axis_fmt(FuncFormatter(lambda y, _: f"{y:g}"))
        ax.tick_params(axis="y", which="both", labelsize=7)
        note = "" if name in curves else " (none for this run)"
        style(ax, f"study: 1-step W2/floor along stage 2{note}", "stage-2 step", "W2 / floor (mean of seeds)",
              legend=bool(curves))
        # (d) samples of the notebook's own run with these settings, if it trained one
        ax = axes[3]
        if name in outs:
            scatter(ax, x_data, color=DATA_COLOR, alpha=0.3)
            scatter(ax, outs[name][k - 1], color=COLORS[1], s=4, alpha=0.7)
            square_limits(ax, x_data)
            ax.set_title(f"this notebook's run, {k}-step: W2/floor {ratio(name, k):.2f}", fontsize=9)
        else:
            ax.text(0.5, 0.5, "not trained in this notebook\n(stored study only)", ha="center", va="center",
                    fontsize=9, transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
        return f"TCM stage 2, {setting}, {k}-step sampling"

    statics = [{"t'": default[0], "w_b": default[1], "steps": 1}]
    if NO_ANCHOR in w_values:
        statics.append({"t'": default[0], "w_b": NO_ANCHOR, "steps": 1})
    statics.append({"t'": t_values[-1], "w_b": default[1], "steps": 1})
    return Explorer("truncation", "TCM's truncation time t' and boundary weight w_b", controls, 4, draw, statics,
                    help_text="t', w_b: a stage-2 setting of the stored 3-seed study (nothing is trained here); "
                              "steps: 1- or 2-step sampling. Samples only for the runs this notebook trained.")
