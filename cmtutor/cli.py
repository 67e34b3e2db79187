"""The command line: ``python -m cmtutor {train,sample,evaluate}`` (contract in COURSE_DESIGN.md).

Bad input ends with exit code 2 and one line ``error: …`` on stderr, before anything on disk is
touched. ``train`` writes ``DIR/config.json``, ``DIR/metrics.jsonl`` and ``DIR/checkpoint.pt`` (atomic);
``--resume`` continues to the same total and ends with the same weights as an uninterrupted run.
Under ``torchrun --nproc_per_node=N -m cmtutor train ...`` it trains with DDP (rank 0 writes).
Image runs also log throughput (images/s) and peak memory, and write sample grids to ``DIR/samples/``.
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
    s.add_argument("--out", required=True, help=".npy (vectors) or .npz (images)")

    e = sub.add_parser("evaluate", help="compare samples with held-out data")
    e.add_argument("--samples", required=True)
    e.add_argument("--data", required=True)
    e.add_argument("--teacher", help="diffusion checkpoint: also report ode_error")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--n", type=int, default=1000, help="subsample size for the W2 family")
    e.add_argument("--repeats", type=int, help="draws of W2 and of its floor to average "
                   "(default: cmtutor.metrics.EVAL_REPEATS; the report gives the ratio's standard error)")
    e.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    e.add_argument("--fid-mode", default="legacy_tensorflow", help="images: clean-fid mode "
                   "(legacy_tensorflow = the papers' protocol, clean, legacy_pytorch)")
    e.add_argument("--inception", metavar="FILE", help="images: a local copy of clean-fid's inception-2015-12-05.pt")
    e.add_argument("--ref", choices=["train", "heldout"], default="train",
                   help="images: the FID reference split (the papers use the training images)")
    e.add_argument("--no-fid", action="store_true", help="images: skip FID")
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
    from cmtutor import distributed

    distributed.init(args.device or "auto")  # no-op outside torchrun; the group is left at exit
    try:
        code = _cmd_train(args)
    except BaseException:
        distributed.shutdown(wait=False)  # the other ranks are stopped by torchrun
        raise
    distributed.barrier()  # every rank has finished (and rank 0 has written) before returning
    return code


def _cmd_train(args: argparse.Namespace) -> int:
    from cmtutor import distributed
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
        distributed.log_main(f"resuming {run.cfg.method} at step {run.step} of {run.cfg.steps}")
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
        if distributed.env().is_main:
            _atomic_write_text(out / "config.json", cfg.to_json() + "\n")
    if args.stop_at is not None and args.stop_at < 1:
        raise UserError("--stop-at must be at least 1")
    _train_loop(run, out, quiet=args.quiet, stop_at=args.stop_at)
    return 0


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop log lines past ``step`` (written by a run that was killed after its last checkpoint)."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= step]
    _atomic_write_text(path, "".join(ln + "\n" for ln in keep))


def _train_loop(run: Any, out: Path, quiet: bool, stop_at: int | None = None) -> None:
    import contextlib

    from tqdm.auto import tqdm

    from cmtutor import distributed
    from cmtutor.accel import Throughput, describe_run
    from cmtutor.train import save_checkpoint, to_floats, train_steps

    cfg = run.cfg
    main = run.rank == 0
    image = not isinstance(run.dim, int)
    metrics_path = out / "metrics.jsonl"
    if main:
        _truncate_metrics(metrics_path, run.step)
    until = cfg.steps if stop_at is None else min(stop_at, cfg.steps)
    every = max(1, cfg.checkpoint_every)
    if image and main:
        perf = describe_run(cfg, run.device)
        print("performance: " + ", ".join(f"{k}={v}" for k, v in perf.items()), file=sys.stderr, flush=True)
    t0 = time.time()
    meter = Throughput(run.device, cfg.batch_size)  # per log interval (the first includes compile time)
    overall = None  # from the end of the first step: warm-up and compilation excluded
    bar = tqdm(total=cfg.steps, initial=run.step, disable=quiet or not main or None,
               desc=f"{cfg.method} on {cfg.data}", file=sys.stderr, dynamic_ncols=True)
    log_cm = metrics_path.open("a") if main else contextlib.nullcontext()
    with log_cm as log:
        for logs in train_steps(run, until=until):
            step = logs["step"]
            bar.update(1)
            meter.tick()
            if overall is None:
                overall = Throughput(run.device, cfg.batch_size)
            else:
                overall.tick()
            if step % cfg.log_every == 0 or step == cfg.steps or step % every == 0 or step == until:
                vals = distributed.mean_over_ranks(to_floats(logs))
                record = {**vals, "time_s": round(time.time() - t0, 3)}
                if image:
                    record.update(meter.lap())
                if cfg.eval_every and not image and (step % cfg.eval_every == 0 or step == cfg.steps):
                    record.update(_quick_eval(run))
                if main:
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                bar.set_postfix(loss=f"{vals['loss']:.4g}")
            if image and cfg.sample_every and main and (step % cfg.sample_every == 0 or step == until):
                _sample_grid(run, out, step)
            if step % every == 0 or step == cfg.steps or step == until:
                if main:
                    log.flush()
                    os.fsync(log.fileno())
                save_checkpoint(run, out / "checkpoint.pt")
    bar.close()
    if not main:
        return
    done = "trained" if run.step >= cfg.steps else f"stopped at step {run.step} of"
    print(f"{done} {cfg.method} on {cfg.data}: {cfg.steps} steps; checkpoint: {out / 'checkpoint.pt'}")
    if image and overall is not None and overall.steps:
        stats = overall.lap()
        print("throughput: " + ", ".join(f"{k}={v}" for k, v in stats.items()), file=sys.stderr)


def _sample_grid(run: Any, out: Path, step: int) -> None:
    """A grid of 64 one-step (CMs) or 18-step ODE (diffusion) EMA samples: DIR/samples/step_NNNNNNN.png.

    Uses its own noise generators, so it does not change the training run's random streams.
    """
    from cmtutor.imagedata import save_grid

    sampler = run.sampler()
    steps = 18 if sampler.method.ode_sampling else 1
    images = sampler.sample_images(64, steps=steps, seed=12345, batch_size=64)
    (out / "samples").mkdir(exist_ok=True)
    save_grid(images, out / "samples" / f"step_{step:07d}.png", scale=max(1, 64 // images.shape[1]))


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
    if sampler.is_image:
        return _sample_images(args, sampler, out)
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


def _sample_images(args: argparse.Namespace, sampler: Any, out: Path) -> int:
    import numpy as np

    from cmtutor.accel import effective_precision, hardware, sync

    if out.suffix != ".npz":
        raise UserError(f"--out {out}: this checkpoint generates images; write them to an .npz file")
    if args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    _check_writable_dir(out.parent if str(out.parent) else Path("."))
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
            "seed": args.seed, "weights": args.weights, "dim": list(sampler.dim), "noise": cfg.noise,
            "precision": effective_precision(cfg.precision, sampler.device), "batch_size": args.batch_size,
            "hardware": hardware(), "seconds": round(seconds, 2), "images_per_s": round(args.n / seconds, 1)}
    _atomic_write_text(Path(str(out) + ".json"), json.dumps(meta, indent=2) + "\n")
    print(f"wrote {args.n} images ({steps} step{'s' if steps > 1 else ''}) to {out}")
    return 0


# --- evaluate --------------------------------------------------------------------------------------

def cmd_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from cmtutor.data import load_vectors, read_vector_file
    from cmtutor.metrics import EVAL_REPEATS, vector_metrics

    repeats = EVAL_REPEATS if args.repeats is None else args.repeats
    if repeats < 1:
        raise UserError(f"--repeats must be at least 1, got {repeats}")
    path = Path(args.samples)
    if path.suffix == ".npz":
        return _evaluate_images(args, path)
    samples = read_vector_file(path)
    data = load_vectors(args.data)
    if samples.shape[1] != data.dim:
        raise UserError(f"{path} has {samples.shape[1]}-dimensional samples but {args.data} is "
                        f"{data.dim}-dimensional")
    result: dict[str, Any] = {"samples": str(path), "data": args.data,
                              **vector_metrics(samples, data.heldout, args.n, repeats)}
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


def _evaluate_images(args: argparse.Namespace, path: Path) -> int:
    """FID (clean-fid, protocol beside it), FD-digits for the digits, ODE error with --teacher."""
    from cmtutor import fid as fidlib
    from cmtutor.accel import hardware
    from cmtutor.imagedata import describe, load_images, read_image_file
    from cmtutor.train import resolve_device

    samples = read_image_file(path)
    data = load_images(args.data)
    c, h, w = data.shape
    if samples.shape[1:] != (h, w, c):
        raise UserError(f"{path} holds images of shape {samples.shape[1:]}, but {args.data} has {(h, w, c)}")
    meta_path = Path(str(path) + ".json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    sample_proto = {k: meta[k] for k in ("method", "weights", "steps", "seed", "precision") if k in meta}
    if meta.get("hardware"):
        sample_proto["sampled_on"] = meta["hardware"]
    result: dict[str, Any] = {"samples": str(path), **describe(data), "n": int(len(samples))}
    if data.name == "digits":
        from cmtutor import digits_fd

        result["fd_digits"] = digits_fd.fd_digits(samples)
        result["fd_digits_floor"] = digits_fd.fd_digits_floor(len(samples))
        result["fd_digits_protocol"] = {**digits_fd.protocol(len(samples)), **sample_proto}
    if not args.no_fid:
        reference = data.train if args.ref == "train" else data.heldout
        ref_label = f"{data.name} {'train' if args.ref == 'train' else data.heldout_split}"
        try:
            ext = fidlib.inception(args.fid_mode, args.inception, device=str(resolve_device(args.device)))
        except UserError as exc:
            if data.name != "digits" or args.inception:
                raise
            result["fid"] = None
            result["fid_note"] = f"skipped: {exc}"
        else:
            res = fidlib.fid(samples, reference, ref_label, ext,
                             {**sample_proto, "evaluated_on": hardware(),
                              **({"data_note": data.note} if data.note else {})})
            result["fid"] = res["value"]
            result["fid_protocol"] = res["protocol"]
    if args.teacher:
        result["ode_error"] = _ode_error(path, samples.astype("float32"), args.teacher, args.device)
    if args.json:
        print(json.dumps(result))
    else:
        width = max(len(k) for k in result)
        for k, v in result.items():
            if isinstance(v, dict):
                v = fidlib.format_protocol(v)
            print(f"{k:<{width}}  {v:.6g}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    return 0


def _ode_error(path: Path, samples: Any, teacher_path: str, device: str) -> float:
    """Mean squared distance (per dimension, raw units) to the teacher's PF-ODE solution from the same noise."""
    import torch

    from cmtutor.checkpoint import load_checkpoint
    from cmtutor.data import scaler_from_dict
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
    dev = resolve_device(device)
    if isinstance(ckpt["dim"], int):
        if ckpt["dim"] != samples.shape[1]:
            raise UserError(f"--teacher is {ckpt['dim']}-dimensional but the samples are "
                            f"{samples.shape[1]}-dimensional")
        teacher = model_from_checkpoint(ckpt).to(dev)
        noise = teacher.noise
        z = unit_noise(meta["n"], (ckpt["dim"],), meta["seed"]).to(dev)
        with torch.no_grad():
            ref = sample_ode(teacher, z, noise.sigma_min, noise.sigma_max, steps=DEFAULT_ODE_STEPS)
        ref_raw = scaler_from_dict(ckpt["standardizer"]).decode(ref).cpu().numpy()
        return ode_error(samples, ref_raw)
    # images: the teacher's ODE solution from the same per-image noise, compared in [-1, 1] units
    from cmtutor.sampling import Sampler

    c, h, w = ckpt["dim"]
    if samples.shape[1:] != (h, w, c):
        raise UserError(f"--teacher generates images of shape {(h, w, c)}, the samples are {samples.shape[1:]}")
    teacher_sampler = Sampler.from_checkpoint(teacher_path, device=str(dev))
    ref = teacher_sampler.sample_images(meta["n"], steps=DEFAULT_ODE_STEPS, seed=meta["seed"])
    return ode_error(samples / 127.5 - 1.0, ref.astype("float32") / 127.5 - 1.0)


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
