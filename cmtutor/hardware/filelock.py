"""Exclusive locks between processes on one machine (POSIX ``flock``): a model-cache entry, a run folder.

The lock is the operating system's: it is released when its holder exits, even by ``kill -9``, so a crashed
process never leaves anything locked. Where ``fcntl`` is missing (Windows) nothing is locked.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class LockHeld(Exception):
    """Another process holds the lock (``wait=False``); ``holder`` is its pid as it wrote it, or ''."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path} is locked by process {holder or '?'}")
        self.path, self.holder = path, holder


@contextlib.contextmanager
def file_lock(path: Path, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created if missing) for the block; it names the holder's pid.

    ``wait=False`` raises :class:`LockHeld` at once when another process holds it, instead of waiting.
    """
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            fh.seek(0)
            raise LockHeld(path, fh.read().strip()) from None
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()}\n")
            fh.flush()
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
