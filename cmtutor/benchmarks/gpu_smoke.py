"""A short end-to-end check of the GPU path with the real CIFAR-10 network, through the command line.

    python -m cmtutor.benchmarks.gpu_smoke --out gpu_smoke.json

1. **Training and exact resume** (``ict``, the 56M U-Net, batch 128, bf16, channels-last): a 40-step run,
   the same run again (how deterministic is this GPU?), and a run stopped at step 20 (``--stop-at``)
   and resumed to 40. Reported: whether weights are bitwise equal, and the largest differences.
2. **torch.compile**: 20 steps with ``--set compile=true`` (time to first step, images/s).
3. **DDP**: ``torchrun --nproc_per_node=2`` for 20 steps (Gloo on a single GPU, NCCL with two), then
   stop at 10 and resume to 20; sampling from the DDP-trained checkpoint.
4. **Sampling and evaluation**: 2,000 one- and two-step samples with ``sample``; ``evaluate`` with FID
   if clean-fid's Inception weights are found locally (``--inception`` or the usual places),
   otherwise reported as skipped.

Data: a verified local CIFAR-10 if one is found (``find_cifar10``), otherwise a small stand-in in the
CIFAR-10 format written here (random pixels, labelled as such in every output). Each step runs in a
subprocess with a time limit; a failure is recorded and the next step runs. Progress is printed as it
goes and the JSON report is rewritten after every step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cmtutor.benchmarks.common import find_cifar10, machine, say, write_json
from cmtutor.checkpoint import load_checkpoint
from cmtutor.data.cifar10 import write_cifar10_format
from cmtutor.evaluation.fid import find_inception


def _run(cmd: list[str], timeout: float, env: dict[str, str]) -> dict[str, Any]:
    t = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        out = {"rc": p.returncode, "seconds": round(time.perf_counter() - t, 1),
               "stdout_tail": p.stdout[-1500:], "stderr_tail": p.stderr[-2500:]}
    except subprocess.TimeoutExpired:
        out = {"rc": None, "seconds": round(time.perf_counter() - t, 1), "error": f"timed out after {timeout:.0f} s"}
    out["command"] = " ".join(cmd)
    return out


def _compare(a: Path, b: Path) -> dict[str, Any]:
    ca, cb = (load_checkpoint(p / "checkpoint.pt") for p in (a, b))
    diffs = {k: float((ca["model"][k].float() - cb["model"][k].float()).abs().max()) for k in ca["model"]}
    equal = all(torch.equal(ca["model"][k], cb["model"][k]) for k in ca["model"])
    return {"steps": [ca["step"], cb["step"]], "bitwise_equal": equal, "max_abs_diff": max(diffs.values()),
            "tensors_differing": sum(v > 0 for v in diffs.values()), "tensors": len(diffs)}


def _metrics(run: Path) -> dict[str, Any]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    last = lines[-1]
    return {k: last[k] for k in ("step", "loss", "images_per_s", "peak_gpu_mem_mb", "peak_rss_mb") if k in last}


def _standin(root: Path) -> Path:
    rng = np.random.default_rng(0)
    tr = rng.integers(0, 256, (5000, 32, 32, 3), dtype=np.uint8)
    te = rng.integers(0, 256, (1000, 32, 32, 3), dtype=np.uint8)
    write_cifar10_format(root, tr, rng.integers(0, 10, 5000), te, rng.integers(0, 10, 1000),
                         note="random pixels written by cmtutor.benchmarks.gpu_smoke (no CIFAR-10 found); "
                              "NOT CIFAR-10: speed and mechanics only")
    return root


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cmtutor.benchmarks.gpu_smoke", description=__doc__.split("\n")[0])
    p.add_argument("--out", default="gpu_smoke.json")
    p.add_argument("--workdir", help="where runs are written (default: a temporary folder)")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--net", default="cifar10", help="U-Net preset (tiny: a quick CPU check of this script)")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--no-ddp", action="store_true")
    p.add_argument("--inception", help="a local inception-2015-12-05.pt for the FID step")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per subprocess")
    args = p.parse_args(argv)

    work = Path(args.workdir or tempfile.mkdtemp(prefix="cmtutor-gpu-smoke-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    py = [sys.executable, "-m", "cmtutor"]
    info = machine()
    say("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    found = find_cifar10()
    data = found["path"] or str(_standin(work / "standin"))
    say(f"data: {'CIFAR-10 at ' + data if found['path'] else 'stand-in in the CIFAR-10 format at ' + data} "
        f"({len(found['candidates'])} candidate(s) found in the usual places)")
    report: dict[str, Any] = {"machine": info, "cifar10_search": found, "data": data,
                              "data_is_cifar10": bool(found["path"]), "steps": {}}
    write_json(args.out, report)
    n, b, half = args.steps, args.batch_size, args.steps // 2
    common = ["--method", "ict", "--data", data, "--steps", str(n), "--batch-size", str(b),
              "--checkpoint-every", str(half), "--set", "log_every=10", "--set", "sample_every=0", "--quiet",
              "--set", f'net={{"preset": "{args.net}"}}']
    net = ["--set", f'net={{"preset": "{args.net}"}}']

    def step(name: str, cmd: list[str], timeout: float | None = None) -> dict[str, Any]:
        say(f"[{name}] {' '.join(cmd[2:])}")
        r = _run(cmd, timeout or args.timeout, env)
        report["steps"][name] = r
        say(f"[{name}] rc={r['rc']} in {r['seconds']} s" + (f": {r.get('error')}" if r.get("error") else ""))
        if r["rc"] not in (0, None):
            say(r.get("stderr_tail", "")[-800:])
        write_json(args.out, report)
        return r

    def ok(name: str) -> bool:
        return report["steps"].get(name, {}).get("rc") == 0

    # 1. training, determinism, exact resume
    step("train_a", [*py, "train", *common, "--out", str(work / "a")])
    step("train_b", [*py, "train", *common, "--out", str(work / "b")])
    step("train_c_stop", [*py, "train", *common, "--out", str(work / "c"), "--stop-at", str(half)])
    step("train_c_resume", [*py, "train", *common, "--out", str(work / "c"), "--resume"])
    if ok("train_a"):
        report["train_metrics"] = _metrics(work / "a")
    if ok("train_a") and ok("train_b"):
        report["run_to_run"] = _compare(work / "a", work / "b")
    if ok("train_a") and ok("train_c_resume"):
        report["resume_vs_uninterrupted"] = _compare(work / "a", work / "c")
    say(f"run-to-run: {report.get('run_to_run')}\nresume: {report.get('resume_vs_uninterrupted')}")

    # 2. torch.compile
    if not args.no_compile:
        step("compile", [*py, "train", "--method", "ict", "--data", data, "--steps", "20", "--batch-size", str(b),
                         "--set", "compile=true", "--set", "log_every=5", "--quiet", "--out", str(work / "compiled"), *net],
             timeout=max(args.timeout, 420))
        if ok("compile"):
            report["compile_metrics"] = _metrics(work / "compiled")

    # 3. DDP with 2 processes
    if not args.no_ddp:
        tr = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", "-m", "cmtutor"]
        ddp = ["--method", "ict", "--data", data, "--steps", "20", "--batch-size", str(b), "--checkpoint-every",
               "10", "--set", "log_every=5", "--quiet", *net]
        step("ddp_full", [*tr, "train", *ddp, "--out", str(work / "ddp")])
        step("ddp_stop", [*tr, "train", *ddp, "--out", str(work / "ddp_cut"), "--stop-at", "10"])
        step("ddp_resume", [*tr, "train", *ddp, "--out", str(work / "ddp_cut"), "--resume"])
        if ok("ddp_full"):
            report["ddp_metrics"] = _metrics(work / "ddp")
        if ok("ddp_full") and ok("ddp_resume"):
            report["ddp_resume_vs_uninterrupted"] = _compare(work / "ddp", work / "ddp_cut")
        if ok("ddp_full"):
            step("ddp_sample", [*py, "sample", "--ckpt", str(work / "ddp"), "--n", "256", "--out",
                                str(work / "ddp_samples.npz")])

    # 4. sampling and evaluation
    if ok("train_a"):
        for k in (1, 2):
            step(f"sample_{k}step", [*py, "sample", "--ckpt", str(work / "a"), "--n", "2000", "--steps", str(k),
                                     "--batch-size", "1000", "--out", str(work / f"s{k}.npz")])
            meta = work / f"s{k}.npz.json"
            if meta.exists():
                report[f"sample_{k}step_meta"] = json.loads(meta.read_text())
        ev = [*py, "evaluate", "--samples", str(work / "s1.npz"), "--data", data, "--json"]

        try:
            weights = find_inception(args.inception)
        except Exception:
            weights = None
        if weights is None:
            report["fid"] = "skipped: no local Inception weights (inception-2015-12-05.pt) and no network"
            step("evaluate", [*ev, "--no-fid"])
        else:
            step("evaluate", [*ev, "--inception", str(weights)])
        r = report["steps"].get("evaluate", {})
        if r.get("rc") == 0:
            try:
                report["evaluate_result"] = json.loads(r["stdout_tail"].strip().splitlines()[-1])
            except Exception:
                pass
    report["workdir"] = str(work)
    write_json(args.out, report)
    failed = [k for k, v in report["steps"].items() if v.get("rc") != 0]
    say(f"done; failed steps: {failed or 'none'}; report: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
