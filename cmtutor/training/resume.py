"""A run's checkpoint (everything to sample from it and to resume it exactly) and resuming from one.

A checkpoint holds every RNG state, so a resumed run ends with the same weights as one that was never
interrupted. The file format and the atomic write are :mod:`cmtutor.checkpoint`'s.
"""

from __future__ import annotations

import sys
from typing import Any

from cmtutor.checkpoint import FORMAT, Teacher, atomic_torch_save, state_dict_of
from cmtutor.config.run import TrainConfig
from cmtutor.data.sources import scaler_from_dict
from cmtutor.hardware import distributed
from cmtutor.hardware.accel import unwrap
from cmtutor.training.rng import rng_states, seed_everything, set_rng_states
from cmtutor.training.run import Run, build_run


def _rng_to_save(run: Run) -> dict[str, Any]:
    return run.batches.checkpoint_rng() or rng_states(run.device)


def checkpoint_dict(run: Run) -> dict[str, Any]:
    """Everything needed to sample from the run and to resume it exactly."""
    nets = run.nets
    return {
        "format": FORMAT,
        "config": run.cfg.to_dict(),
        "dim": run.dim,
        "step": run.step,
        "model": state_dict_of(nets.model),
        "ema": nets.ema.state_dict(),
        "extra_emas": {repr(d): e.state_dict() for d, e in nets.extra_emas.items()},
        "target": nets.target.state_dict() if nets.target is not None else None,
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "rng": _rng_to_save(run),
        "standardizer": run.standardizer.to_dict(),
        "teacher": run.teacher.to_dict() if run.teacher is not None else None,
        "threads": run.threads,
    }


def save_checkpoint(run: Run, path: Any) -> None:
    """Write the run's checkpoint atomically (under ``torchrun``: call on every rank; rank 0 writes).

    Under ``torchrun`` the checkpoint also holds every rank's RNG states (``rng_ranks``), so a resume
    with the same number of processes continues exactly.
    """
    ranks = distributed.all_gather_object(_rng_to_save(run)) if run.world_size > 1 else None
    if run.rank == 0:
        ckpt = checkpoint_dict(run)
        if ranks is not None:
            ckpt["rng_ranks"] = ranks
        atomic_torch_save(ckpt, path)
    distributed.barrier()


def resume_run(ckpt: dict[str, Any], device: str | None = None) -> Run:
    """Rebuild a run from its checkpoint, at the saved step with every state restored."""
    cfg = TrainConfig.from_dict(ckpt["config"])
    if device is not None:
        cfg.device = device
    run = build_run(cfg, teacher=Teacher.embedded_in(ckpt))
    unwrap(run.nets.model).load_state_dict(ckpt["model"])
    run.nets.ema.load_state_dict(ckpt["ema"])
    for d, state in ckpt.get("extra_emas", {}).items():
        run.nets.extra_emas[float(d)].load_state_dict(state)
    if run.nets.target is not None and ckpt["target"] is not None:
        run.nets.target.load_state_dict(ckpt["target"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.scheduler.load_state_dict(ckpt["scheduler"])
    run.standardizer = scaler_from_dict(ckpt["standardizer"])
    run.step = int(ckpt["step"])
    run.threads = ckpt.get("threads")  # continue on the count the run trained on (older checkpoints: None)
    ranks = ckpt.get("rng_ranks")
    if run.world_size > 1 or ranks is not None:
        if ranks is not None and len(ranks) == run.world_size:
            set_rng_states(ranks[run.rank], run.device)
        else:
            if run.rank == 0:
                print(f"warning: the checkpoint was written by {len(ranks) if ranks else 1} process(es), this job "
                      f"has {run.world_size}: training continues, but not exactly as it would have",
                      file=sys.stderr)
            seed_everything(run.cfg.seed + 1_000_003 * (run.rank + 1) + run.step)
    else:
        set_rng_states(ckpt["rng"], run.device)
    return run
