"""The notebooks' model cache (cmtutor.course.cache): load-or-train, keyed by the config, safe under concurrency."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch

import cmtutor.course.cache as cache
from cmtutor.course.toy2d import notebook_config


def _tiny() -> Any:
    return notebook_config("diffusion", "moons", steps=5, net={"hidden": 8, "depth": 1}, log_every=1)


def _counting_fit(monkeypatch: pytest.MonkeyPatch, delay: float = 0.0) -> list[int]:
    calls: list[int] = []
    real_fit = cache.fit

    def fit(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        time.sleep(delay)  # a slow training: a second request arrives while the first still trains
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(cache, "fit", fit)
    return calls


def test_second_request_loads_the_cached_run(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counting_fit(monkeypatch)
    first = cache.load_or_train(_tiny(), "tiny")
    second = cache.load_or_train(_tiny(), "tiny")
    assert len(calls) == 1
    assert first.cache_key == second.cache_key  # type: ignore[attr-defined]
    for a, b in zip(first.nets.ema.parameters(), second.nets.ema.parameters()):
        assert torch.equal(a, b)
    assert second.history == first.history and len(first.history) == 5
    # a changed setting trains a new model instead of reusing the stale one
    cache.load_or_train(dataclasses.replace(_tiny(), steps=6), "tiny")
    assert len(calls) == 2


def test_concurrent_requests_train_once(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two requests for one model at once (two test workers, two notebooks): one trains, the other waits for
    its result and loads it; without the lock both would train."""
    calls = _counting_fit(monkeypatch, delay=1.0)
    runs: list[Any] = []
    threads = [threading.Thread(target=lambda: runs.append(cache.load_or_train(_tiny(), "tiny"))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(runs) == 2
    for a, b in zip(runs[0].nets.ema.parameters(), runs[1].nets.ema.parameters()):
        assert torch.equal(a, b)
    assert [p.name for p in (data_root / "cache").glob("tiny-*.pt")] == [f"tiny-{runs[0].cache_key}.pt"]


def test_concurrent_cached_results_compute_once(data_root: Path) -> None:
    calls: list[int] = []

    def compute() -> dict[str, float]:
        calls.append(1)
        time.sleep(0.5)
        return {"w2": 1.25}

    out: list[Any] = []
    threads = [threading.Thread(target=lambda: out.append(cache.cached_result("table", {"a": 1}, compute)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1] and out == [{"w2": 1.25}] * 2
    assert not list((data_root / "cache").glob("*.tmp"))  # no temporary file left behind


def test_load_or_train_many_trains_the_missing_entries_in_worker_processes(
        data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Notebook 03's ablation: the missing models are trained by 2 spawned processes (which inherit
    CMTUTOR_DATA), this process only loads them; the weights are those of training here (one thread)."""
    jobs = [(dataclasses.replace(_tiny(), seed=s), f"many{s}") for s in (1, 2, 3)]
    cache.load_or_train(*jobs[0])  # one entry cached already: it is loaded, not trained again
    calls = _counting_fit(monkeypatch)  # counts training in this process only
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runs = cache.load_or_train_many(jobs, workers=2)
    finally:
        torch.set_num_threads(before)
    assert calls == []  # nothing trained here: the workers did it
    assert len({r.cache_key for r in runs}) == 3  # type: ignore[attr-defined]
    assert [r.cfg.seed for r in runs] == [1, 2, 3]  # in the order asked
    torch.set_num_threads(1)
    try:
        here = cache.fit(jobs[2][0])
    finally:
        torch.set_num_threads(before)
    for a, b in zip(runs[2].nets.ema.parameters(), here.nets.ema.parameters()):
        assert torch.equal(a, b)
