"""Why an image teacher's FD swings between checkpoints: its colour, weights, sampler, mix of regions, noise levels.

    python -m cmtutor.benchmarks.teacher_swings --data photos --seeds 1   # results/teacher_swings_photos.json

:mod:`cmtutor.benchmarks.teacher_budget` found the 5000-step photos teacher's FD-photos jumping by up to 4× between
checkpoints 1000 steps apart (docs/defaults.md#the-photos-budget). This trains the same teacher (the same
configuration and seed, so the same weights bit for bit) and, every ``--every`` steps from ``--start``, samples
``N_EVAL`` images at 40 Heun steps from

* ``ema``: the sampling EMA (what the benchmark measures), and at 18 Heun steps (``ema_18``: the sampler's share);
* ``online``: the weights being trained;
* ``mean_W``: the uniform average of the online weights over the last ``W`` steps (snapshots every
  ``SNAPSHOT_EVERY`` steps), a much longer window than the EMA's at this budget (post-hoc averaging, as in EDM2,
  Karras et al. 2024, Sec. 3).

For each it records the FD, the samples' colour shift (per-channel mean minus the reference's, 0–255 units), their
contrast (per-channel standard deviation over the reference's), the FD after removing that shift (every sample's
channels moved by it) and after also matching the contrast: when the shift-free FD stays put while the FD
jumps, the swings are the colour of the samples, the known failure of diffusion samplers with noisy weights (Song &
Ermon 2020, "Improved techniques for training score-based generative models", Sec. 3.5 and Fig. 6).

It also records the samples' *balance*: the FD classifier predicts each patch's photo and region, and the
total variation between the samples' and the reference's histograms of predicted classes says how far the teacher's
mix of regions is from the data's; ``fd_balanced`` is the FD with the samples weighted so that their histogram is the
reference's (classes the samples never hit cannot be restored; ``missing_mass`` is the reference's share of them).
When the balanced FD stays put while the FD jumps, the swings are the proportions of what the teacher draws, not
how well it draws each kind of patch.

``--samplers ... split`` adds two hybrids at every point after the first, made of this point's EMA and the previous
point's: ``high_prev`` denoises with the previous EMA above σ = ``--split-sigma`` and this one below, ``low_prev`` the
other way round. When the FD moves between two points, the hybrid whose FD stays with the previous point's says which
noise levels the change lives in: the high ones, where a diffusion sampler decides the coarse layout (which photo
and region a patch shows), or the low ones, where it draws the detail.
"""

from __future__ import annotations

import argparse
import copy
import shlex
import sys
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cmtutor.benchmarks.common import machine, say
from cmtutor.benchmarks.image_quality import N_EVAL, RESULTS_DIR, SETS, config, merge_row
from cmtutor.benchmarks.teacher_budget import TEACHER_STEPS
from cmtutor.evaluation.classifier_fd import ClassifierFD
from cmtutor.evaluation.fid import feature_stats, frechet_distance
from cmtutor.methods.tcm import TruncatedConsistency
from cmtutor.sampler import Sampler
from cmtutor.training.loop import train_steps
from cmtutor.training.run import Run, build_run

#: steps between the online snapshots that the long uniform averages are made of
SNAPSHOT_EVERY = 10
#: the coarse sampler beside the benchmark's 40 Heun steps
FEW_STEPS = 18
#: the sets of weights measured unless ``--samplers`` says otherwise; ``split`` adds ``high_prev`` and ``low_prev``
DEFAULT_SAMPLERS = ("ema", "ema_18", "online", "mean")
ALL_SAMPLERS = (*DEFAULT_SAMPLERS, "split")
#: where the split samplers switch networks: above it (23 of the 40 Heun steps) the coarse layout is decided
SPLIT_SIGMA = 1.0


def results_path(data: str) -> Path:
    return RESULTS_DIR / f"teacher_swings_{data}.json"


def colour_shift(samples: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-channel mean of uint8 [N, H, W, C] samples minus the reference's, in 0–255 units."""
    return samples.reshape(-1, samples.shape[-1]).mean(0) - reference.reshape(-1, reference.shape[-1]).mean(0)


def without_shift(samples: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """The samples with every pixel's channels moved by −``shift`` (clipped to 0–255): their colour shift removed."""
    return np.clip(np.rint(samples.astype(np.float64) - shift), 0, 255).astype(np.uint8)


def colour_matched(samples: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The samples with each channel's mean and standard deviation set to the reference's (clipped to 0–255)."""
    c = samples.shape[-1]
    s, r = samples.reshape(-1, c).astype(np.float64), reference.reshape(-1, c).astype(np.float64)
    out = (samples.astype(np.float64) - s.mean(0)) / s.std(0).clip(1e-6) * r.std(0) + r.mean(0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def mixes(classes: np.ndarray, reference_classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The share of each class among the samples' labels and among the reference's (over the classes either has)."""
    k = int(max(classes.max(), reference_classes.max())) + 1
    return (np.bincount(classes, minlength=k) / len(classes),
            np.bincount(reference_classes, minlength=k) / len(reference_classes))


def balance_weights(classes: np.ndarray, reference_classes: np.ndarray) -> tuple[np.ndarray, float]:
    """Weights of the samples (summing to 1) that give their classes the reference's histogram, and the reference's
    share of the classes no sample has (that share cannot be restored; the rest is rescaled to sum to 1)."""
    p, q = mixes(classes, reference_classes)
    missing = float(q[p == 0].sum())
    w = q[classes] / p[classes]
    return w / w.sum(), missing


def weighted_stats(feats: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of ``feats`` [N, D] under ``weights`` (numpy's reliability-weighted unbiased estimate;
    uniform weights give :func:`cmtutor.evaluation.fid.feature_stats`)."""
    return np.average(feats, axis=0, weights=weights), np.cov(feats, rowvar=False, aweights=weights)


def balance(fd: ClassifierFD, samples: np.ndarray) -> dict[str, Any]:
    """How far the samples' mix of predicted classes is from the reference's, and their FD with that mix corrected."""
    reference = fd.data()[2]
    classes, reference_classes = fd.predict(samples), fd.predict(reference)
    p, q = mixes(classes, reference_classes)
    tv = 0.5 * float(np.abs(p - q).sum())
    weights, missing = balance_weights(classes, reference_classes)
    balanced = frechet_distance(*weighted_stats(fd.features(samples), weights),
                                *feature_stats(fd.features(reference)))
    return {"region_tv": round(tv, 4), "missing_mass": round(missing, 4), "fd_balanced": round(balanced, 3)}


def measure(fd: ClassifierFD, samples: np.ndarray) -> dict[str, Any]:
    """FD, colour shift, contrast ratio, and the FD with the shift (and the contrast) removed, of uint8 samples
    against the held-out images."""
    reference = fd.data()[2]
    shift = colour_shift(samples, reference)
    c = samples.shape[-1]
    contrast = samples.reshape(-1, c).std(0) / reference.reshape(-1, c).std(0)
    return {"fd": round(fd.fd(samples), 3), "colour_shift": [round(float(v), 2) for v in shift],
            "colour_shift_norm": round(float(np.linalg.norm(shift)), 2),
            "contrast_ratio": [round(float(v), 3) for v in contrast],
            "fd_shift_removed": round(fd.fd(without_shift(samples, shift)), 3),
            "fd_colour_matched": round(fd.fd(colour_matched(samples, reference)), 3), **balance(fd, samples)}


def summary(m: dict[str, Any]) -> str:
    """One sampler's measurements in a line of the progress log."""
    return (f"{m['fd']:.1f} (shift {m['colour_shift_norm']:.1f}, without {m['fd_shift_removed']:.1f}, matched "
            f"{m['fd_colour_matched']:.1f}, TV {m['region_tv']:.2f}, balanced {m['fd_balanced']:.1f})")


def sampler_of(run: Run, model: torch.nn.Module) -> Sampler:
    """A sampler of ``model`` with the run's settings (:meth:`Run.sampler` samples only the run's own weights)."""
    return Sampler(model, run.cfg, run.standardizer, run.dim, teacher=run.nets.teacher)


def averaged(run: Run, snapshots: deque[tuple[int, list[torch.Tensor]]], window: int) -> Sampler:
    """A sampler of the uniform average of the online snapshots of the last ``window`` steps."""
    kept = [w for k, w in snapshots if k > run.step - window]
    model = copy.deepcopy(run.nets.ema.module)
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.copy_(torch.stack([w[i] for w in kept]).mean(0))
    return sampler_of(run, model)


def split(run: Run, high: torch.nn.Module, low: torch.nn.Module, sigma: float) -> Sampler:
    """A sampler that denoises with ``high`` for σ ≥ ``sigma`` and with ``low`` below (TCM's piecewise network)."""
    return sampler_of(run, TruncatedConsistency(high, low, sigma))


def swings(data: str, steps: int, every: int, start: int, seed: int, windows: list[int],
           batch_size: int = 64, samplers: tuple[str, ...] = DEFAULT_SAMPLERS,
           split_sigma: float = SPLIT_SIGMA) -> dict[str, Any]:
    """The teacher's measurements every ``every`` steps from ``start`` (see the module docstring)."""
    fd, n = SETS[data], N_EVAL[data]
    run = build_run(config("diffusion", data, steps, batch_size, seed))
    snapshots: deque[tuple[int, list[torch.Tensor]]] = deque(maxlen=max(windows, default=0) // SNAPSHOT_EVERY)
    points, previous = [], None
    for logs in train_steps(run):
        k = int(logs["step"])
        if "mean" in samplers and windows and k % SNAPSHOT_EVERY == 0:
            snapshots.append((k, [p.detach().clone() for p in run.nets.model.parameters()]))
        if k < start or not (k % every == 0 or k == steps):
            continue
        chosen: dict[str, tuple[Sampler, int]] = {}
        if "ema" in samplers:
            chosen["ema"] = (run.sampler(), TEACHER_STEPS)
        if "ema_18" in samplers:
            chosen["ema_18"] = (run.sampler(), FEW_STEPS)
        if "online" in samplers:
            chosen["online"] = (run.sampler(weights="online"), TEACHER_STEPS)
        if "mean" in samplers:
            chosen.update({f"mean_{w}": (averaged(run, snapshots, w), TEACHER_STEPS) for w in windows})
        if "split" in samplers:  # which noise levels carry the change since the last point
            current = copy.deepcopy(run.nets.ema.module).eval()
            if previous is not None:
                chosen["high_prev"] = (split(run, previous, current, split_sigma), TEACHER_STEPS)
                chosen["low_prev"] = (split(run, current, previous, split_sigma), TEACHER_STEPS)
            previous = current
        point: dict[str, Any] = {"step": k, "loss": round(float(logs["loss"]), 5)}
        for name, (sampler, heun) in chosen.items():
            point[name] = measure(fd, sampler.sample_images(n, steps=heun, seed=seed))
        say(f"seed {seed} step {k}: " + ", ".join(f"{name} {summary(m)}" for name, m in point.items()
                                                    if isinstance(m, dict)))
        points.append(point)
    return {"points": points}


def described(samplers: list[str], windows: list[int], split_sigma: float) -> dict[str, str]:
    """What each measured set of weights is (the results file's ``samplers``; the page's legend)."""
    known = {"ema": f"sampling EMA, {TEACHER_STEPS} Heun steps", "ema_18": f"sampling EMA, {FEW_STEPS} Heun steps",
             "online": f"online weights, {TEACHER_STEPS} Heun steps",
             **{f"mean_{w}": f"uniform average of the online weights over the last {w} steps (every "
                f"{SNAPSHOT_EVERY}), {TEACHER_STEPS} Heun steps" for w in windows},
             "high_prev": f"the previous point's EMA for σ ≥ {split_sigma:g}, this point's below, {TEACHER_STEPS} "
                          "Heun steps",
             "low_prev": f"this point's EMA for σ ≥ {split_sigma:g}, the previous point's below, {TEACHER_STEPS} "
                         "Heun steps"}
    chosen = [name for name in known
              if name in samplers or (name.startswith("mean_") and "mean" in samplers)
              or (name.endswith("_prev") and "split" in samplers)]
    return {name: known[name] for name in chosen}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cmtutor.benchmarks.teacher_swings", description=__doc__.split("\n")[0])
    p.add_argument("--data", choices=sorted(SETS), default="photos")
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--every", type=int, default=500)
    p.add_argument("--start", type=int, default=3000, help="first step measured")
    p.add_argument("--windows", nargs="*", type=int, default=[1000],
                   help="steps of the uniform averages of the online weights")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--samplers", nargs="+", choices=ALL_SAMPLERS, default=list(DEFAULT_SAMPLERS),
                   help="the sets of weights to measure (split: the hybrids of this point's EMA and the last one's)")
    p.add_argument("--split-sigma", type=float, default=SPLIT_SIGMA, help="where the split samplers switch networks")
    p.add_argument("--seeds", nargs="+", type=int, default=[1])
    p.add_argument("--out", help="results file (default: cmtutor/benchmarks/results/teacher_swings_DATA.json)")
    args = p.parse_args(argv)
    if any(w < SNAPSHOT_EVERY for w in args.windows):
        p.error(f"each window must be at least {SNAPSHOT_EVERY} steps")
    torch.set_num_threads(1)  # as the image benchmark and teacher_budget: the same weights as their runs
    out = Path(args.out) if args.out else results_path(args.data)
    command = "python -m cmtutor.benchmarks.teacher_swings " + shlex.join(sys.argv[1:] if argv is None else argv)
    fd = SETS[args.data]
    header = {"data": args.data, "budget": {"steps": args.steps, "batch_size": args.batch_size, "threads": 1},
              "quality": fd.protocol(N_EVAL[args.data]), "floor": round(fd.floor(N_EVAL[args.data]), 3),
              "samplers": described(args.samplers, args.windows, args.split_sigma)}
    # the teacher's noise levels: the photos default changed (P_mean -1.2 -> -0.4), so each row says which it had
    teacher_hp = dict(config("diffusion", args.data, args.steps, args.batch_size, 0).hp)
    for seed in args.seeds:
        entry = {**swings(args.data, args.steps, args.every, args.start, seed, args.windows, args.batch_size,
                          tuple(args.samplers), args.split_sigma), "teacher_hp": teacher_hp,
                 "measured": {"command": command, "machine": machine()}}
        merge_row(out, header, seed, "diffusion", entry)
    say(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
