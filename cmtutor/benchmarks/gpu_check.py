"""One GPU check that fits a time budget: every method trains, one samples, as many as time allows compile.

    PYTHONPATH=. python3 -m cmtutor.benchmarks.gpu_check        # on a GPU: about 8 minutes, from the source tree
    python -m cmtutor.benchmarks.gpu_check --net tiny --steps 4 --batch 4 --samples 16 --out /tmp/check.json

Three phases, in this order, so that whatever the budget cuts is the least informative part:

1. **Training, eager**, every method: up to ``--steps`` (200) steps of the ``--net`` U-Net (``cifar10``: the 55.7M
   DDPM++ network) at ``--batch`` (128), bf16 autocast and channels-last on a GPU (fp32 on a CPU), each method
   stopped early at ``--method-s`` seconds. Reported: steps done, whether every logged loss is finite, whether
   the loss fell (mean of the last fifth of the steps below the first fifth), images/s after the first fifth,
   peak memory and MFU (training FLOPs per image counted over one step, ``--peak-tflops``: H100/H200 dense bf16).
   Teachers (CD, Direct CM, TCM) are untrained networks of the same size: speed does not depend on the weights.
   The learning rate warms up over the first tenth of the steps (the CIFAR-10 default warms up over 1000).
2. **Sampling**: ``--samples`` (1000) one-step samples from the iCT run of phase 1 (its EMA), written as a grid
   PNG, and the time for 50,000 extrapolated from them.
3. **torch.compile** (GPU only), methods in turn while the budget allows: ``--compile-steps`` (30) steps, the time
   to the first step (compilation) and images/s after it.

Data: a verified local CIFAR-10 where one is found, random uint8 images otherwise (the JSON says which). A phase
that fails is recorded with the end of its traceback and the next one runs; a phase the budget (``--budget-s``,
480) cannot fit is recorded as skipped. The JSON (default ``cmtutor/benchmarks/results/gpu_check.json`` on a GPU)
is rewritten after every phase, so it is there whatever stops the script.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cmtutor.benchmarks.common import find_cifar10, machine, say, write_json
from cmtutor.benchmarks.studies import RESULTS_DIR
from cmtutor.benchmarks.throughput import H100_BF16_DENSE_TFLOPS, _build, _images, step_flops
from cmtutor.data.images import save_grid
from cmtutor.hardware.accel import mfu, peak_memory_mb, sync
from cmtutor.methods import METHODS
from cmtutor.training import train_steps


@dataclasses.dataclass
class Budget:
    """The wall-clock budget of the whole check."""

    seconds: float
    start: float = dataclasses.field(default_factory=time.perf_counter)

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.start)


def loss_fell(losses: list[float]) -> bool:
    """The mean loss of the last fifth of the steps is below that of the first fifth."""
    k = max(1, len(losses) // 5)
    return len(losses) >= 2 and float(np.mean(losses[-k:])) < float(np.mean(losses[:k]))


def _phase(report: dict[str, Any], key: str, out: Path, fn: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    """Run one phase; its result (or its error) goes into ``report[key]`` and the JSON is rewritten."""
    t = time.perf_counter()
    try:
        result = fn()
    except Exception as exc:  # a failure is a result: record it, go on
        report[key] = {"error": f"{exc.__class__.__name__}: {exc}"[:500],
                       "traceback": traceback.format_exc()[-1500:], "seconds": round(time.perf_counter() - t, 1)}
        say(f"  {key}: FAILED ({exc.__class__.__name__}: {str(exc)[:200]})")
        write_json(out, report)
        return None
    result["seconds"] = round(time.perf_counter() - t, 1)
    report[key] = result
    write_json(out, report)
    return result


def train_method(method: str, args: argparse.Namespace, data: Any, compile_model: bool, steps: int,
                 peak_tflops: float, flops: float | None) -> tuple[dict[str, Any], Any]:
    """Train ``method`` for up to ``steps`` steps (stopping at ``--method-s``); its report and its run."""
    dev = torch.device(args.device)
    run = _build(method, data, args.batch, args.device, args.precision, compile_model, args.net,
                 warmup_steps=max(1, steps // 10))
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    it = train_steps(run)
    losses: list[float] = []
    t0 = time.perf_counter()
    first = timed_from = None
    after_first: tuple[int, float] | None = None
    for k in range(steps):
        losses.append(float(next(it)["loss"]))  # a host sync per step: the check wants every loss
        if k == 0:
            first = time.perf_counter() - t0
            after_first = (1, time.perf_counter())  # a slow method may not reach the first fifth in time
        if k == max(1, steps // 5) - 1:
            sync(dev)
            timed_from = (k + 1, time.perf_counter())
        if time.perf_counter() - t0 > args.method_s:
            break
    sync(dev)
    done = len(losses)
    mem_name, mem = peak_memory_mb(dev)
    out: dict[str, Any] = {"steps": done, "batch": args.batch, "first_step_s": round(first or 0.0, 2),
                           "loss_first": losses[0], "loss_last": losses[-1],
                           "loss_finite": bool(np.all(np.isfinite(losses))), "loss_fell": loss_fell(losses),
                           mem_name: round(mem, 1)}
    timed_from = timed_from if timed_from is not None and done > timed_from[0] else after_first
    if timed_from is not None and done > timed_from[0]:
        ips = (done - timed_from[0]) * args.batch / (time.perf_counter() - timed_from[1])
        out["images_per_s"] = round(ips, 1 if ips >= 10 else 4)
        if flops:
            out["mfu"] = float(f"{mfu(flops, ips, peak_tflops):.3g}")
    return out, run


def main(argv: list[str] | None = None) -> int:
    gpu = torch.cuda.is_available()
    p = argparse.ArgumentParser(prog="python -m cmtutor.benchmarks.gpu_check", description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(RESULTS_DIR / "gpu_check.json") if gpu else "gpu_check.json")
    p.add_argument("--methods", nargs="*", default=list(METHODS))
    p.add_argument("--net", default="cifar10", help="U-Net preset (cifar10: 55.7M parameters; tiny for a smoke run)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--method-s", type=float, default=35.0, help="eager training seconds per method at most")
    p.add_argument("--compile-steps", type=int, default=30)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--budget-s", type=float, default=480.0, help="the whole check's wall-clock budget")
    p.add_argument("--peak-tflops", type=float, default=H100_BF16_DENSE_TFLOPS,
                   help="peak dense bf16 TFLOP/s for MFU (H100/H200 SXM: 989)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=gpu,
                   help="phase 3, torch.compile (default: on a GPU)")
    args = p.parse_args(argv)
    args.device = "cuda" if gpu else "cpu"
    args.precision = "bf16" if gpu else "fp32"
    budget = Budget(args.budget_s)
    out = Path(args.out)
    command = "python -m cmtutor.benchmarks.gpu_check " + " ".join(argv if argv is not None else sys.argv[1:])
    found = find_cifar10()
    data, what = _images(found, max(1000, 4 * args.batch))
    report: dict[str, Any] = {"command": command, "machine": machine(), "data": what, "net": args.net,
                              "device": args.device, "precision": args.precision, "budget_s": args.budget_s}
    say(f"command: {command}\nmachine: {report['machine']}\ndata: {what}")
    write_json(out, report)

    runs: dict[str, Any] = {}
    for method in args.methods:
        if budget.left() < 0.25 * args.budget_s:  # keep a quarter for sampling and compile
            report[f"train/{method}"] = {"skipped": "time budget"}
            continue
        say(f"train {method} ...")
        flops = _phase(report, f"flops/{method}", out,
                       lambda m=method: {"per_image": step_flops(m, data, args.device, args.precision, args.net)})

        def train(m: str = method, f: dict[str, Any] | None = flops) -> dict[str, Any]:
            result, runs[m] = train_method(m, args, data, False, args.steps, args.peak_tflops,
                                           f["per_image"] if f else None)
            return result

        r = _phase(report, f"train/{method}", out, train)
        if r:
            say(f"  {r['steps']} steps, loss {r['loss_first']:.4g} -> {r['loss_last']:.4g} "
                f"(fell: {r['loss_fell']}), {r.get('images_per_s', '?')} images/s, mfu {r.get('mfu', '?')}")
        for m in list(runs):  # free the networks of earlier methods but iCT's (phase 2 samples from it)
            if m not in ("ict", method):
                del runs[m]
        if gpu:
            torch.cuda.empty_cache()

    def sample() -> dict[str, Any]:
        source = "ict" if "ict" in runs else next(iter(runs))
        sampler = runs[source].sampler()
        dev = torch.device(args.device)
        sampler.sample_images(min(args.batch, args.samples), steps=1, seed=0, batch_size=args.batch)  # warm-up
        sync(dev)
        t = time.perf_counter()
        images = sampler.sample_images(args.samples, steps=1, seed=1, batch_size=min(500, args.samples))
        sync(dev)
        dt = time.perf_counter() - t
        grid = out.with_name(out.stem + "_samples.png")
        save_grid(images[:256], grid, ncols=16, scale=2)
        return {"from": f"{source}, after its phase-1 steps (EMA weights)", "images": len(images),
                "images_per_s": round(len(images) / dt, 1), "seconds_for_50k": round(50_000 * dt / len(images), 1),
                "grid": grid.name}

    if runs:
        say("sample ...")
        _phase(report, "sample", out, sample)
    runs.clear()

    for method in args.methods if args.compile else []:
        estimate = 90.0  # compilation of the U-Net, then the timed steps
        if budget.left() < estimate:
            report[f"compile/{method}"] = {"skipped": f"time budget ({budget.left():.0f} s left)"}
            continue
        say(f"compile {method} ...")
        _phase(report, f"compile/{method}", out,
               lambda m=method: train_method(m, args, data, True, args.compile_steps, args.peak_tflops, None)[0])
    report["total_s"] = round(args.budget_s - budget.left(), 1)
    failed = sorted(k for k, v in report.items() if isinstance(v, dict) and "error" in v)
    report["failed"] = failed
    write_json(out, report)
    say(f"wrote {out}; {len(failed)} phase(s) failed{': ' + ', '.join(failed) if failed else ''}; "
        f"{report['total_s']:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
