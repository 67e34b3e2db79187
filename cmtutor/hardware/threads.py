"""How many CPU threads torch may use for a run: its default on an idle machine, fewer on a busy one.

torch's OpenMP threads spin-wait between parallel regions. When another process holds one of their cores, every
region waits for the thread that shares it: a 1500-step 2D iCT run on 2 cores took 13 s idle and over 300 s with
one core busy (killed at step 1411), against 16 s with one thread (docs/defaults.md#cpu-threads). A run therefore
measures how many cores the other processes leave idle when it starts and uses no more threads than that.
``CMTUTOR_THREADS=N`` in the environment sets the count instead. The weights depend on the count in their last bits
(BLAS splits a matrix product of a few rows differently over threads), so a run keeps the count it started with:
a resumed run continues on it (``keep``) and ends with the weights of an uninterrupted one
(docs/defaults.md#cpu-threads).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch


def _cpu_times() -> tuple[float, float] | None:
    """(idle, total) jiffies of all CPUs since boot (Linux), or None."""
    try:
        fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return fields[3] + (fields[4] if len(fields) > 4 else 0.0), sum(fields[:8])


def idle_cores(window_s: float = 0.1) -> float:
    """How many cores other processes leave idle now: measured over ``window_s`` while this process waits (so its
    own work does not count), from ``/proc/stat``; elsewhere the CPU count less the 1-minute load average."""
    cpus = os.cpu_count() or 1
    before = _cpu_times()
    if before is not None:
        time.sleep(window_s)
        after = _cpu_times()
        if after is not None and after[1] > before[1]:
            return cpus * (after[0] - before[0]) / (after[1] - before[1])
    try:
        return cpus - os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - Windows
        return float(cpus)


#: (time.monotonic(), idle cores) of the last measurement: runs started within :data:`REUSE_S` reuse it
_LAST: tuple[float, float] | None = None
REUSE_S = 30.0


def recent_idle_cores() -> float:
    """:func:`idle_cores`, measured at most every :data:`REUSE_S` seconds (a notebook starts many short runs)."""
    global _LAST
    now = time.monotonic()
    if _LAST is None or now - _LAST[0] > REUSE_S:
        _LAST = (now, idle_cores())
    return _LAST[1]


def fitting_threads(default: int, idle: float) -> int:
    """``default`` threads when that many cores are idle, else one per idle core (at least one)."""
    return max(1, min(default, int(idle + 0.5)))


@contextlib.contextmanager
def threads_that_fit(device: torch.device, quiet: bool = False, keep: int | None = None) -> Iterator[int]:
    """For the block, torch uses no more CPU threads than there are idle cores (CPU runs only); restored after.

    ``keep``: the count the run started with (a resumed run), used instead of measuring, up to torch's default, so
    the run's weights do not change with the load at the resume; ``CMTUTOR_THREADS`` still overrides it.
    """
    default = torch.get_num_threads()
    chosen = os.environ.get("CMTUTOR_THREADS", "").strip()
    if device.type != "cpu" or (default == 1 and not chosen):  # nothing to choose
        yield default
        return
    if chosen.isdigit() and int(chosen) > 0:
        threads = int(chosen)
    elif keep is not None:
        threads = max(1, min(keep, default))
        if threads < keep and not quiet:
            print(f"the run started on {keep} CPU threads and this machine gives torch {default}: it continues on "
                  f"{threads}, so its weights differ in the last bits from an uninterrupted run's",
                  file=sys.stderr, flush=True)
    else:
        idle = recent_idle_cores()
        threads = fitting_threads(default, idle)
        if threads < default and not quiet:
            print(f"busy machine ({idle:.1f} of {os.cpu_count()} cores idle): training on {threads} thread(s) "
                  f"instead of {default}", file=sys.stderr, flush=True)
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(default)
