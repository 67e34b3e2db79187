"""Why an image teacher's FD swings between checkpoints: its samples' colour, its weights' noise, or its sampler.

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
"""

from __future__ import annotations

import argparse
import copy
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
from cmtutor.sampler import Sampler
from cmtutor.training.loop import train_steps
from cmtutor.training.run import Run, build_run

#: steps between the online snapshots that the long uniform averages are made of
SNAPSHOT_EVERY = 10
#: the coarse sampler beside the benchmark's 40 Heun steps
FEW_STEPS = 18


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
            "fd_colour_matched": round(fd.fd(colour_matched(samples, reference)), 3)}


def averaged(run: Run, snapshots: deque[tuple[int, list[torch.Tensor]]], window: int) -> Sampler:
    """A sampler of the uniform average of the online snapshots of the last ``window`` steps."""
    kept = [w for k, w in snapshots if k > run.step - window]
    model = copy.deepcopy(run.nets.ema.module)
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.copy_(torch.stack([w[i] for w in kept]).mean(0))
    return Sampler(model, run.cfg, run.standardizer, run.dim, teacher=run.nets.teacher)


def swings(data: str, steps: int, every: int, start: int, seed: int, windows: list[int],
           batch_size: int = 64) -> dict[str, Any]:
    """The teacher's measurements every ``every`` steps from ``start`` (see the module docstring)."""
    fd, n = SETS[data], N_EVAL[data]
    run = build_run(config("diffusion", data, steps, batch_size, seed))
    snapshots: deque[tuple[int, list[torch.Tensor]]] = deque(maxlen=max(windows, default=0) // SNAPSHOT_EVERY)
    points = []
    for logs in train_steps(run):
        k = int(logs["step"])
        if windows and k % SNAPSHOT_EVERY == 0:
            snapshots.append((k, [p.detach().clone() for p in run.nets.model.parameters()]))
        if k < start or not (k % every == 0 or k == steps):
            continue
        samplers = {"ema": (run.sampler(), TEACHER_STEPS), "ema_18": (run.sampler(), FEW_STEPS),
                    "online": (run.sampler(weights="online"), TEACHER_STEPS)}
        samplers.update({f"mean_{w}": (averaged(run, snapshots, w), TEACHER_STEPS) for w in windows})
        point: dict[str, Any] = {"step": k, "loss": round(float(logs["loss"]), 5)}
        for name, (sampler, heun) in samplers.items():
            point[name] = measure(fd, sampler.sample_images(n, steps=heun, seed=seed))
        say(f"seed {seed} step {k}: " + ", ".join(f"{name} {m['fd']:.1f} (shift {m['colour_shift_norm']:.1f}, "
                                                    f"without {m['fd_shift_removed']:.1f}, matched {m['fd_colour_matched']:.1f})"
                                                    for name, m in point.items() if isinstance(m, dict)))
        points.append(point)
    return {"points": points}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cmtutor.benchmarks.teacher_swings", description=__doc__.split("\n")[0])
    p.add_argument("--data", choices=sorted(SETS), default="photos")
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--every", type=int, default=500)
    p.add_argument("--start", type=int, default=3000, help="first step measured")
    p.add_argument("--windows", nargs="*", type=int, default=[1000],
                   help="steps of the uniform averages of the online weights")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seeds", nargs="+", type=int, default=[1])
    p.add_argument("--out", help="results file (default: cmtutor/benchmarks/results/teacher_swings_DATA.json)")
    args = p.parse_args(argv)
    if any(w < SNAPSHOT_EVERY for w in args.windows):
        p.error(f"each window must be at least {SNAPSHOT_EVERY} steps")
    torch.set_num_threads(1)  # as the image benchmark and teacher_budget: the same weights as their runs
    out = Path(args.out) if args.out else results_path(args.data)
    command = "python -m cmtutor.benchmarks.teacher_swings " + " ".join(sys.argv[1:] if argv is None else argv)
    fd = SETS[args.data]
    header = {"data": args.data, "budget": {"steps": args.steps, "batch_size": args.batch_size, "threads": 1},
              "quality": fd.protocol(N_EVAL[args.data]), "floor": round(fd.floor(N_EVAL[args.data]), 3),
              "samplers": {"ema": f"sampling EMA, {TEACHER_STEPS} Heun steps", "ema_18": f"sampling EMA, {FEW_STEPS} "
                           "Heun steps", "online": f"online weights, {TEACHER_STEPS} Heun steps",
                           **{f"mean_{w}": f"uniform average of the online weights over the last {w} steps (every "
                              f"{SNAPSHOT_EVERY}), {TEACHER_STEPS} Heun steps" for w in args.windows}}}
    for seed in args.seeds:
        entry = {**swings(args.data, args.steps, args.every, args.start, seed, args.windows, args.batch_size),
                 "measured": {"command": command, "machine": machine()}}
        merge_row(out, header, seed, "diffusion", entry)
    say(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
