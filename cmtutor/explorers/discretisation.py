"""Notebook 03: the discretisation N of CT/iCT, with the exact posterior of the data and no training.

Consistency training (Song et al. 2023, Eq. 10) trains on adjacent pairs (σ_i, σ_{i+1}) of an N-level
Karras grid (Karras et al. 2022, Eq. 5). Its target point for x_{σ_{i+1}} = x + σ_{i+1} z is the one-sample
estimate x + σ_i z, the same clean x with the same noise. For a fixed noisy point that estimate is random
(x is one draw from the posterior p(x | x_{σ_{i+1}})); its mean is one Euler step of the PF-ODE with the
*exact* denoiser D*(x, σ) = E[x | x_σ] (:mod:`cmtutor.core.posterior`):

    E[x + σ_i z | x_{σ_{i+1}}] = x_{σ_{i+1}} + (σ_i − σ_{i+1})·(x_{σ_{i+1}} − D*(x_{σ_{i+1}}, σ_{i+1}))/σ_{i+1},

    Var[x + σ_i z | x_{σ_{i+1}}] = (Δσ/σ_{i+1})²·tr Cov[x | x_{σ_{i+1}}],     Δσ = σ_{i+1} − σ_i,

so CT is CD with an Euler "teacher" built from the exact denoiser, plus zero-mean noise (Song et al. 2023,
Theorem 2). Against the true ODE step Φ(x_{σ_{i+1}}; σ_{i+1} → σ_i) this gives, per pair,

* the **step** ‖x_{σ_{i+1}} − Φ‖² ∝ Δσ²: what the pair teaches the model (the learning signal);
* the **bias** ‖E[target] − Φ‖² ∝ Δσ⁴: Euler's local error;
* the **variance** of the one-sample target ∝ Δσ²: the same order as the step, whatever N.

Small N: few, long steps whose expected targets are biased; chained from σ_max, the N − 1 expected
targets end far from the ODE's solution (with N = 2 at the posterior mean of σ_max: a blob). Large N: the
bias vanishes, but each pair teaches a tiny step, as noisy as before relative to its size, and N − 1 of
them must chain from the boundary σ_min up to σ_max. That is why CT and iCT *grow* N during training
(Song et al. 2023, App. C; Song & Dhariwal 2023, Section 3.4). iCT also draws the pairs from a discrete
lognormal (Section 3.5), shown with the grid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from torch import Tensor

from cmtutor.core.noise import VECTOR_NOISE, NoiseConfig
from cmtutor.core.posterior import posterior_variance, posterior_weights
from cmtutor.core.schedules import karras_sigmas, lognormal_pair_probs
from cmtutor.core.solvers import ode_step, sampling_sigmas, solve_ode
from cmtutor.course.plots import COLORS, DATA_COLOR, scatter, square_limits
from cmtutor.explorers.base import Explorer, fmt, selection, single_threaded, style

#: Grid sizes offered: CT's curriculum starts at N = 2, iCT's at 11 and ends at 1281 (s1 + 1).
DEFAULT_SIZES = (2, 3, 6, 11, 21, 41, 81, 161, 321, 641, 1281)
#: Noise levels at which one pair is examined.
DEFAULT_SIGMAS = (0.1, 0.5, 2.0)

#: x ↦ D(x, σ), and x ↦ tr Cov[x₀ | x_σ] per row.
DenoiserFn = Callable[[Tensor, float], Tensor]
VarianceFn = Callable[[Tensor, float], Tensor]


def nearest_pair(sigmas: Tensor, sigma: float) -> int:
    """The index i ≥ 1 of the upper level σ_{i+1} (``sigmas[i]``, ascending grid) closest to σ in log."""
    return int((torch.log(sigmas[1:].double()) - np.log(sigma)).abs().argmin()) + 1


def exact_step(denoiser: DenoiserFn, x_hi: Tensor, sigma_hi: float, sigma_lo: float, substeps: int = 8) -> Tensor:
    """Φ(x_hi; σ_hi → σ_lo): the PF-ODE solved with ``substeps`` Heun steps (geometric in σ)."""
    grid = torch.as_tensor(np.geomspace(sigma_hi, sigma_lo, substeps + 1))
    return solve_ode(denoiser, x_hi, grid, "heun")  # type: ignore[arg-type,return-value]


def expected_ct_target(denoiser: DenoiserFn, x_hi: Tensor, sigma_hi: float, sigma_lo: float) -> Tensor:
    """E[x + σ_lo z | x_hi]: one Euler step of the PF-ODE with the exact denoiser (module docstring)."""
    return ode_step(denoiser, x_hi, sigma_hi, sigma_lo, "euler")  # type: ignore[arg-type]


def ct_pair_errors(denoiser: DenoiserFn, variance: VarianceFn, x_hi: Tensor, sigma_hi: float, sigma_lo: float,
                   substeps: int = 8) -> dict[str, float]:
    """Mean over the rows of ``x_hi`` of the squared step, bias and variance of CT's target for one pair.

    ``step``: ‖x_hi − Φ‖², ``bias``: ‖E[target] − Φ‖², ``variance``: (Δσ/σ_hi)²·tr Cov[x | x_hi], with Φ the
    exact ODE step from σ_hi to σ_lo and the target x + σ_lo z (Song et al. 2023, Eq. 10).
    """
    with torch.no_grad():
        phi = exact_step(denoiser, x_hi, sigma_hi, sigma_lo, substeps)
        mean = expected_ct_target(denoiser, x_hi, sigma_hi, sigma_lo)
        var = ((sigma_hi - sigma_lo) / sigma_hi) ** 2 * variance(x_hi, sigma_hi)
    return {"step": float((x_hi - phi).pow(2).sum(1).mean()), "bias": float((mean - phi).pow(2).sum(1).mean()),
            "variance": float(var.mean())}


def expected_ct_chain(denoiser: DenoiserFn, x_max: Tensor, sigmas: Tensor) -> Tensor:
    """The N − 1 expected CT targets chained from σ_max down the ascending grid ``sigmas``.

    This is N − 1 Euler steps with the exact denoiser: to first order in Δσ, the one-step samples of a
    perfectly trained CT model on this grid (Song et al. 2023, Theorem 2).
    """
    return solve_ode(denoiser, x_max, sigmas.flip(0), "euler")  # type: ignore[arg-type,return-value]


def one_sample_targets(x_hi: Tensor, sigma_hi: float, sigma_lo: float, data: Tensor, n: int,
                       generator: torch.Generator | None = None) -> Tensor:
    """n draws of CT's target point x + σ_lo z for ONE noisy point x_hi [D]: x ~ p(x | x_hi), z = (x_hi − x)/σ_hi."""
    w = posterior_weights(x_hi[None], sigma_hi, data)[0]
    x = data[torch.multinomial(w, n, replacement=True, generator=generator)]
    return x + sigma_lo * (x_hi - x) / sigma_hi


class FastPosteriorMean:
    """D*(x, σ) for a scalar σ: :class:`cmtutor.core.posterior.IdealDenoiser` as one fused softmax (no chunking).

    The explorer evaluates D* a few thousand times on small batches, where IdealDenoiser's per-call overhead
    dominates; this gives the same values (a unit test checks it) in about half the time.
    """

    def __init__(self, data: Tensor) -> None:
        self.data = data

    def __call__(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        d2 = torch.cdist(x, self.data).pow_(2)
        return torch.softmax(d2.mul_(-0.5 / float(sigma) ** 2), dim=1) @ self.data


def _box_limits(ax: Axes, points: np.ndarray, pad: float = 0.15) -> None:
    """Equal aspect and limits covering every one of ``points`` (a zoom on one pair)."""
    lo, hi = points.min(0), points.max(0)
    c, r = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 1e-12) * (1 + pad)
    ax.set_xlim(c[0] - r, c[0] + r)
    ax.set_ylim(c[1] - r, c[1] + r)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def _as_points(data: Any) -> Tensor:
    if hasattr(data, "train_x"):  # a Run: its training data in model coordinates
        data = data.train_x
    x = torch.as_tensor(np.asarray(data.detach().cpu() if hasattr(data, "detach") else data, dtype=np.float32))
    if x.ndim != 2:
        raise ValueError(f"discretisation needs points [N, D] in model coordinates, got shape {tuple(x.shape)}")
    return x


@single_threaded
def discretisation(data: Any, noise: NoiseConfig | None = None, sizes: Sequence[int] = DEFAULT_SIZES,
                   sigmas: Sequence[float] = DEFAULT_SIGMAS, n_data: int = 300, n_points: int = 64,
                   n_chain: int = 64, n_targets: int = 200, seed: int = 0) -> Explorer:
    """The grid size N of CT/iCT: biased targets for small N, a weak per-pair signal for large N (notebook 03).

    data: data points in model (standardised) coordinates [N, D], or a ``Run`` (its training data and noise
        levels); ``n_data`` of them define the exact posterior and denoiser D*.
    noise: σ_min, σ_max, ρ of the grid (default: the Run's, or the 2D defaults).
    sizes: the grid sizes N offered; sigmas: the levels σ at which the pair nearest σ is examined.
    n_points: noisy points per pair for the averages; n_chain: points chained from σ_max; n_targets: one-sample
        targets drawn for the highlighted point. Everything is computed once, from ``seed``; nothing trains.
    """
    if noise is None:
        cfg = getattr(data, "cfg", None)
        if cfg is not None:
            noise = cfg.noise_config
        else:
            noise = VECTOR_NOISE
    sizes, sigmas = sorted(int(n) for n in sizes), sorted(float(s) for s in sigmas)
    if sizes[0] < 2:
        raise ValueError(f"a grid needs N >= 2 levels, got {sizes[0]}")
    points = _as_points(data).double()
    g = torch.Generator().manual_seed(seed)
    sub = points[torch.randperm(len(points), generator=g)[:n_data]]
    x_clean = sub[torch.randint(len(sub), (n_points,), generator=g)]
    z = torch.randn(n_points, sub.shape[1], generator=g, dtype=torch.float64)
    z_chain = torch.randn(n_chain, sub.shape[1], generator=g, dtype=torch.float64)
    den = FastPosteriorMean(sub)

    def variance(x: Tensor, s: float) -> Tensor:
        return posterior_variance(x, s, sub)

    grids = {n: karras_sigmas(n, noise.sigma_min, noise.sigma_max, noise.rho) for n in sizes}
    pairs: dict[tuple[int, float], tuple[float, float]] = {}
    errors: dict[tuple[int, float], dict[str, float]] = {}
    zoom: dict[tuple[int, float], dict[str, np.ndarray]] = {}
    with torch.no_grad():
        for n, grid in grids.items():
            for s in sigmas:
                i = nearest_pair(grid, s)
                hi, lo = float(grid[i]), float(grid[i - 1])
                pairs[n, s] = (lo, hi)
                x_hi = x_clean + hi * z
                errors[n, s] = ct_pair_errors(den, variance, x_hi, hi, lo)
                # the highlighted point (row 0): its ODE path, expected and one-sample targets
                p = x_hi[:1]
                path = solve_ode(den, p, torch.as_tensor(np.geomspace(hi, lo, 9)), "heun", return_trajectory=True)
                zoom[n, s] = {"start": p[0].numpy(), "path": path[1][:, 0].numpy(),  # type: ignore[index]
                              "mean": expected_ct_target(den, p, hi, lo)[0].numpy(),
                              "targets": one_sample_targets(p[0], hi, lo, sub, n_targets, g).numpy()}
        x_max = noise.sigma_max * z_chain
        reference = solve_ode(den, x_max, sampling_sigmas(256, noise.sigma_min, noise.sigma_max, noise.rho), "heun")
        # single precision for the chains: their errors are far above its rounding, and it halves the time
        den32, x32 = FastPosteriorMean(sub.float()), x_max.float()
        chains = {n: expected_ct_chain(den32, x32, grid).numpy() for n, grid in grids.items()}
    ref_np = reference.numpy()  # type: ignore[union-attr]
    chain_err = {n: float(((c - ref_np) ** 2).sum(1).mean()) for n, c in chains.items()}
    probs = {n: lognormal_pair_probs(grid).numpy() for n, grid in grids.items()}
    sub_np = sub.numpy()

    controls = {"N": selection("N", sizes, value=11 if 11 in sizes else sizes[len(sizes) // 2]),
                "σ": selection("σ", sigmas, value=0.5 if 0.5 in sigmas else sigmas[len(sigmas) // 2])}

    def draw(axes: list[Axes], **v: Any) -> str:
        n, s = int(v["N"]), float(v["σ"])
        lo, hi = pairs[n, s]
        grid = grids[n].numpy()
        # (a) the grid and the pair distributions of CT (uniform) and iCT (lognormal)
        ax = axes[0]
        ax.stairs(np.ones(n - 1), grid, color=COLORS[0], lw=1.2, label="CT: uniform")
        ax.stairs((n - 1) * probs[n], grid, color=COLORS[3], lw=1.2, label="iCT: lognormal")
        ax.axvspan(lo, hi, color=COLORS[1], alpha=0.25, lw=0, label=f"the pair at σ ≈ {fmt(s)}")
        ax.set_xscale("log")
        ax.set_ylim(0, max(2.0, 1.15 * (n - 1) * float(probs[n].max())))
        ax.plot(grid, np.full(n, 0.0), "|", color="k", ms=8, alpha=0.6 if n < 200 else 0.15, clip_on=False)
        style(ax, f"N = {n}: the levels (ticks) and pairs", "σ", "pair probability × (N − 1)")
        ax.legend(fontsize=7, loc="upper left")
        # (b) one noisy point: CT's one-sample targets, their mean (Euler with D*) and the exact ODE step
        ax = axes[1]
        zm = zoom[n, s]
        tg = zm["targets"]
        scatter(ax, tg, color=COLORS[0], s=6, alpha=0.35)
        ax.plot(zm["path"][:, 0], zm["path"][:, 1], color="k", lw=1.2)
        ax.scatter(*zm["start"], marker="*", s=110, color=COLORS[1], zorder=3)
        ax.scatter(*zm["path"][-1], s=45, facecolors="none", edgecolors="k", lw=1.3, zorder=4)
        ax.scatter(*zm["mean"], marker="x", s=55, color=COLORS[3], lw=2, zorder=5)
        _box_limits(ax, np.concatenate([np.percentile(tg, [2, 98], axis=0), zm["path"], zm["mean"][None]]))
        bias = float(np.linalg.norm(zm["mean"] - zm["path"][-1]))
        step = float(np.linalg.norm(zm["start"] - zm["path"][-1]))
        ax.set_title(f"σ {fmt(hi)} → {fmt(lo)}: ‖step‖ {fmt(step)}, ‖bias‖ {fmt(bias)}", fontsize=9)
        # (c) per pair, as N grows: step (signal), variance (noise), bias
        ax = axes[2]
        for key, color, label in (("step", "k", "step² ‖x − Φ‖² (signal)"),
                                  ("variance", COLORS[0], "variance of the target (noise)"),
                                  ("bias", COLORS[3], "bias² ‖E target − Φ‖²")):
            ys = [errors[m, s][key] for m in sizes]
            ax.loglog(sizes, ys, marker="o", ms=3, color=color, label=label)
            ax.scatter([n], [errors[n, s][key]], s=70, facecolors="none", edgecolors=COLORS[1], lw=1.5, zorder=3)
        style(ax, f"the pair at σ ≈ {fmt(s)}, vs N", "grid size N", f"squared distance (mean of {n_points})",
              legend=False)
        ax.legend(fontsize=7, loc="lower left")
        # (d) the expected targets chained from σ_max: what a perfect CT model on this grid would sample
        ax = axes[3]
        scatter(ax, sub_np, color=DATA_COLOR, alpha=0.4)
        c = chains[n]
        ax.add_collection(LineCollection(np.stack([c, ref_np], axis=1), colors="k", linewidths=0.5, alpha=0.5))
        scatter(ax, c, color=COLORS[1], s=7, alpha=0.9)
        square_limits(ax, sub_np)
        ax.set_title(f"{n - 1} chained mean target{'s' * (n > 2)}: error {fmt(chain_err[n])}", fontsize=9)
        return f"N = {n}, pair at σ ≈ {fmt(s)}"

    statics = [{"N": m, "σ": 0.5 if 0.5 in sigmas else sigmas[len(sigmas) // 2]}
               for m in dict.fromkeys(min(sizes, key=lambda k: abs(k - t)) for t in (3, 11, 161))]
    return Explorer("discretisation", "The discretisation N of CT/iCT (exact posterior, nothing trained)", controls,
                    4, draw, statics,
                    help_text="N: levels of the Karras grid; σ: where the pair (σ_i, σ_i+1) is examined. Second "
                              "panel: ★ a noisy point at σ_i+1, black: its exact ODE step to σ_i (○), dots: CT's "
                              "one-sample targets, ×: their mean (one Euler step). Last panel: the mean targets "
                              "chained from σ_max (red) and the exact ODE's ends (lines).")
