"""The command line: ``python -m cmtutor {train,sample,evaluate}`` (contract in COURSE_DESIGN.md).

Bad input ends with exit code 2 and one line ``error: …`` on stderr, before anything on disk is
touched. ``train`` writes ``DIR/config.json``, ``DIR/metrics.jsonl`` and ``DIR/checkpoint.pt`` (atomic);
``--resume`` continues to the same total and ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from cmtutor.errors import UserError


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
    from cmtutor.methods import METHODS

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
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    s = sub.add_parser("sample", help="generate samples from a checkpoint")
    s.add_argument("--ckpt", required=True, help="DIR/checkpoint.pt (or DIR)")
    s.add_argument("--n", type=int, required=True, help="number of samples")
    s.add_argument("--steps", type=int, help="sampling steps (CMs: 1 = one-step; diffusion: ODE steps)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--weights", choices=["ema", "raw"], default="ema")
    s.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    s.add_argument("--out", required=True, help=".npy (vectors) or .npz (images)")

    e = sub.add_parser("evaluate", help="compare samples with held-out data")
    e.add_argument("--samples", required=True)
    e.add_argument("--data", required=True)
    e.add_argument("--teacher", help="diffusion checkpoint: also report ode_error")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--n", type=int, default=1000, help="subsample size for the W2 family")
    e.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    return parser


# --- helpers ----------------------------------------------------------------------------------------

def _check_writable_dir(path: Path) -> None:
    """Create ``path`` if needed and prove a file can be written there; UserError otherwise."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".cmtutor-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to output folder {path}: {exc.strerror or exc}") from None


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --- train -----------------------------------------------------------------------------------------

_RESUME_FIELDS = {"method": "method", "data": "data", "steps": "steps", "batch_size": "batch_size",
                  "lr": "lr", "seed": "seed"}


def cmd_train(args: argparse.Namespace) -> int:
    from cmtutor.checkpoint import load_checkpoint
    from cmtutor.config import default_config
    from cmtutor.train import build_run, resume_run

    out = Path(args.out)
    ckpt_path = out / "checkpoint.pt"
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    if ckpt_path.exists() and not args.resume:
        raise UserError(f"{out} already holds a run (checkpoint.pt); add --resume to continue it, "
                        "or choose another --out")
    overrides = _parse_assignments(args.overrides, "--set")
    hp = _parse_assignments(args.hp, "--hp")

    if args.resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path, role="--resume checkpoint")
        saved = ckpt["config"]
        for arg, key in _RESUME_FIELDS.items():
            given = getattr(args, arg)
            if given is not None and given != saved[key]:
                raise UserError(f"--{arg.replace('_', '-')} {given} differs from the run in {out} "
                                f"({saved[key]}); resume with the same settings or use another --out")
        _check_writable_dir(out)
        run = resume_run(ckpt, device=args.device)
        print(f"resuming {run.cfg.method} at step {run.step} of {run.cfg.steps}", file=sys.stderr)
    else:
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
        _check_writable_dir(out)
        _atomic_write_text(out / "config.json", cfg.to_json() + "\n")
    _train_loop(run, out, quiet=args.quiet)
    return 0


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop log lines past ``step`` (written by a run that was killed after its last checkpoint)."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= step]
    _atomic_write_text(path, "".join(ln + "\n" for ln in keep))


def _train_loop(run: Any, out: Path, quiet: bool) -> None:
    from tqdm.auto import tqdm

    from cmtutor.train import save_checkpoint, to_floats, train_steps

    cfg = run.cfg
    metrics_path = out / "metrics.jsonl"
    _truncate_metrics(metrics_path, run.step)
    every = max(1, cfg.checkpoint_every)
    t0 = time.time()
    acc: dict[str, float] = {}
    n_acc = 0
    bar = tqdm(total=cfg.steps, initial=run.step, disable=quiet or None, desc=f"{cfg.method} on {cfg.data}",
               file=sys.stderr, dynamic_ncols=True)
    with metrics_path.open("a") as log:
        for logs in train_steps(run):
            step = logs["step"]
            bar.update(1)
            if step % cfg.log_every == 0 or step == cfg.steps or step % every == 0:
                vals = to_floats(logs)
                n_acc += 1
                for k, v in vals.items():
                    acc[k] = v
                record = {**vals, "time_s": round(time.time() - t0, 3)}
                if cfg.eval_every and (step % cfg.eval_every == 0 or step == cfg.steps):
                    record.update(_quick_eval(run))
                log.write(json.dumps(record) + "\n")
                log.flush()
                bar.set_postfix(loss=f"{vals['loss']:.4g}")
            if step % every == 0 or step == cfg.steps:
                log.flush()
                os.fsync(log.fileno())
                save_checkpoint(run, out / "checkpoint.pt")
    bar.close()
    print(f"trained {cfg.method} on {cfg.data}: {cfg.steps} steps; checkpoint: {out / 'checkpoint.pt'}")


def _quick_eval(run: Any) -> dict[str, float]:
    """One-step W2 ratio on 1000 points (vector data); uses its own RNG, so training is unaffected."""
    from cmtutor.metrics import w2_exact, w2_floor, subsample

    sampler = run.sampler()
    x = sampler.sample(1000, seed=12345)
    held = run.data.heldout
    w2 = w2_exact(x.numpy(), subsample(held, 1000, 0))
    return {"w2_1step": w2, "w2_floor": w2_floor(held, 1000, repeats=1)}


# --- sample ----------------------------------------------------------------------------------------

def cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np

    from cmtutor.sampling import Sampler
    from cmtutor.train import resolve_device

    out = Path(args.out)
    if args.n < 1:
        raise UserError("--n must be at least 1")
    if args.steps is not None and args.steps < 1:
        raise UserError("--steps must be at least 1")
    if out.suffix not in (".npy", ".npz"):
        raise UserError(f"--out {out}: use a .npy file (vectors) or .npz file (images)")
    sampler = Sampler.from_checkpoint(args.ckpt, weights=args.weights, device=str(resolve_device(args.device)))
    if out.suffix != ".npy":
        raise UserError(f"--out {out}: this checkpoint generates vectors; write them to a .npy file")
    _check_writable_dir(out.parent if str(out.parent) else Path("."))
    steps = args.steps or sampler.default_steps()
    x = sampler.sample(args.n, steps=steps, seed=args.seed).numpy().astype(np.float32)
    tmp = out.with_name(f".{out.name}.tmp.npy")
    np.save(tmp, x)
    os.replace(tmp, out)
    meta = {"ckpt": str(Path(args.ckpt)), "method": sampler.cfg.method, "data": sampler.cfg.data,
            "n": args.n, "steps": steps, "seed": args.seed, "weights": args.weights, "dim": sampler.dim,
            "noise": sampler.cfg.noise}
    _atomic_write_text(Path(str(out) + ".json"), json.dumps(meta, indent=2) + "\n")
    print(f"wrote {args.n} samples ({steps} step{'s' if steps > 1 else ''}) to {out}")
    return 0


# --- evaluate --------------------------------------------------------------------------------------

def cmd_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from cmtutor.data import load_vectors, read_vector_file
    from cmtutor.metrics import vector_metrics

    path = Path(args.samples)
    samples = read_vector_file(path)
    data = load_vectors(args.data)
    if samples.shape[1] != data.dim:
        raise UserError(f"{path} has {samples.shape[1]}-dimensional samples but {args.data} is "
                        f"{data.dim}-dimensional")
    result: dict[str, Any] = {"samples": str(path), "data": args.data, **vector_metrics(samples, data.heldout, args.n)}
    if args.teacher:
        result["ode_error"] = _ode_error(path, samples, args.teacher, args.device)
    if args.json:
        print(json.dumps(result))
    else:
        width = max(len(k) for k in result)
        for k, v in result.items():
            print(f"{k:<{width}}  {v:.6g}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    del np
    return 0


def _ode_error(path: Path, samples: Any, teacher_path: str, device: str) -> float:
    """Mean squared distance (per dimension, raw units) to the teacher's PF-ODE solution from the same noise."""
    import torch

    from cmtutor.checkpoint import load_checkpoint
    from cmtutor.data import Standardizer
    from cmtutor.metrics import ode_error
    from cmtutor.samplers import sample_ode
    from cmtutor.sampling import DEFAULT_ODE_STEPS, unit_noise
    from cmtutor.train import model_from_checkpoint, resolve_device

    meta_path = Path(str(path) + ".json")
    if not meta_path.exists():
        raise UserError(f"ode_error needs {meta_path.name} beside the samples (written by "
                        "`python -m cmtutor sample`: it records the noise seed)")
    meta = json.loads(meta_path.read_text())
    ckpt = load_checkpoint(teacher_path, ("diffusion",), role="--teacher")
    if ckpt["dim"] != samples.shape[1]:
        raise UserError(f"--teacher is {ckpt['dim']}-dimensional but the samples are {samples.shape[1]}-dimensional")
    dev = resolve_device(device)
    teacher = model_from_checkpoint(ckpt).to(dev)
    noise = teacher.noise
    z = unit_noise(meta["n"], (ckpt["dim"],), meta["seed"]).to(dev)
    with torch.no_grad():
        ref = sample_ode(teacher, z, noise.sigma_min, noise.sigma_max, steps=DEFAULT_ODE_STEPS)
    ref_raw = Standardizer.from_dict(ckpt["standardizer"]).decode(ref).cpu().numpy()
    return ode_error(samples, ref_raw)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"train": cmd_train, "sample": cmd_sample, "evaluate": cmd_evaluate}
    try:
        return handlers[args.command](args)
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
