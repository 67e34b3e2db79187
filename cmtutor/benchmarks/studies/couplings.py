"""Study behind notebook 04: independent (IC) vs minibatch-OT vs generator-induced (GC) coupling in iCT.

For each seed it trains iCT with the independent coupling (``ict``), with minibatch OT (``ot``) and with GC
at several mixing ratios μ (``gc``, μ = fraction of generated endpoints), all with the same network, batch,
steps and schedule, and records:

* the one-step W2 ratio along training (convergence) and at the end (1 and 2 steps);
* the noise-to-data transport cost E‖x̂ − z‖² per noise level σ of each coupling (Issenhuth et al., Sec. 5):
  IC pairs (x, z), OT pairs (x, z_π) within batches of the training size, GC pairs (x̂(σ), z) with
  x̂(σ) = f_EMA(x + σz, σ) from the trained GC model; and its average over the levels iCT trains on
  (the discrete lognormal pair distribution);
* the quality of GC's endpoints per level, W2(x̂(σ), data)/floor, which shows how pure GC (μ = 1) drifts;
* 500 one-step samples of seed 0 per configuration, for the notebook's scatter plots.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cmtutor.benchmarks.studies import Evaluator, fmt, hardware, ordering, standardized_heldout, verdict
from cmtutor.config import TrainConfig
from cmtutor.core.metrics import transport_cost, w2_exact
from cmtutor.core.schedules import karras_sigmas, lognormal_pair_probs
from cmtutor.course.toy2d import NOTEBOOK_NET, notebook_config
from cmtutor.methods.coupling import gc_endpoint, ot_permutation
from cmtutor.training import Run, build_run, train_steps

NAME = "couplings"


@dataclass
class Study:
    """Settings of the coupling study (defaults: the stored results)."""

    data: str = "moons"
    steps: int = 2000
    seeds: tuple[int, ...] = (0, 1, 2)
    mus: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    eval_every: int = 250
    n_eval: int = 1000
    n_levels: int = 20
    batch_size: int = 256
    #: sampling EMA decay. With 0.999 a 2000-step run still carries 0.999^2000 ≈ 14 % of its random initial
    #: weights and the one-step W2/floor of iCT was 1.96 at step 2000 instead of 1.31 with 0.995 (measured).
    ema_decay: float = 0.995
    net: dict[str, Any] = field(default_factory=lambda: dict(NOTEBOOK_NET))


def config(kind: str, study: Study, seed: int = 0, mu: float = 0.5) -> TrainConfig:
    """The run of coupling ``kind`` (``"ic"``, ``"ot"`` or ``"gc"``) in this study."""
    method = {"ic": "ict", "ot": "ot", "gc": "gc"}[kind]
    # The paper's GC (constant μ, iCT's pseudo-Huber), not the command line's 2D default (squared L2, μ → 0)
    hp = {"mu": mu, "mu_end": None, "distance": "pseudo_huber"} if kind == "gc" else {}
    return notebook_config(method, study.data, steps=study.steps, seed=seed, hp=hp,
                           batch_size=study.batch_size, ema_decay=study.ema_decay, net=dict(study.net))


def train_with_curve(cfg: TrainConfig, evaluator: Evaluator, every: int) -> tuple[Run, list[int], list[float]]:
    """Train ``cfg`` and record the one-step W2 ratio (EMA weights) every ``every`` steps."""
    run = build_run(cfg)
    steps, curve = [], []
    for logs in train_steps(run):
        k = logs["step"]
        if k % every == 0 or k == cfg.steps:
            steps.append(k)
            curve.append(evaluator.w2_ratio(run.sampler(), steps=1, seed=0))  # same noise and held-out points
    return run, steps, curve


def coupled_pairs(kind: str, x: Tensor, z: Tensor, generator: nn.Module | None = None, sigma: float = 1.0,
                  batch: int = 256) -> tuple[Tensor, Tensor]:
    """The (endpoint, noise) pairs a coupling draws from data x and unit noise z (standardised units).

    ``"ic"``: (x, z). ``"ot"``: z re-assigned by exact OT within consecutive batches of ``batch`` points.
    ``"gc"``: (x̂, z) with x̂ = f(x + σ·z, σ) from ``generator`` (a pure GC pair, μ = 1).
    """
    if kind == "ic":
        return x, z
    if kind == "ot":
        out = z.clone()
        for i in range(0, len(x), batch):
            out[i:i + batch] = z[i:i + batch][ot_permutation(x[i:i + batch], z[i:i + batch])]
        return x, out
    if kind == "gc":
        assert generator is not None, "GC pairs need the generator (the EMA of a trained model)"
        s = torch.full((len(x),), float(sigma))
        return gc_endpoint(generator, x, z, s), z
    raise ValueError(f"unknown coupling {kind!r}; expected 'ic', 'ot' or 'gc'")


def levels(run: Run, n: int) -> Tensor:
    """n noise levels spanning [σ_min, σ_max] on a Karras grid (ascending)."""
    nc = run.cfg.noise_config
    return karras_sigmas(n, nc.sigma_min, nc.sigma_max, nc.rho).float()


def training_weights(grid: Tensor, run: Run) -> np.ndarray:
    """How often iCT trains at each level grid[:-1] (its discrete lognormal pair distribution)."""
    hp = run.cfg.hp
    return lognormal_pair_probs(grid.double(), hp["p_mean"], hp["p_std"]).numpy()


def transport_by_level(run: Run, x: Tensor, z: Tensor, grid: Tensor, batch: int) -> dict[str, list[float]]:
    """E‖endpoint − z‖² per level for IC, OT and (using ``run``'s EMA as generator) GC pairs."""
    ic = transport_cost(*coupled_pairs("ic", x, z))
    ot = transport_cost(*coupled_pairs("ot", x, z, batch=batch))
    gen = run.nets.ema.module
    gc = [transport_cost(*coupled_pairs("gc", x, z, gen, float(s))) for s in grid[:-1]]
    return {"ic": [ic] * (len(grid) - 1), "ot": [ot] * (len(grid) - 1), "gc": gc}


def endpoint_quality(run: Run, x: Tensor, z: Tensor, grid: Tensor, ref: Tensor, floor: float) -> list[float]:
    """W2(x̂(σ), data)/floor per level: how data-like the GC endpoints of ``run``'s EMA are."""
    gen = run.nets.ema.module
    return [w2_exact(coupled_pairs("gc", x, z, gen, float(s))[0], ref) / floor for s in grid[:-1]]


def _samples(run: Run, n: int = 500) -> list[list[float]]:
    return np.round(run.sampler().sample(n, steps=1, seed=0).numpy(), 2).tolist()


def run(study: Study | None = None, progress: bool = False) -> dict[str, Any]:
    """Train every configuration for every seed; return the JSON-ready results."""
    study = study or Study()
    t0 = time.time()
    kinds = [("ic", "ic", 0.0), ("ot", "ot", 0.0)] + [(f"gc_{mu:g}", "gc", mu) for mu in study.mus]
    out: dict[str, Any] = {"study": asdict(study), "hardware": hardware(), "runs": {},
                           "transport": {"ic": [], "ot": [], "gc": []}, "transport_avg": {"ic": [], "ot": [], "gc": []},
                           "endpoint_w2": {}, "samples": {}}
    evaluator: Evaluator | None = None
    for seed in study.seeds:
        gen = torch.Generator().manual_seed(100 + seed)
        for key, kind, mu in kinds:
            cfg = config(kind, study, seed, mu)
            if evaluator is None:
                probe = build_run(cfg)
                evaluator = Evaluator(probe.data.heldout, study.n_eval, repeats=3)
                out["floor"] = evaluator.floor
            r, steps, curve = train_with_curve(cfg, evaluator, study.eval_every)
            rec = out["runs"].setdefault(key, {"kind": kind, "mu": mu, "steps": steps, "curves": [],
                                                "final_1step": [], "final_2step": []})
            rec["curves"].append(curve)
            rec["final_1step"].append(curve[-1])  # the same evaluation as the curve's last point
            rec["final_2step"].append(evaluator.w2_ratio(r.sampler(), steps=2))
            if cfg.renoise != "independent":  # OT: also Algorithm 1's independent re-noising, which it replaced
                rec.setdefault("final_2step_independent", []).append(
                    evaluator.w2_ratio(r.sampler(renoise="independent"), steps=2))
            if seed == study.seeds[0]:
                out["samples"][key] = _samples(r)
            x = standardized_heldout(r, study.n_eval, seed)
            z = torch.randn(x.shape, generator=gen)
            grid = levels(r, study.n_levels)
            out["levels"] = grid[:-1].tolist()
            if kind == "gc":
                ref = standardized_heldout(r, study.n_eval, seed + 50)
                floor_std = evaluator.floor / r.standardizer.scale
                out["endpoint_w2"].setdefault(key, []).append(endpoint_quality(r, x, z, grid, ref, floor_std))
            if key == "gc_0.5":
                w = training_weights(grid, r)
                costs = transport_by_level(r, x, z, grid, study.batch_size)
                for k, v in costs.items():
                    out["transport"][k].append(v)
                    out["transport_avg"][k].append(float(np.dot(w, v)))
                out["training_weights"] = w.tolist()
            if progress:
                print(f"[couplings] seed {seed} {key}: final one-step W2 ratio {rec['final_1step'][-1]:.3f} "
                      f"({time.time() - t0:.0f} s)", flush=True)
    out["seconds"] = time.time() - t0
    return out


def claims(res: dict[str, Any]) -> list[dict[str, str]]:
    """Rows of notebook 04's claims table: (a) transport cost, (b) convergence and one-step quality."""
    t = res["transport_avg"]
    a_parts = [ordering(t["gc"], t["ic"]), ordering(t["gc"], t["ot"])]
    ic, gc = res["runs"]["ic"], res["runs"]["gc_0.5"]
    auc_ic = [float(np.mean(c)) for c in ic["curves"]]
    auc_gc = [float(np.mean(c)) for c in gc["curves"]]
    b_parts = [ordering(auc_gc, auc_ic), ordering(gc["final_1step"], ic["final_1step"])]
    return [
        {"claim": "(a) GC lowers the noise-to-data transport cost below IC and OT",
         "measurement": f"E‖x̂−z‖² averaged over the levels iCT trains on: GC {fmt(t['gc'])}, "
                        f"OT {fmt(t['ot'])}, IC {fmt(t['ic'])}",
         "verdict": verdict(a_parts), "parts": f"GC<IC {a_parts[0]}, GC<OT {a_parts[1]}"},
        {"claim": "(b) GC converges faster than IC-CT and reaches better one-step quality",
         "measurement": f"mean one-step W2/floor over training: GC {fmt(auc_gc)}, IC {fmt(auc_ic)}; "
                        f"final: GC {fmt(gc['final_1step'])}, IC {fmt(ic['final_1step'])}",
         "verdict": verdict(b_parts), "parts": f"faster {b_parts[0]}, better final {b_parts[1]}"},
    ]


def minibatch_ot_ratio(dim: int, batch: int = 256, repeats: int = 4, seed: int = 0) -> float:
    """Transport cost of minibatch-OT pairs divided by that of independent pairs, for x, z ~ N(0, I_dim).

    Both sides have the same distribution, so the true optimal cost is 0, while independent pairs cost 2·dim.
    A batch of B points can only choose among B noise draws, so the reduction fades as the dimension grows:
    this is why minibatch OT helps much less on images than on 2D toys.
    """
    gen = torch.Generator().manual_seed(seed)
    ratios = []
    for _ in range(repeats):
        x, z = torch.randn(batch, dim, generator=gen), torch.randn(batch, dim, generator=gen)
        ratios.append(transport_cost(*coupled_pairs("ot", x, z, batch=batch)) / transport_cost(x, z))
    return float(np.mean(ratios))
