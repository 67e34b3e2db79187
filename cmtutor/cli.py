"""The command line: ``python -m cmtutor {train,sample,evaluate}`` (contract in COURSE_DESIGN.md).

Bad input ends with exit code 2 and one line ``error: …`` on stderr, before anything on disk is
touched. ``train`` writes ``DIR/config.json``, ``DIR/metrics.jsonl`` and ``DIR/checkpoint.pt`` (atomic);
``--resume`` continues to the same total and ends with the same weights as an uninterrupted run.
Under ``torchrun --nproc_per_node=N -m cmtutor train ...`` it trains with DDP (rank 0 writes).
Image runs also log throughput (images/s) and peak memory, and write sample grids to ``DIR/samples/``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from cmtutor.checkpoint import load_checkpoint
from cmtutor.config import default_config
from cmtutor.config.run import RENOISES
from cmtutor.core.metrics import EVAL_REPEATS
from cmtutor.data.root import relative_to_root
from cmtutor.errors import UserError
from cmtutor.evaluation.reports import image_report, print_report, vector_report
from cmtutor.hardware import distributed
from cmtutor.hardware.accel import effective_precision, hardware, resolve_device, sync
from cmtutor.methods import METHODS
from cmtutor.sampler import Sampler
from cmtutor.training import build_run, resume_run
from cmtutor.training.rundir import (
    TrainingStopped,
    atomic_write_text,
    check_writable_dir,
    exclusive_folder,
    train_in_folder,
)


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error message and exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {message} (see: python -m cmtutor {self.prog.split()[-1]} --help)\n")
        raise SystemExit(2)


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _parse_assignments(items: list[str] | None, flag: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise UserError(f"{flag} expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = _parse_value(value.strip())
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m cmtutor", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a model and write DIR/checkpoint.pt")
    t.add_argument("--method", required=True, help=f"one of: {', '.join(METHODS)}")
    t.add_argument("--data", required=True, help="a built-in data set name or a .npy / .npz file")
    t.add_argument("--teacher", help="checkpoint the method learns from (cd, direct: diffusion; tcm: stage 1)")
    t.add_argument("--steps", type=int, help="total optimisation steps")
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--seed", type=int)
    t.add_argument("--device", choices=["auto", "cpu", "cuda"])
    t.add_argument("--checkpoint-every", type=int, help="write the checkpoint every N steps")
    t.add_argument("--hp", action="append", metavar="KEY=VALUE", help="a method hyperparameter (repeatable)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", dest="overrides",
                   help="any other config field, e.g. --set ema_decay=0.999 (repeatable)")
    t.add_argument("--out", required=True, help="output folder")
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument("--stop-at", type=int, metavar="K",
                   help="stop after step K with a checkpoint (e.g. to fit a time slot); continue with --resume")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    s = sub.add_parser("sample", help="generate samples from a checkpoint")
    s.add_argument("--ckpt", required=True, help="DIR/checkpoint.pt (or DIR)")
    s.add_argument("--n", type=int, required=True, help="number of samples")
    s.add_argument("--steps", type=int, help="sampling steps (CMs: 1 = one-step; diffusion: ODE steps)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--weights", choices=["ema", "raw"], default="ema")
    s.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    s.add_argument("--batch-size", type=int, default=500, help="images generated per batch")
    s.add_argument("--renoise", choices=list(RENOISES),
                   help="how multistep sampling re-noises (default: the run's; OT's is 'ot', docs/defaults.md#ot-on-2d)")
    s.add_argument("--out", required=True, help=".npy (vectors) or .npz (images)")

    e = sub.add_parser("evaluate", help="compare samples with held-out data")
    e.add_argument("--samples", required=True)
    e.add_argument("--data", required=True)
    e.add_argument("--teacher", help="diffusion checkpoint: also report ode_error")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--n", type=int, default=1000, help="subsample size for the W2 family")
    e.add_argument("--repeats", type=int, help="draws of W2 and of its floor to average "
                   "(default: cmtutor.core.metrics.EVAL_REPEATS; the report gives the ratio's standard error)")
    e.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    e.add_argument("--fid-mode", default="legacy_tensorflow", help="images: clean-fid mode "
                   "(legacy_tensorflow = the papers' protocol, clean, legacy_pytorch)")
    e.add_argument("--inception", metavar="FILE", help="images: a local copy of clean-fid's inception-2015-12-05.pt")
    e.add_argument("--ref", choices=["train", "heldout"], default="train",
                   help="images: the FID reference split (the papers use the training images)")
    e.add_argument("--no-fid", action="store_true", help="images: skip FID")
    return parser


# --- helpers ----------------------------------------------------------------------------------------

_RESUME_FIELDS = {"method": "method", "data": "data", "steps": "steps", "batch_size": "batch_size",
                  "lr": "lr", "seed": "seed"}


def cmd_train(args: argparse.Namespace) -> int:
    distributed.init(args.device or "auto")  # no-op outside torchrun; the group is left at exit
    try:
        code = _cmd_train(args)
    except BaseException:
        distributed.shutdown(wait=False)  # the other ranks are stopped by torchrun
        raise
    distributed.barrier()  # every rank has finished (and rank 0 has written) before returning
    return code


def _cmd_train(args: argparse.Namespace) -> int:
    out = Path(args.out)
    ckpt_path = out / "checkpoint.pt"
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    if ckpt_path.exists() and not args.resume:
        raise UserError(f"{out} already holds a run (checkpoint.pt); add --resume to continue it, "
                        "or choose another --out")
    overrides = _parse_assignments(args.overrides, "--set")
    hp = _parse_assignments(args.hp, "--hp")
    if args.stop_at is not None and args.stop_at < 1:
        raise UserError("--stop-at must be at least 1")
    if args.resume and ckpt_path.exists():
        check_writable_dir(out)
        with exclusive_folder(out) if distributed.env().is_main else contextlib.nullcontext():
            run = _resume(args, out, ckpt_path, hp, overrides)
            distributed.log_main(f"resuming {run.cfg.method} at step {run.step} of {run.cfg.steps}")
            train_in_folder(run, out, quiet=args.quiet, stop_at=args.stop_at, resume_hint=_resume_hint(args))
        return 0
    kw: dict[str, Any] = {k: v for k, v in {
        "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
        "device": args.device, "checkpoint_every": args.checkpoint_every, "teacher": args.teacher,
    }.items() if v is not None}
    try:
        cfg = default_config(args.method, args.data, hp=hp, **overrides, **kw)
    except TypeError as exc:
        raise UserError(f"unknown --set field: {exc}") from None
    if cfg.steps < 1:
        raise UserError("--steps must be at least 1")
    if cfg.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    run = build_run(cfg)  # validates data and teacher before anything is written
    check_writable_dir(out)
    with exclusive_folder(out) if distributed.env().is_main else contextlib.nullcontext():
        if ckpt_path.exists():  # another train started here meanwhile and has finished
            raise UserError(f"{out} already holds a run (checkpoint.pt); add --resume to continue it, "
                            "or choose another --out")
        if distributed.env().is_main:
            atomic_write_text(out / "config.json", run.cfg.to_json() + "\n")
        train_in_folder(run, out, quiet=args.quiet, stop_at=args.stop_at, resume_hint=_resume_hint(args))
    return 0


def _resume(args: argparse.Namespace, out: Path, ckpt_path: Path, hp: dict[str, Any],
            overrides: dict[str, Any]) -> Any:
    """The run of ``out`` to continue; UserError when the command asks for other settings than it has."""
    ckpt = load_checkpoint(ckpt_path, role="--resume checkpoint")
    saved = ckpt["config"]
    given = {f"--{a.replace('_', '-')}": (getattr(args, a), saved[k]) for a, k in _RESUME_FIELDS.items()}
    given.update({f"--hp {k}": (v, saved["hp"].get(k)) for k, v in hp.items()})
    given.update({f"--set {k}": (v, saved.get(k)) for k, v in overrides.items() if k != "net"})
    for flag, (value, stored) in given.items():
        if value is not None and value != stored:
            raise UserError(f"{flag} {value} differs from the run in {out} ({stored}); resume with the same "
                            "settings or use another --out")
    return resume_run(ckpt, device=args.device)


def _check_fits_in_memory(n: int, sampler: Sampler) -> None:
    """UserError when ``n`` samples would take more than half of this machine's memory (they are held at once)."""
    need = n * int(np.prod(sampler.dim)) * (1 if sampler.is_image else 4)  # uint8 images, float32 vectors
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - no sysconf (Windows)
        return
    if need > total // 2:
        raise UserError(f"--n {n} samples need {need / 2**30:.1f} GiB, more than half of this machine's "
                        f"{total / 2**30:.1f} GiB; write them in parts (each with its own --seed)")


def _resume_hint(args: argparse.Namespace) -> str:
    """The command that continues this run: the one given, with ``--resume``."""
    argv = list(args.argv)
    return "python -m cmtutor " + shlex.join(argv if "--resume" in argv else [*argv, "--resume"])


def cmd_sample(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if args.n < 1:
        raise UserError("--n must be at least 1")
    if args.steps is not None and args.steps < 1:
        raise UserError("--steps must be at least 1")
    if out.suffix not in (".npy", ".npz"):
        raise UserError(f"--out {out}: use a .npy file (vectors) or .npz file (images)")
    sampler = Sampler.from_checkpoint(args.ckpt, weights=args.weights, device=str(resolve_device(args.device)))
    if args.renoise is not None:
        sampler.cfg = dataclasses.replace(sampler.cfg, renoise=args.renoise)
    _check_fits_in_memory(args.n, sampler)
    if sampler.is_image:
        return _sample_images(args, sampler, out)
    if out.suffix != ".npy":
        raise UserError(f"--out {out}: this checkpoint generates vectors; write them to a .npy file")
    check_writable_dir(out.parent if str(out.parent) else Path("."))
    steps = args.steps or sampler.default_steps()
    x = sampler.sample(args.n, steps=steps, seed=args.seed).numpy().astype(np.float32)
    tmp = out.with_name(f".{out.name}.tmp.npy")
    np.save(tmp, x)
    os.replace(tmp, out)
    meta = {"ckpt": str(Path(args.ckpt)), "method": sampler.cfg.method, "data": sampler.cfg.data,
            "n": args.n, "steps": steps, "seed": args.seed, "weights": args.weights, "renoise": sampler.cfg.renoise,
            "dim": sampler.dim, "noise": sampler.cfg.noise}
    atomic_write_text(Path(str(out) + ".json"), json.dumps(meta, indent=2) + "\n")
    print(f"wrote {args.n} samples ({steps} step{'s' if steps > 1 else ''}) to {out}")
    return 0


def _sample_images(args: argparse.Namespace, sampler: Any, out: Path) -> int:
    if out.suffix != ".npz":
        raise UserError(f"--out {out}: this checkpoint generates images; write them to an .npz file")
    if args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    check_writable_dir(out.parent if str(out.parent) else Path("."))
    steps = args.steps or sampler.default_steps()
    t0 = time.perf_counter()
    images = sampler.sample_images(args.n, steps=steps, seed=args.seed, batch_size=args.batch_size)
    sync(sampler.device)
    seconds = time.perf_counter() - t0
    tmp = out.with_name(f".{out.name}.tmp.npz")
    np.savez(tmp, images=images)
    os.replace(tmp, out)
    cfg = sampler.cfg
    meta = {"ckpt": str(Path(args.ckpt)), "method": cfg.method, "data": cfg.data, "n": args.n, "steps": steps,
            "seed": args.seed, "weights": args.weights, "renoise": cfg.renoise, "dim": list(sampler.dim),
            "noise": cfg.noise,
            "precision": effective_precision(cfg.precision, sampler.device), "batch_size": args.batch_size,
            "hardware": hardware(), "seconds": round(seconds, 2), "images_per_s": round(args.n / seconds, 1)}
    atomic_write_text(Path(str(out) + ".json"), json.dumps(meta, indent=2) + "\n")
    print(f"wrote {args.n} images ({steps} step{'s' if steps > 1 else ''}) to {out}")
    return 0


# --- evaluate --------------------------------------------------------------------------------------

def cmd_evaluate(args: argparse.Namespace) -> int:
    repeats = EVAL_REPEATS if args.repeats is None else args.repeats
    if repeats < 1:
        raise UserError(f"--repeats must be at least 1, got {repeats}")
    path = Path(args.samples)
    if path.suffix == ".npz":
        result = image_report(path, args.data, fid_mode=args.fid_mode, inception=args.inception, ref=args.ref,
                              with_fid=not args.no_fid, teacher=args.teacher, device=args.device)
    else:
        result = vector_report(path, args.data, n=args.n, repeats=repeats, teacher=args.teacher, device=args.device)
    print_report(result, as_json=args.json)
    return 0


def run_cli(args: list[str], show: bool = True) -> tuple[int, str, str]:
    """Run ``python -m cmtutor ARGS`` in this process (same code path, no start-up cost), for notebooks.

    Prints the command line when ``show``; returns (exit code, stdout, stderr) with stdout and stderr
    captured (they hold timings and paths that differ between machines).
    """
    if show:
        print("$ python -m cmtutor " + " ".join(shlex.quote(relative_to_root(a)) for a in args))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    handlers = {"train": cmd_train, "sample": cmd_sample, "evaluate": cmd_evaluate}
    try:
        return handlers[args.command](args)
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except TrainingStopped as exc:
        sys.stderr.write(f"{exc}\n")
        return exc.code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
