"""Multi-process training with DistributedDataParallel, launched by ``torchrun``.

    torchrun --nproc_per_node=N -m cmtutor train --method ict --data cifar10 --out runs/ict ...

``torchrun`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; :func:`init` reads them and joins the
process group: NCCL when every process has a GPU of its own, Gloo otherwise (CPU runs, the tests, or
more processes than GPUs). Each process draws its own batches (``batch_size`` is the *global* batch,
split evenly), gradients are averaged by DDP, and rank 0 alone writes config, log, checkpoints and
sample grids. Checkpoints hold every rank's RNG states, so ``--resume`` with the same number of
processes continues exactly.
"""

from __future__ import annotations

import atexit
import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


_ENV = DistEnv()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: str = "auto") -> DistEnv:
    """Join the process group if launched by ``torchrun`` with several processes; return this process's place."""
    global _ENV
    if not launched_by_torchrun():
        return _ENV
    if dist.is_initialized():
        return _ENV
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local % torch.cuda.device_count())
    backend = "nccl" if use_cuda and torch.cuda.device_count() >= local_world else "gloo"
    dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
    atexit.register(shutdown, wait=False)
    _ENV = DistEnv(rank, world, local, backend)
    return _ENV


def env() -> DistEnv:
    """The current process's place (rank 0 of 1 outside ``torchrun``)."""
    return _ENV


def barrier() -> None:
    if _ENV.distributed:
        dist.barrier()


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (a list with one entry outside ``torchrun``)."""
    if not _ENV.distributed:
        return [obj]
    out: list[Any] = [None] * _ENV.world_size
    dist.all_gather_object(out, obj)
    return out


def mean_over_ranks(values: dict[str, float]) -> dict[str, float]:
    """Average floats over ranks (for logging the loss of the whole global batch)."""
    if not _ENV.distributed:
        return values
    keys = sorted(k for k in values if k not in ("step", "lr", "num_scales"))
    dev = torch.device("cuda") if _ENV.backend == "nccl" else torch.device("cpu")
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=dev)
    dist.all_reduce(t)
    t /= _ENV.world_size
    return {**values, **{k: float(v) for k, v in zip(keys, t.tolist())}}


def any_rank(flag: bool) -> bool:
    """True if ``flag`` is true on any rank (every rank stops at the same step when one is asked to)."""
    if not _ENV.distributed:
        return flag
    dev = torch.device("cuda") if _ENV.backend == "nccl" else torch.device("cpu")
    t = torch.tensor([float(flag)], device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def shutdown(wait: bool = True) -> None:
    """Leave the process group (also done at exit); with ``wait``, after every rank got here."""
    global _ENV
    if dist.is_initialized():
        try:
            if wait:
                dist.barrier()
        finally:
            dist.destroy_process_group()
    _ENV = DistEnv()


def log_main(msg: str) -> None:
    """Print on rank 0 only (stderr)."""
    if _ENV.is_main:
        print(msg, file=sys.stderr, flush=True)
