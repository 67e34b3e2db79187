"""The same config and seed give bit-identical weights with the threads a user's machine gives torch by default,
for every method on 2D data and on images; the thread count follows the machine's idle cores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from cmtutor.config import default_config
from cmtutor.hardware import threads
from cmtutor.training import checkpoint_dict, fit, resume_run, train_steps

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, sys, torch
from cmtutor.checkpoint import Teacher
from cmtutor.config import default_config
from cmtutor.training import checkpoint_dict, fit

def weights(run):
    return {k: v.clone() for k, v in run.nets.model.state_dict().items()}

def twice(cfg, teacher=None):
    a, b = weights(fit(cfg, teacher=teacher)), weights(fit(cfg, teacher=teacher))
    return all(torch.equal(a[k], b[k]) for k in a)

data, steps, extra = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
teachers = {}
report = {"threads": torch.get_num_threads()}
for method in ("diffusion", "ict", "ct", "gc", "ot", "cd", "direct", "tcm"):
    source = teachers.get("ict" if method == "tcm" else "diffusion") if method in ("cd", "direct", "tcm") else None
    cfg = default_config(method, data, steps=steps, seed=3, **extra)
    report[method] = twice(cfg, source)
    if method in ("diffusion", "ict"):
        teachers[method] = Teacher.from_checkpoint(checkpoint_dict(fit(cfg)))
print(json.dumps(report))
"""


def _default_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    # two threads even when the test runner keeps the machine busy: the multi-threaded path is the one that can
    # differ from run to run (with one thread everything is sequential)
    return {**env, "PYTHONPATH": str(ROOT), "CMTUTOR_DATA": str(tmp_path / "data"), "CMTUTOR_THREADS": "2"}


@pytest.mark.parametrize("data, steps, extra", [
    ("moons", 20, {}),  # the 2D defaults: the MLP of width 256 at batch 256-512
    ("digits", 2, {"batch_size": 16, "net": {"preset": "tiny"}}),  # the U-Net, dropout included
])
def test_every_method_is_bitwise_reproducible_with_default_threads(data: str, steps: int, extra: dict,
                                                                   tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, data, str(steps), json.dumps(extra)],
                          env=_default_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all(v for k, v in report.items() if k != "threads"), report


@pytest.fixture
def two_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """torch on two threads and no ``CMTUTOR_THREADS`` for the test; the caller's count restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    monkeypatch.delenv("CMTUTOR_THREADS", raising=False)
    yield
    torch.set_num_threads(before)


def test_threads_follow_the_idle_cores(monkeypatch: pytest.MonkeyPatch, two_threads: None) -> None:
    assert threads.fitting_threads(2, 2.0) == 2 and threads.fitting_threads(2, 1.2) == 1
    assert threads.fitting_threads(8, 3.6) == 4 and threads.fitting_threads(4, 0.0) == 1
    monkeypatch.setattr(threads, "recent_idle_cores", lambda: 0.9)  # another process holds a core
    with threads.threads_that_fit(torch.device("cpu"), quiet=True) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2  # restored after the run
    monkeypatch.setattr(threads, "recent_idle_cores", lambda: 2.0)
    with threads.threads_that_fit(torch.device("cpu"), quiet=True) as n:
        assert n == 2 and torch.get_num_threads() == 2


def test_a_resumed_run_keeps_the_thread_count_it_started_with(monkeypatch: pytest.MonkeyPatch,
                                                              two_threads: None) -> None:
    monkeypatch.setattr(threads, "recent_idle_cores", lambda: 0.9)  # busy now, but the run began on 2
    with threads.threads_that_fit(torch.device("cpu"), quiet=True, keep=2) as n:
        assert n == 2 and torch.get_num_threads() == 2
    monkeypatch.setattr(threads, "recent_idle_cores", lambda: 2.0)  # idle now, but the run began on 1
    with threads.threads_that_fit(torch.device("cpu"), quiet=True, keep=1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    with threads.threads_that_fit(torch.device("cpu"), quiet=True, keep=8) as n:  # never above torch's default
        assert n == 2
    monkeypatch.setenv("CMTUTOR_THREADS", "1")  # the user's choice wins over the kept count
    with threads.threads_that_fit(torch.device("cpu"), quiet=True, keep=2) as n:
        assert n == 1


def test_the_thread_count_is_kept_in_the_checkpoint_and_restored(monkeypatch: pytest.MonkeyPatch,
                                                                 two_threads: None) -> None:
    monkeypatch.setattr(threads, "recent_idle_cores", lambda: 0.9)  # a busy machine: the run trains on 1
    run = fit(default_config("ict", "moons", steps=3, seed=0, batch_size=32))
    ckpt = checkpoint_dict(run)
    assert run.threads == 1 and ckpt["threads"] == 1
    monkeypatch.setattr(threads, "recent_idle_cores", lambda: 2.0)  # idle at the resume
    resumed = resume_run({**ckpt, "config": {**ckpt["config"], "steps": 5}})
    seen = [torch.get_num_threads() for _ in train_steps(resumed)]
    assert resumed.threads == 1 and seen == [1, 1]


def test_the_idle_cores_are_measured_once_for_runs_started_close_together(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(threads, "idle_cores", lambda: calls.append(1) or 1.5)
    monkeypatch.setattr(threads, "_LAST", None)
    assert threads.recent_idle_cores() == 1.5 and threads.recent_idle_cores() == 1.5 and len(calls) == 1
    monkeypatch.setattr(threads, "_LAST", (threads.time.monotonic() - threads.REUSE_S - 1, 2.0))  # an old one
    assert threads.recent_idle_cores() == 1.5 and len(calls) == 2
