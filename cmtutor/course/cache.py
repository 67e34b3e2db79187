"""Load-or-train: models that several notebooks need are trained once and cached.

The cache key is a hash of the full training config (and of the teacher's key, for distillation), so a
changed setting trains a new model instead of silently reusing a stale one. Cached runs are ordinary
cmtutor checkpoints (plus the loss history) under ``<data root>/cache/`` (git-ignored), written atomically.
Training is deterministic on a given machine, so a loaded run is the very run that training would give.
Several processes may ask for the same model at once (the test suite runs notebooks on two workers): a
lock file beside each entry makes the later ones wait for the first one's model instead of training it again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

from cmtutor.checkpoint import atomic_torch_save, load_checkpoint
from cmtutor.config import TrainConfig
from cmtutor.data.root import data_root
from cmtutor.hardware.filelock import file_lock
from cmtutor.training import Run, checkpoint_dict, fit, resume_run

#: Bump when a change to the code invalidates cached models.
CACHE_VERSION = 1


def cache_dir() -> Path:
    d = data_root() / "cache"
    d.mkdir(parents=True, exist_ok=True)
    return d


@contextlib.contextmanager
def entry_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``'s entry (``<path>.lock``) for the block: a second process asking for
    the same model waits for the first one's result (:func:`cmtutor.hardware.filelock.file_lock`). Without
    locks (Windows) concurrent requests may train the same model twice, still correctly (atomic writes)."""
    with file_lock(path.with_name(path.name + ".lock")):
        yield


def cache_key(cfg: TrainConfig, teacher_key: str | None = None) -> str:
    payload = json.dumps({"cfg": {**cfg.to_dict(), "teacher": None, "device": "any"}, "teacher": teacher_key,
                          "v": CACHE_VERSION}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def entry_path(cfg: TrainConfig, name: str, teacher_key: str | None = None) -> Path:
    """Where the cached run of ``cfg`` (learning from the teacher with cache key ``teacher_key``) lives."""
    return cache_dir() / f"{name}-{cache_key(cfg, teacher_key)}.pt"


def load_or_train(cfg: TrainConfig, name: str, teacher: Run | None = None, progress: bool = False) -> Run:
    """The run trained with ``cfg``: loaded from the cache if present, otherwise trained and cached.

    ``teacher`` is the run a method learns from (CD/Direct: the diffusion teacher; TCM: stage 1).
    The returned run is at its final step with ``run.history`` (the logged losses) filled in.
    """
    teacher_key = getattr(teacher, "cache_key", None) if teacher is not None else None
    key = cache_key(cfg, teacher_key)
    path = entry_path(cfg, name, teacher_key)
    with entry_lock(path):  # another process training this very model: wait for it, then load its result
        if path.exists():
            ckpt = load_checkpoint(path, role="cached model")
            run = resume_run(ckpt, device=cfg.device)
            run.history = list(ckpt.get("history", []))
        else:
            teacher_ckpt = checkpoint_dict(teacher) if teacher is not None else None
            run = fit(cfg, progress=progress, teacher=teacher_ckpt)
            ckpt = checkpoint_dict(run)
            ckpt["history"] = run.history
            atomic_torch_save(ckpt, path)
    run.cache_key = key  # type: ignore[attr-defined]
    return run


def cached_result(name: str, cfg_like: dict[str, Any], compute: Any) -> Any:
    """Load-or-compute for a small JSON result (e.g. an evaluation table) keyed by ``cfg_like``."""
    key = hashlib.sha256(json.dumps({"v": CACHE_VERSION, **cfg_like}, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"{name}-{key}.json"
    with entry_lock(path):
        if path.exists():
            return json.loads(path.read_text())
        value = compute()
        tmp = path.with_suffix(".tmp")  # one writer at a time: the entry is locked
        tmp.write_text(json.dumps(value))
        tmp.replace(path)
        return value


def _train_entry(cfg: dict[str, Any], name: str, threads: int) -> None:
    """Worker of :func:`load_or_train_many`: train (or find) one cache entry in this process."""
    torch.set_num_threads(threads)
    load_or_train(TrainConfig.from_dict(cfg), name)


def load_or_train_many(jobs: list[tuple[TrainConfig, str]], workers: int | None = None) -> list[Run]:
    """:func:`load_or_train` for several independent models (no teachers), the missing ones trained in parallel.

    A small 2D model gains little from a second torch thread, so the entries not yet cached are trained by
    ``workers`` processes (default: one per core, at most one per missing entry), each with its share of this
    process's torch threads. Training is seeded by the config, so the models are the ones :func:`load_or_train`
    would train here (bitwise with one thread each). Notebook 03's ablation (6 runs of 1000 steps) took 23-24 s
    this way on 2 cores, 32-37 s one after another with 2 threads. Returns the runs in order.

    The processes are *spawned*: from a script (not a notebook), call this under
    ``if __name__ == "__main__":``, as for any ``multiprocessing`` code.
    """
    missing = [(cfg, name) for cfg, name in jobs if not entry_path(cfg, name).exists()]
    workers = min(workers or os.cpu_count() or 1, len(missing))
    if workers > 1:
        threads = max(1, torch.get_num_threads() // workers)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for done in [pool.submit(_train_entry, cfg.to_dict(), name, threads) for cfg, name in missing]:
                done.result()  # re-raises a worker's error here
    return [load_or_train(cfg, name) for cfg, name in jobs]
