"""The short GPU proxy on CIFAR-10: each method trained for about 10 minutes of one H200, then FID-5k.

    PYTHONPATH=. python3 -m cmtutor.benchmarks.cifar10_proxy --methods diffusion ict   # on a GPU, from the source tree
    python -m cmtutor.benchmarks.cifar10_proxy --data DIR --net tiny --steps 4 --n 64 --features random --out /tmp/p.json

A step between the GPU check (speed and health, 8 minutes for all methods) and a full run (hundreds of GPU
hours): every method trains with its shipped CIFAR-10 defaults (the 55.7M U-Net, bf16, the warmed-up sampling
EMA) at batch 128 (ECT's batch) for :data:`PROXY_STEPS` steps, the number one H200 does in about 10 minutes at
the images/s the GPU check measured (``results/gpu_check.json``); the learning rate warms up over the first
tenth. Teachers come first: CD and Direct CM distil the proxy diffusion model, TCM's stage 1 is the proxy iCT.
Then 5,000 samples at 1 and 2 steps (the diffusion model: 18 Heun steps) and FID-5k against the training set
(clean-fid ``legacy_tensorflow``), with the protocol, the wall time and the GPU-hours, to
``results/cifar10_proxy.json`` after every method.

It needs CIFAR-10 and clean-fid's Inception weights on the machine; both are checked before any training, and
a missing one is one line and exit 2 (nothing is trained for a number that cannot be measured). The expected
band of each method's FID-5k is recorded by the first complete run (docs/cifar10.md#the-budgets).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import torch

from cmtutor.benchmarks.common import machine, say, write_json
from cmtutor.benchmarks.studies import RESULTS_DIR
from cmtutor.config import TrainConfig, default_config
from cmtutor.course.images import sample_steps, teacher_of
from cmtutor.data.images import load_images
from cmtutor.errors import UserError
from cmtutor.evaluation.fid import FeatureExtractor, fid, inception, random_features
from cmtutor.methods import METHODS
from cmtutor.training import Run, checkpoint_dict, fit

#: Steps of 128 images in about 10 minutes of one H200 (bf16, eager), from the GPU check's images/s
#: (results/gpu_check.json: diffusion 950, CD 461, CT 685, iCT 697, GC 567, OT 672, TCM 549), rounded down;
#: Direct CM's check ran 10 steps only, so its count comes from its FLOPs per image (about 6× CD's). sCM and
#: MeanFlow were not in the GPU check: theirs assume the cost ratio to iCT measured on 2 CPU cores (a step of
#: sCM about 2×, of MeanFlow about 2.5× iCT's: a JVP and a forward-backward pass), an estimate, not a GPU figure.
PROXY_STEPS: dict[str, int] = {"diffusion": 4000, "cd": 2000, "ct": 3000, "ict": 3000, "gc": 2500, "ot": 3000,
                               "tcm": 2500, "direct": 300, "scm": 1500, "meanflow": 1200}
PROXY_BATCH = 128


def proxy_config(method: str, data: str = "cifar10", steps: int | None = None, net: str | None = None,
                 device: str = "auto") -> TrainConfig:
    """The proxy's configuration of ``method``: the CIFAR-10 defaults at batch 128 for :data:`PROXY_STEPS`."""
    n = steps if steps is not None else PROXY_STEPS[method]
    over: dict[str, Any] = {"steps": n, "batch_size": PROXY_BATCH, "warmup_steps": max(1, n // 10),
                            "checkpoint_every": 10**9, "sample_every": 0, "log_every": max(1, n // 20),
                            "device": device}
    if net is not None:
        over["net"] = {"preset": net}
    return default_config(method, data, **over)


def features(kind: str, weights: str | None, device: str) -> FeatureExtractor:
    """Inception (the FID) or, for tests, a random-conv stand-in labelled as not an FID."""
    if kind == "random":
        return random_features()
    return inception(weights=weights, device=device, allow_download=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cmtutor.benchmarks.cifar10_proxy", description=__doc__.split("\n")[0])
    p.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--data", default="cifar10", help="cifar10, or a folder in its python format")
    p.add_argument("--steps", type=int, help="override every method's proxy steps (tests)")
    p.add_argument("--net", help="U-Net preset override (tests: tiny)")
    p.add_argument("--n", type=int, default=5000, help="samples per FID (5000: FID-5k)")
    p.add_argument("--features", choices=["inception", "random"], default="inception")
    p.add_argument("--inception", help="clean-fid's inception-2015-12-05.pt (else found or downloaded)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=str(RESULTS_DIR / "cifar10_proxy.json"))
    args = p.parse_args(argv)
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else \
        ("cpu" if args.device == "auto" else args.device)
    try:  # both inputs of the number first: no GPU time for a number that cannot be measured
        data = load_images(args.data)
        extractor = features(args.features, args.inception, device)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    command = "python -m cmtutor.benchmarks.cifar10_proxy " + " ".join(sys.argv[1:] if argv is None else argv)
    report: dict[str, Any] = {"command": command, "machine": machine(), "data": data.name, "note": data.note,
                              "batch": PROXY_BATCH, "methods": {}}
    runs: dict[str, Run] = {}

    def train(m: str) -> Run:
        if m in runs:
            return runs[m]
        t = teacher_of(m)
        teacher = train(t) if t is not None else None
        cfg = proxy_config(m, args.data, args.steps, args.net, device)
        t0 = time.perf_counter()
        run = fit(cfg, teacher=checkpoint_dict(teacher) if teacher is not None else None)
        wall = time.perf_counter() - t0
        entry: dict[str, Any] = {"steps": cfg.steps, "teacher": t, "wall_s": round(wall, 1),
                                 "gpu_hours": round(wall / 3600, 3) if device == "cuda" else 0.0,
                                 "final_loss": round(run.history[-1]["loss"], 5)}
        sampler = run.sampler()
        for k in sample_steps(run)[:1] if run.method.ode_sampling else sample_steps(run):
            images = sampler.sample_images(args.n, steps=k, seed=0)
            res = fid(images, data.train, f"{data.name}-train", extractor,
                      {"method": m, "weights": "ema", "steps": k, "seed": 0})
            entry[f"fid_{k}step"] = round(res["value"], 3)
            entry["protocol"] = res["protocol"]
        report["methods"][m] = entry
        write_json(args.out, report)
        say(f"{m:<10} {cfg.steps} steps in {wall:.0f} s  "
            + "  ".join(f"{k}={v}" for k, v in entry.items() if k.startswith("fid_")))
        runs[m] = run
        return run

    for m in args.methods:
        train(m)
    say(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
