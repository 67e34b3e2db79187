"""Digits on a CPU: each method's one-step and two-step quality at the same training budget.

    python -m cmtutor.benchmarks.digits_quality                      # writes cmtutor/benchmarks/results/digits_cpu.json
    python -m cmtutor.benchmarks.digits_quality --steps 500 --out /tmp/quick.json

Every method in ``cmtutor.methods.METHODS`` trains on the 8×8 digits with the small U-Net
(``cmtutor.course.images.digits_config``: image noise σ_max = 80, σ_d = 0.5; each method's shipped image
hyperparameters) for the same number of steps at the same batch size: the budget is "N steps of B
images", and the CPU seconds each method actually used are reported beside it (methods differ in network
passes per step). Methods that learn from a teacher get the diffusion model (or whatever their
``teacher_methods`` name) trained with the same budget; its time is reported on its own row.

Quality is FD-digits (Fréchet distance on a small digits classifier's features, ``cmtutor.evaluation.digits_fd``;
not an FID) of 359 EMA samples against the 359 held-out digits, at 1 and 2 steps for consistency
models and 18 and 40 Heun steps for the diffusion model, with the finite-sample floor (real training
digits scored the same way). 32 samples per setting are stored (uint8 bytes as hex) for notebook 07.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from cmtutor.benchmarks.common import machine, say, write_json
from cmtutor.course.images import DIGITS_RESULTS, digits_config, sample_steps, teacher_of
from cmtutor.evaluation.digits_fd import fd_digits, fd_digits_floor, protocol
from cmtutor.methods import METHODS
from cmtutor.training import checkpoint_dict, fit


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cmtutor.benchmarks.digits_quality", description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--methods", nargs="*", default=list(METHODS))
    p.add_argument("--threads", type=int, default=1, help="CPU threads (1: CPU seconds comparable across methods)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(DIGITS_RESULTS))
    p.add_argument("--merge", action="store_true",
                   help="keep the other methods' rows of an existing --out file measured with the same budget "
                        "(their command, machine and date are kept beside them)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    n_eval = 359
    report: dict[str, Any] = {
        "command": "python -m cmtutor.benchmarks.digits_quality " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine(), "budget": {"steps": args.steps, "batch_size": args.batch_size, "threads": args.threads},
        "quality": protocol(n_eval), "floor": fd_digits_floor(n_eval), "methods": {}}
    say(f"FD-digits floor (real digits, n={n_eval}): {report['floor']:.2f}")
    if args.merge and Path(args.out).exists():
        old = json.loads(Path(args.out).read_text())
        if old.get("budget") != report["budget"]:
            raise SystemExit(f"error: {args.out} was measured with budget {old.get('budget')}, not "
                             f"{report['budget']}; rows of different budgets are not comparable")
        for m, entry in old["methods"].items():
            if m not in args.methods:
                entry.setdefault("measured_by", {"command": old["command"], "machine": old["machine"]})
                report["methods"][m] = entry
    runs: dict[str, Any] = {}

    def train(m: str) -> Any:
        if m in runs:
            return runs[m]
        t = teacher_of(m)
        teacher = train(t) if t is not None else None
        cfg = digits_config(m, args.steps, args.batch_size, seed=args.seed, device="cpu")
        c0, w0 = time.process_time(), time.perf_counter()
        run = fit(cfg, teacher=checkpoint_dict(teacher) if teacher is not None else None)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        entry: dict[str, Any] = {"steps": args.steps, "batch_size": args.batch_size, "train_cpu_s": round(cpu, 1),
                                 "train_wall_s": round(wall, 1), "teacher": t, "final_loss": run.history[-1]["loss"],
                                 "samples": {}}
        sampler = run.sampler()
        for k in sample_steps(run):
            images = sampler.sample_images(n_eval, steps=k, seed=args.seed)
            entry[f"fd_{k}step"] = round(fd_digits(images), 2)
            entry["samples"][str(k)] = {"shape": list(images[:32].shape), "hex": images[:32].tobytes().hex()}
        report["methods"][m] = entry
        say(f"{m:<10} {cpu:7.1f} CPU s  " + "  ".join(f"{k}={v}" for k, v in entry.items() if k.startswith("fd_")))
        write_json(args.out, report)
        runs[m] = run
        return run

    for m in args.methods:
        train(m)
    write_json(args.out, report)
    say(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
