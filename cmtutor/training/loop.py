"""The training loop: :func:`train_steps`, a generator that performs one optimisation step per iteration
and yields that step's logs, so a notebook can watch (and plot) training as it happens::

    run = build_run(default_config("ict", "moons", steps=2000))
    for log in train_steps(run):
        ...

:func:`fit` runs it to the end with an optional progress bar; the command line adds the run folder
(:mod:`cmtutor.training.rundir`: metrics log, periodic atomic checkpoints, sample grids).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch import Tensor, nn
from tqdm.auto import tqdm

from cmtutor.checkpoint import Teacher
from cmtutor.config.run import TrainConfig
from cmtutor.core.ema import ema_update
from cmtutor.hardware.accel import autocast, wrap_for_training
from cmtutor.hardware.threads import threads_that_fit
from cmtutor.training.run import Run, build_run


def train_steps(run: Run, until: int | None = None) -> Iterator[dict[str, Any]]:
    """Step the run until ``until`` (default ``cfg.steps``), yielding each step's logs.

    Each yielded dict has ``step`` (steps done so far), ``lr`` and the method's logs (tensors are
    converted lazily by :func:`to_floats`, so a GPU never waits for a host sync on unlogged steps).
    """
    until = run.cfg.steps if until is None else until
    if not run.prepared:  # compile / DDP wrappers (the parameters stay the same objects)
        run.nets.model = wrap_for_training(run.nets.model, run.device, run.cfg.compile)
        run.prepared = True
    run.nets.model.train()
    if run.nets.target is not None:
        run.nets.target.train()
    # no spinning threads on busy cores; the count is kept for the rest of the run and its resumes
    with threads_that_fit(run.device, quiet=True, keep=run.threads) as threads, run.batches.running(run):
        run.threads = threads if run.device.type == "cpu" else None
        while run.step < until:
            x, drawn = run.batches.next(run, until)
            yield step(run, x, drawn)


def step(run: Run, x: Tensor, drawn: Any = None) -> dict[str, Any]:
    """One optimisation step on the batch ``x``: the method's loss, the optimiser, the EMAs."""
    nets, opt, model = run.nets, run.optimizer, run.nets.model
    with autocast(run.device, run.cfg.precision):
        loss, logs = run.method.loss(nets, x, run.step, drawn)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if run.cfg.grad_clip and run.cfg.grad_clip > 0:
        logs["grad_norm"] = nn.utils.clip_grad_norm_(model.parameters(), run.cfg.grad_clip).detach()
    lr = opt.param_groups[0]["lr"]
    opt.step()
    run.scheduler.step()
    cfg = run.cfg  # the warm-up depends on the step only, so a resumed run averages exactly as an unbroken one
    ema_update(nets.ema, model, cfg.sampling_decay(cfg.ema_decay, run.step))
    for cap, extra in nets.extra_emas.items():
        ema_update(extra, model, cfg.sampling_decay(cap, run.step))
    run.method.after_step(nets, run.step)
    run.step += 1
    return {"step": run.step, "lr": lr, **logs}


def to_floats(logs: dict[str, Any]) -> dict[str, float]:
    """Convert a step's logs (tensors, numbers) to plain floats for JSON."""
    out = {k: (float(v.item()) if isinstance(v, Tensor) else float(v)) for k, v in logs.items()}
    if "step" in out:
        out["step"] = int(out["step"])  # type: ignore[assignment]
    return out


def fit(cfg: TrainConfig, progress: bool = False, data: Any = None,
        teacher: dict[str, Any] | Teacher | None = None, log_every: int | None = None) -> Run:
    """Build and train a run to ``cfg.steps`` in memory; the loss curve is kept in ``run.history``."""
    return train_to_end(build_run(cfg, data=data, teacher=teacher), progress, log_every)


def train_to_end(run: Run, progress: bool = False, log_every: int | None = None) -> Run:
    """Train a built run to ``cfg.steps``, appending every ``log_every``-th step's logs to ``run.history``."""
    cfg = run.cfg
    every = log_every or cfg.log_every
    steps: Iterator[dict[str, Any]] = train_steps(run)
    if progress:
        steps = tqdm(steps, total=cfg.steps, desc=f"{cfg.method} on {cfg.data}")
    for logs in steps:
        if logs["step"] % every == 0 or logs["step"] == cfg.steps:
            run.history.append(to_floats(logs))
    return run
