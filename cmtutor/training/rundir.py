"""The run folder of ``python -m cmtutor train``: ``config.json``, ``metrics.jsonl`` (one JSON object per logged
step), ``checkpoint.pt`` (written atomically at the checkpoint cadence and at the end), and for images sample
grids in ``samples/``. :func:`train_in_folder` is the training loop with that bookkeeping around it.

A run ends early in two ways, each with one line saying what happened (:class:`TrainingStopped`):

* SIGTERM (a cluster's time limit, preemption) or SIGINT (Ctrl+C): the step under way finishes, its checkpoint is
  written, and the line says how to resume; exit status 128 + the signal (143, 130). A second signal kills.
* a non-finite loss: nothing more is written, so the folder keeps the last good checkpoint; exit status 1.

:func:`exclusive_folder` holds a lock on the folder while a ``train`` writes to it: a second one is refused.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tqdm.auto import tqdm

from cmtutor.core.metrics import subsample, w2_exact, w2_floor
from cmtutor.data.images import save_grid
from cmtutor.errors import UserError
from cmtutor.hardware import distributed
from cmtutor.hardware.accel import Throughput, describe_run
from cmtutor.hardware.filelock import LockHeld, file_lock
from cmtutor.hardware.threads import threads_that_fit
from cmtutor.training.loop import to_floats, train_steps
from cmtutor.training.resume import save_checkpoint
from cmtutor.training.run import Run


class TrainingStopped(Exception):
    """``train`` ended before its last step; ``code`` is the exit status, the message one line for stderr."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@contextlib.contextmanager
def exclusive_folder(out: Path) -> Iterator[None]:
    """Hold ``out/.train.lock`` while training: a second ``train`` on the same folder gets a UserError."""
    try:
        with file_lock(out / ".train.lock", wait=False):
            yield
    except LockHeld as exc:
        raise UserError(f"another train process (pid {exc.holder or '?'}) is writing to {out}; wait for it to "
                        "finish, or choose another --out") from None


@contextlib.contextmanager
def stop_requests() -> Iterator[list[int]]:
    """Record SIGTERM and SIGINT in the returned list instead of dying, so the loop can stop cleanly after the
    step under way; a second signal interrupts at once. Outside the main thread signals cannot be caught."""
    got: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield got
        return

    def handler(signum: int, frame: object) -> None:
        if got:
            raise KeyboardInterrupt
        got.append(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield got
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def check_writable_dir(path: Path) -> None:
    """Create ``path`` if needed and prove a file can be written there; UserError otherwise."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".cmtutor-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to output folder {path}: {exc.strerror or exc}") from None


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --- train -----------------------------------------------------------------------------------------

def truncate_metrics(path: Path, step: int) -> None:
    """Drop log lines past ``step`` (written by a run that was killed after its last checkpoint)."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= step]
    atomic_write_text(path, "".join(ln + "\n" for ln in keep))


def train_in_folder(run: Run, out: Path, quiet: bool, stop_at: int | None = None,
                    resume_hint: str = "the same command with --resume") -> None:
    """Train ``run`` to ``stop_at`` (default: its last step) with the folder's log, checkpoints and grids.

    :class:`TrainingStopped` on SIGTERM/SIGINT (after checkpointing the step reached; ``resume_hint`` is the
    command the message suggests) and on a non-finite loss (the last good checkpoint is kept).
    """
    cfg = run.cfg
    main = run.rank == 0
    image = not isinstance(run.dim, int)
    metrics_path = out / "metrics.jsonl"
    if main:
        truncate_metrics(metrics_path, run.step)
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
    saved = run.step if (out / "checkpoint.pt").exists() else None  # the last good checkpoint's step
    # the count is chosen here (kept on a resume) and recorded by train_steps, which chooses within it
    fit_threads = threads_that_fit(run.device, quiet=not main, keep=run.threads)
    with log_cm as log, stop_requests() as signals, fit_threads:
        for logs in train_steps(run, until=until):
            step = logs["step"]
            stop = distributed.any_rank(bool(signals))
            bar.update(1)
            meter.tick()
            if overall is None:
                overall = Throughput(run.device, cfg.batch_size)
            else:
                overall.tick()
            checkpoint = step % every == 0 or step == cfg.steps or step == until or stop
            if step % cfg.log_every == 0 or checkpoint:
                vals = distributed.mean_over_ranks(to_floats(logs))
                if not math.isfinite(vals["loss"]):
                    kept = f"the last good checkpoint (step {saved}) is kept" if saved else "no checkpoint was written"
                    raise TrainingStopped(f"the loss is {vals['loss']} at step {step}: training diverged, so it "
                                          f"stopped; {kept} in {out}. Try a lower --lr.", 1)
                record = {**vals, "time_s": round(time.time() - t0, 3)}
                if image:
                    record.update(meter.lap())
                if cfg.eval_every and not image and (step % cfg.eval_every == 0 or step == cfg.steps):
                    record.update(quick_eval(run))
                if main:
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                bar.set_postfix(loss=f"{vals['loss']:.4g}")
            if image and cfg.sample_every and main and (step % cfg.sample_every == 0 or step == until):
                sample_grid(run, out, step)
            if checkpoint:
                if main:
                    log.flush()
                    os.fsync(log.fileno())
                save_checkpoint(run, out / "checkpoint.pt")
                saved = step
            if stop:
                bar.close()
                name = signal.Signals(signals[0]).name if signals else "a signal on another rank"
                raise TrainingStopped(f"stopped by {name} at step {step} of {cfg.steps}; the checkpoint of that step "
                                      f"is in {out / 'checkpoint.pt'}; continue with: {resume_hint}",
                                      128 + (signals[0] if signals else signal.SIGTERM))
    bar.close()
    if not main:
        return
    done = "trained" if run.step >= cfg.steps else f"stopped at step {run.step} of"
    print(f"{done} {cfg.method} on {cfg.data}: {cfg.steps} steps; checkpoint: {out / 'checkpoint.pt'}")
    if image and overall is not None and overall.steps:
        stats = overall.lap()
        print("throughput: " + ", ".join(f"{k}={v}" for k, v in stats.items()), file=sys.stderr)


def sample_grid(run: Run, out: Path, step: int) -> None:
    """A grid of 64 one-step (CMs) or 18-step ODE (diffusion) EMA samples: DIR/samples/step_NNNNNNN.png.

    Uses its own noise generators, so it does not change the training run's random streams.
    """
    sampler = run.sampler()
    steps = 18 if sampler.method.ode_sampling else 1
    images = sampler.sample_images(64, steps=steps, seed=12345, batch_size=64)
    (out / "samples").mkdir(exist_ok=True)
    save_grid(images, out / "samples" / f"step_{step:07d}.png", scale=max(1, 64 // images.shape[1]))


def quick_eval(run: Run) -> dict[str, float]:
    """One-step W2 ratio on 1000 points (vector data); uses its own RNG, so training is unaffected."""
    sampler = run.sampler()
    x = sampler.sample(1000, seed=12345)
    held = run.data.heldout
    w2 = w2_exact(x.numpy(), subsample(held, 1000, 0))
    return {"w2_1step": w2, "w2_floor": w2_floor(held, 1000, repeats=1)}


# --- sample ----------------------------------------------------------------------------------------
