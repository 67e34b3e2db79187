"""Training throughput, peak memory and MFU of one training step of each method on the CIFAR-10 network.

    python -m cmtutor.benchmarks.throughput --out throughput.json          # full matrix (GPU) / small (CPU)
    python -m cmtutor.benchmarks.throughput --quick --out quick.json       # a few minutes less
    python -m cmtutor.benchmarks.throughput --modes compile --batch-sizes 128 512

For every method in ``cmtutor.methods.METHODS`` (teachers are untrained networks of the same size:
speed does not depend on the weights), the real training step (``cmtutor.training.loop.train_steps``: batch
drawing, the method's loss with all its network passes, backward, clipping, optimiser, EMA) is timed
after warm-up. On a GPU the matrix is bf16 autocast × {eager, ``torch.compile``} × batch {128, 512},
channels-last; on a CPU, fp32 eager at a small batch. Reported per configuration: images/s, step time,
peak memory (GPU: ``torch.cuda.max_memory_allocated``; CPU: the process's peak RSS so far), and model
FLOPs utilisation

    MFU = (training FLOPs per image × images/s) / peak FLOP/s,

with training FLOPs per image counted by ``torch.utils.flop_counter.FlopCounterMode`` over one whole
training step (every forward, teacher and backward pass of the method; matmuls, convolutions and
attention) and the peak given by ``--peak-tflops`` (default 989: H100 SXM dense bf16).

One-step sampling speed is measured for 50,000 images on a GPU (the whole pipeline: noise, network
in bf16, conversion to uint8); on a CPU a smaller count is timed and the 50k figure extrapolated
(labelled so). The script looks for a local CIFAR-10 first (``cmtutor.benchmarks.common.find_cifar10``)
and uses random uint8 images otherwise (the content does not change the speed); the JSON says which.
Every configuration is isolated: a failure (out of memory, a compile error) is recorded and the next
one runs. Results are written to ``--out`` after every configuration.
"""

from __future__ import annotations

import argparse
import gc
import json
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from cmtutor.benchmarks.common import find_cifar10, machine, say, write_json
from cmtutor.config import default_config
from cmtutor.data.cifar10 import load_cifar10
from cmtutor.data.images import ImageData
from cmtutor.hardware.accel import mfu, peak_memory_mb, sync
from cmtutor.methods import METHODS
from cmtutor.nets.unet import build_unet
from cmtutor.training import build_run, checkpoint_dict, train_steps

H100_BF16_DENSE_TFLOPS = 989.0


def _images(found: dict[str, Any], n: int) -> tuple[Any, str]:
    if found.get("path"):
        c = load_cifar10(found["path"], allow_download=False)
        return ImageData("cifar10", c.train, c.test, "test batch"), f"CIFAR-10 from {found['path']}"
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    return ImageData("synthetic", imgs, imgs[: n // 5], "synthetic"), "random uint8 images (no CIFAR-10 found)"


def _config(method: str, batch: int, device: str, precision: str, compile_model: bool, net: str,
            **overrides: Any) -> Any:
    return default_config(method, "cifar10", **{"steps": 1_000_000, **overrides}, batch_size=batch, device=device,
                          precision=precision,
                          compile=compile_model, net={"preset": net}, checkpoint_every=10**9, sample_every=0)


def _teacher(method: str, data: Any, device: str, precision: str, net: str) -> dict[str, Any] | None:
    """An untrained checkpoint of the method's teacher (same network size), built in memory."""
    cls = METHODS[method]
    if not cls.teacher_methods:
        return None
    name = next(m for m in cls.teacher_methods if m in METHODS)
    run = build_run(_config(name, 8, device, precision, False, net), data=data,
                    teacher=_teacher(name, data, device, precision, net))
    return checkpoint_dict(run)


def _build(method: str, data: Any, batch: int, device: str, precision: str, compile_model: bool, net: str,
           **overrides: Any) -> Any:
    """A fresh run of ``method`` on the CIFAR-10 network (``overrides``: other TrainConfig fields)."""
    cfg = _config(method, batch, device, precision, compile_model, net, **overrides)
    return build_run(cfg, data=data, teacher=_teacher(method, data, device, precision, net))


def step_flops(method: str, data: Any, device: str, precision: str, net: str, batch: int = 2) -> float:
    """Model FLOPs of one training step per image (all passes of the method, forward and backward)."""
    run = _build(method, data, batch, device, precision, False, net)
    steps = train_steps(run)
    next(steps)  # build lazily-created state first
    with FlopCounterMode(display=False) as fc:
        next(steps)
    return fc.get_total_flops() / batch


def forward_flops(device: str, net: str) -> float:
    """FLOPs of one U-Net forward pass per image (what one-step generation costs)."""
    model = build_unet({"preset": net}, (3, 32, 32)).to(device)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(torch.randn(2, 3, 32, 32, device=device), torch.zeros(2, device=device))
    return fc.get_total_flops() / 2


def time_training(method: str, data: Any, batch: int, device: str, precision: str, compile_model: bool, net: str,
                  warmup: int, steps: int) -> dict[str, Any]:
    dev = torch.device(device)
    t0 = time.perf_counter()
    run = _build(method, data, batch, device, precision, compile_model, net)
    it = train_steps(run)
    for _ in range(warmup):
        logs = next(it)
    sync(dev)
    warm_s = time.perf_counter() - t0
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t1 = time.perf_counter()
    for _ in range(steps):
        logs = next(it)
    sync(dev)
    dt = time.perf_counter() - t1
    mem_name, mem = peak_memory_mb(dev)
    loss = float(logs["loss"])
    del it, run
    ips = steps * batch / dt
    return {"images_per_s": round(ips, 1 if ips >= 10 else 4), "step_ms": round(1000 * dt / steps, 2),
            mem_name: round(mem, 1), "warmup_s": round(warm_s, 1), "loss_finite": bool(np.isfinite(loss))}


def time_sampling(data: Any, n: int, batch: int, device: str, precision: str, net: str) -> dict[str, Any]:
    """One-step generation of n images with the CIFAR-10 network, the whole pipeline (untrained weights)."""
    run = _build("ict", data, 8, device, precision, False, net)
    sampler = run.sampler()
    dev = torch.device(device)
    sampler.sample_images(min(batch, n), steps=1, seed=0, batch_size=batch)  # warm-up
    sync(dev)
    t = time.perf_counter()
    total = 0
    for imgs in sampler.iter_images(n, steps=1, seed=1, batch_size=batch):
        total += len(imgs)
    sync(dev)
    dt = time.perf_counter() - t
    return {"images": total, "batch_size": batch, "seconds": round(dt, 2),
            "images_per_s": round(total / dt, 1 if total / dt >= 10 else 4),
            "seconds_for_50k": round(50_000 * dt / total, 1), "extrapolated": total < 50_000}


def main(argv: list[str] | None = None) -> int:
    gpu = torch.cuda.is_available()
    p = argparse.ArgumentParser(prog="python -m cmtutor.benchmarks.throughput", description=__doc__.split("\n")[0])
    p.add_argument("--out", default="throughput.json")
    p.add_argument("--quick", action="store_true", help="fewer steps, batch 128 only, no compile (GPU)")
    p.add_argument("--methods", nargs="*", default=list(METHODS))
    p.add_argument("--batch-sizes", nargs="*", type=int)
    p.add_argument("--modes", nargs="*", choices=["eager", "compile"])
    p.add_argument("--steps", type=int, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, help="untimed steps first (compilation happens there)")
    p.add_argument("--net", default="cifar10", help="U-Net preset")
    p.add_argument("--peak-tflops", type=float, default=H100_BF16_DENSE_TFLOPS,
                   help="peak dense bf16 TFLOP/s of the GPU for MFU (H100 SXM: 989)")
    p.add_argument("--sample-n", type=int, help="images for the sampling-speed run (GPU default 50000)")
    p.add_argument("--budget-s", type=float, default=540.0, help="start no new configuration after this many seconds")
    p.add_argument("--no-flops", action="store_true")
    p.add_argument("--no-sampling", action="store_true", help="skip the one-step sampling-speed run")
    p.add_argument("--merge", action="store_true",
                   help="keep the other methods' rows (and the sampling run) of an existing --out file measured "
                        "on the same device, precision and network, each with the command and machine that made it")
    args = p.parse_args(argv)

    device = "cuda" if gpu else "cpu"
    precision = "bf16" if gpu else "fp32"
    batches = args.batch_sizes or ([128] if args.quick else [128, 512]) if gpu else (args.batch_sizes or [4])
    modes = args.modes or (["eager"] if args.quick or not gpu else ["eager", "compile"])
    steps = args.steps or (10 if args.quick else 20) if gpu else (args.steps or 2)
    warmup = args.warmup or (3 if gpu else 1)
    sample_n = args.sample_n or (50_000 if gpu else 64)
    t_start = time.perf_counter()
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True

    say("command: python -m cmtutor.benchmarks.throughput " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])))
    info = machine()
    say("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    found = find_cifar10()
    data, source = _images(found, 5000)
    say(f"data: {source}; CIFAR-10 search: {len(found['candidates'])} candidate(s) in {len(found['searched'])} places")
    report: dict[str, Any] = {"command": "python -m cmtutor.benchmarks.throughput " + " ".join(argv or sys.argv[1:]),
                              "machine": info, "data": source, "cifar10_search": found, "device": device,
                              "precision": precision, "net": args.net, "peak_tflops": args.peak_tflops if gpu else None,
                              "warmup_steps": warmup, "timed_steps": steps, "training": [], "flops": {}, "sampling": None}
    if args.merge and Path(args.out).exists():
        old = json.loads(Path(args.out).read_text())
        same = {k: old.get(k) for k in ("device", "precision", "net")} == {k: report[k] for k in ("device", "precision", "net")}
        if not same:
            raise SystemExit(f"error: {args.out} holds {old.get('device')}/{old.get('precision')}/{old.get('net')} "
                             f"measurements; --merge needs the same device, precision and network")
        by = {"command": old["command"], "machine": old["machine"]}
        report["training"] = [{**e, "measured_by": e.get("measured_by", by)} for e in old.get("training", [])
                              if e["method"] not in args.methods]
        report["flops"] = {k: v for k, v in old.get("flops", {}).items() if k not in args.methods}
        if args.no_sampling and old.get("sampling"):
            report["sampling"] = {**old["sampling"], "measured_by": old["sampling"].get("measured_by", by)}
    write_json(args.out, report)

    def over_budget() -> bool:
        return time.perf_counter() - t_start > args.budget_s

    if not args.no_flops:
        try:
            report["flops"]["forward_per_image"] = forward_flops(device, args.net)
        except Exception as exc:
            report["flops"]["forward_error"] = f"{exc.__class__.__name__}: {exc}"
        for m in args.methods:
            if over_budget():
                break
            try:
                f = step_flops(m, data, device, precision, args.net)
                report["flops"][m] = f
                say(f"flops  {m:<10} {f / 1e9:8.1f} GFLOP per image per training step")
            except Exception as exc:
                report["flops"][m] = None
                say(f"flops  {m:<10} failed: {exc.__class__.__name__}: {exc}")
            write_json(args.out, report)

    for mode in modes:
        for b in batches:
            for m in args.methods:
                entry: dict[str, Any] = {"method": m, "batch": b, "mode": mode, "precision": precision}
                if over_budget():
                    entry["skipped"] = f"time budget of {args.budget_s:.0f} s used up"
                    report["training"].append(entry)
                    continue
                if mode == "compile":
                    torch._dynamo.reset()
                try:
                    entry.update(time_training(m, data, b, device, precision, mode == "compile", args.net,
                                               warmup, steps))
                    f = report["flops"].get(m)
                    if f:
                        entry["tflops_achieved"] = round(f * entry["images_per_s"] / 1e12, 2)
                        if gpu:
                            entry["mfu"] = round(mfu(f, entry["images_per_s"], args.peak_tflops), 4)
                    say(f"train  {m:<10} batch {b:<4} {mode:<7} {entry['images_per_s']:>9.4g} img/s  "
                        f"{entry['step_ms']:>9.1f} ms/step  "
                        + "  ".join(f"{k}={entry[k]}" for k in ("peak_gpu_mem_mb", "peak_rss_mb", "mfu", "warmup_s")
                                    if k in entry))
                except Exception as exc:
                    entry["error"] = f"{exc.__class__.__name__}: {str(exc)[:500]}"
                    entry["traceback"] = traceback.format_exc()[-2000:]
                    say(f"train  {m:<10} batch {b:<4} {mode:<7} FAILED: {entry['error']}")
                report["training"].append(entry)
                gc.collect()
                if gpu:
                    torch.cuda.empty_cache()
                write_json(args.out, report)

    if not over_budget() and not args.no_sampling:
        try:
            report["sampling"] = time_sampling(data, sample_n, 1000 if gpu else 16, device, precision, args.net)
            s = report["sampling"]
            say(f"sample one step: {s['images']} images in {s['seconds']} s = {s['images_per_s']} img/s; "
                f"50k images: {s['seconds_for_50k']} s{' (extrapolated)' if s['extrapolated'] else ''}")
        except Exception as exc:
            report["sampling"] = {"error": f"{exc.__class__.__name__}: {exc}"}
            say(f"sample FAILED: {exc}")
    report["total_s"] = round(time.perf_counter() - t_start, 1)
    write_json(args.out, report)
    say(f"done in {report['total_s']} s; results in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
