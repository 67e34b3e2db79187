"""Notebook 04: how the clean endpoint and the noise of a training pair are coupled.

* independent coupling (IC): (x, z) as drawn;
* minibatch optimal transport (OT): the noise of a minibatch permuted to minimise Σ‖x_i − z_π(i)‖²
  (exact assignment, ``scipy.optimize.linear_sum_assignment``; Pooladian et al. 2023, Tong et al. 2023);
* generator-induced coupling (GC, Issenhuth et al. 2024): the endpoint x̂ = f_EMA(x + σ_i·z, σ_i) of the
  current consistency model, used for a fraction μ of the pairs (the rest independent), with the same z.

The explorer draws the pairs (z → endpoint) and the mean transport cost E‖x̃ − z‖² against σ_i. It needs a
trained consistency model for GC (any CM run: the lead passes the GC run's EMA; here a CD or iCT run serves).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from cmtutor.core.metrics import transport_cost
from cmtutor.course.plots import COLORS, DATA_COLOR, scatter, square_limits
from cmtutor.explorers.base import Explorer, as_sampler, dropdown, fmt, reference_data, selection, style
from cmtutor.sampler import unit_noise

#: A coupling: (data batch x, unit noise z, σ_i, μ) → (clean endpoint x̃, noise), all [B, D].
Coupling = Callable[[Tensor, Tensor, float, float], tuple[Tensor, Tensor]]


def independent(x: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
    """The independent coupling: the pair as drawn."""
    return x, z


def minibatch_ot(x: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
    """Minibatch OT: the noise permuted by the exact assignment minimising Σ_i ‖x_i − z_π(i)‖²."""
    cost = torch.cdist(x.double(), z.double()).pow(2).cpu().numpy()
    rows, cols = linear_sum_assignment(cost)
    perm = torch.as_tensor(cols[np.argsort(rows)], device=z.device)
    return x, z[perm]


@torch.no_grad()
def generator_coupling(model: nn.Module, x: Tensor, z: Tensor, sigma: float, mu: float, u: Tensor
                       ) -> tuple[Tensor, Tensor]:
    """GC mixed with IC: x̃ = x̂ = f(x + σ·z, σ) where u < μ, else x (u ~ U(0,1) per sample); noise kept."""
    x_hat = model(x + sigma * z, torch.full((len(x),), float(sigma), device=x.device))
    return torch.where((u < mu)[:, None], x_hat, x), z


def default_couplings(model: nn.Module, seed: int, n: int) -> dict[str, Coupling]:
    """IC, OT and GC (with ``model`` as f_EMA); GC's mixing draws u from ``seed`` once, so raising μ only
    turns more independent pairs into GC pairs."""
    u = torch.rand(n, generator=torch.Generator().manual_seed(seed + 3))
    return {"independent": lambda x, z, s, m: independent(x, z),
            "OT": lambda x, z, s, m: minibatch_ot(x, z),
            "GC": lambda x, z, s, m: generator_coupling(model, x, z, s, m, u.to(x.device))}


def couplings(model: Any, data: Any | None = None, couplings: Mapping[str, Coupling] | None = None,
              n: int = 256, n_lines: int = 96, seed: int = 0) -> Explorer:
    """The coupling of a training pair, its μ and σ_i, the drawn pairs and the transport cost (notebook 04).

    model: a trained consistency model (``Run`` or ``Sampler``; its EMA weights act as f_EMA for GC and its
        standardiser sets the coordinates). data: raw data points (default: the run's held-out split).
    couplings: name → coupling function ``(x, z, σ, μ) -> (x̃, z)`` (default: :func:`default_couplings`);
        pass the library's GC/OT couplings here to show exactly what training uses.
    n: pairs in the minibatch; n_lines: pairs drawn.
    """
    sampler = as_sampler(model)
    noise = sampler.noise
    x = torch.as_tensor(reference_data([model], data, sampler.standardizer, n, seed), device=sampler.device)
    z = unit_noise(len(x), (sampler.dim,), seed + 1).to(sampler.device)
    net = sampler.model.eval()
    fns = dict(couplings) if couplings is not None else default_couplings(net, seed, len(x))
    names = list(fns)
    levels = [float(s) for s in np.geomspace(0.05, noise.sigma_max, 12)]
    mus = [round(0.1 * i, 1) for i in range(11)]
    cache: dict[tuple[str, float, float], tuple[np.ndarray, np.ndarray, float]] = {}

    def pairs(name: str, sigma: float, mu: float) -> tuple[np.ndarray, np.ndarray, float]:
        key = (name, sigma, mu)
        if key not in cache:
            x0, zz = fns[name](x, z, sigma, mu)
            x0n, zn = x0.detach().cpu().numpy(), zz.detach().cpu().numpy()
            cache[key] = (x0n, zn, transport_cost(x0n, zn))
        return cache[key]

    x_np, z_np = x.cpu().numpy(), z.cpu().numpy()
    controls = {"coupling": dropdown("coupling", names), "μ": selection("μ", mus, value=0.5),
                "σ_i": selection("σ_i", levels, value=levels[4])}

    def draw(axes: list[Axes], **v: Any) -> str:
        name, mu, sigma = v["coupling"], float(v["μ"]), float(v["σ_i"])
        x0, zz, cost = pairs(name, sigma, mu)
        moved = np.abs(x0 - x_np).sum(1) > 1e-6
        ax = axes[0]
        for i in range(min(n_lines, len(x0))):
            ax.plot([zz[i, 0], x0[i, 0]], [zz[i, 1], x0[i, 1]], lw=0.6, alpha=0.6,
                    color=COLORS[1] if moved[i] else COLORS[0])
        scatter(ax, zz[:n_lines], color="k", s=5, alpha=0.6)
        square_limits(ax, np.concatenate([x_np, z_np]))
        ax.set_title(f"{name} pairs z → x̃: cost E‖x̃ − z‖² = {fmt(cost)}", fontsize=9)
        ax = axes[1]
        scatter(ax, x_np, color=DATA_COLOR, s=5, alpha=0.6, label="data x")
        if moved.any():
            scatter(ax, x0[moved], color=COLORS[1], s=6, alpha=0.8, label="generator endpoint x̂")
        square_limits(ax, x_np)
        ax.legend(fontsize=7, loc="lower left")
        ax.set_title(f"endpoints: {int(moved.sum())} of {len(x0)} replaced", fontsize=9)
        ax = axes[2]
        for i, other in enumerate(names):
            costs = [pairs(other, s, mu)[2] for s in levels]
            ax.semilogx(levels, costs, marker="o", ms=3, lw=2 if other == name else 1, label=other,
                        color=COLORS[i % len(COLORS)])
        ax.scatter([sigma], [cost], s=80, facecolors="none", edgecolors="k", zorder=3)
        style(ax, f"cost vs σ_i at μ = {mu:.1f}", "σ_i (GC's noise level)", "transport cost E‖x̃ − z‖²")
        return f"{name}, μ = {mu:.1f}, σ_i = {fmt(sigma)}"

    statics = [{"coupling": c, "μ": 0.5, "σ_i": levels[4]} for c in names[:3]]
    return Explorer("couplings", "Couplings of noise and data: independent, minibatch OT, generator-induced",
                    controls, 3, draw, statics,
                    help_text="coupling: how pairs are formed; μ: share of GC pairs; σ_i: the noise level at "
                              "which GC's model denoises (OT and IC ignore μ and σ_i).")
