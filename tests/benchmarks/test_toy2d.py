"""The 2D benchmark's scheduler: teachers before students, parallel jobs, rows saved as they finish."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from cmtutor.benchmarks import toy2d


def test_students_wait_for_their_teacher_on_the_same_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    done: dict[tuple[str, str], float] = {}
    started: dict[tuple[str, str], float] = {}
    teachers: dict[tuple[str, str], Path | None] = {}
    lock = threading.Lock()

    def fake_run_one(data: str, method: str, work: Path, extra: list[str], teacher: Path | None) -> toy2d.Row:
        with lock:
            started[(data, method)] = time.perf_counter()
            teachers[(data, method)] = teacher
        time.sleep(0.05 if method in ("diffusion", "ict") else 0.01)
        with lock:
            done[(data, method)] = time.perf_counter()
        return toy2d.Row(data, method, 1.0, 1.0, None)

    monkeypatch.setattr(toy2d, "run_one", fake_run_one)
    saved: list[int] = []
    rows = toy2d.run_all(["moons", "rings.npy"], ["cd", "tcm", "diffusion", "ict", "direct"], tmp_path, [],
                         jobs=3, on_row=lambda r: saved.append(len(r)))
    assert len(rows) == 10 and saved == list(range(1, 11))  # every row saved as it finished
    for d in ("moons", "rings.npy"):
        for student, teacher in (("cd", "diffusion"), ("direct", "diffusion"), ("tcm", "ict")):
            assert started[(d, student)] >= done[(d, teacher)]
            assert teachers[(d, student)] == tmp_path / f"{Path(d).stem}-{teacher}" / "checkpoint.pt"
        assert teachers[(d, "diffusion")] is None


def test_a_student_without_its_teacher_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(toy2d, "run_one", lambda d, m, w, e, t: toy2d.Row(d, m, 1.0, 1.0, 1.0))
    rows = toy2d.run_all(["moons"], ["cd", "ict"], tmp_path, [], jobs=2)
    assert [r.method for r in rows] == ["ict"] and "skip cd on moons" in capsys.readouterr().out


def test_verdict_applies_the_issue_bars() -> None:
    assert toy2d.Row("moons", "ict", 100.0, 1.4, 1.2).verdict() == "pass"
    assert toy2d.Row("moons", "ict", 100.0, 1.4, 1.35).verdict() == "FAIL"  # two-step bar 1.3
    assert toy2d.Row("moons", "gc", 100.0, 1.55, None).verdict() == "pass"
    assert toy2d.Row("moons", "diffusion", 200.0, 1.0, None).verdict() == "FAIL"  # over 180 s
    assert toy2d.Row("moons", "diffusion", 200.0, 1.0, None).verdict_text() == "FAIL (time)"
    assert toy2d.Row("moons", "cd", 200.0, 1.6, None).verdict_text() == "FAIL (quality, time)"
    assert toy2d.Row("moons", "cd", 100.0, 1.6, None).verdict_text() == "FAIL (quality)"


def test_seeds_pair_students_with_their_teacher_of_the_same_seed(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, list[str], Path | None, Path]] = []
    lock = threading.Lock()

    def fake_run_one(data: str, method: str, work: Path, extra: list[str], teacher: Path | None) -> toy2d.Row:
        seed = int(extra[extra.index("--seed") + 1])
        with lock:
            calls.append((method, list(extra), teacher, work))
        r2 = None if method == "diffusion" else 1.0 + seed / 10
        return toy2d.Row(data, method, 100.0 + seed, 1.2 + seed / 10, r2)

    monkeypatch.setattr(toy2d, "run_one", fake_run_one)
    rows = toy2d.run_all(["moons"], ["cd", "diffusion"], tmp_path, ["--steps", "9"], jobs=3, seeds=[0, 1, 2])
    assert sorted((r.method, r.seed) for r in rows) == [(m, k) for m in ("cd", "diffusion") for k in range(3)]
    for method, extra, teacher, work in calls:
        seed = int(extra[-1])
        assert extra[:2] == ["--steps", "9"] and work == tmp_path / f"seed{seed}"
        if method == "cd":
            assert teacher == tmp_path / f"seed{seed}" / "moons-diffusion" / "checkpoint.pt"
    summary = {s.method: s for s in toy2d.summarize(rows)}
    cd = summary["cd"]
    assert cd.seeds == [0, 1, 2] and cd.r1 == pytest.approx(1.3) and cd.r1_range == pytest.approx((1.2, 1.4))
    assert cd.r2 == pytest.approx(1.1) and cd.train_s == pytest.approx(101.0)
    assert cd.verdict() == "pass"  # the mean 1.3 meets CD's bar 1.5, though one seed (1.4) is close
    assert summary["diffusion"].r2 is None and summary["diffusion"].verdict() == "FAIL"  # 1.3 > 1.15


def test_results_merge_replaces_only_the_rerun_rows(tmp_path: Path) -> None:
    """A partial rerun replaces its (set, method, seed) rows in the results file and keeps the others."""
    old = [{**toy2d.Row("moons", m, 100.0, 1.4, None, seed=s).__dict__, "verdict": "pass"}
           for m in ("diffusion", "ict") for s in (0, 1)]
    merged = toy2d.merge_rows(old, [toy2d.Row("moons", "ict", 90.0, 1.7, 1.2, seed=1)])
    assert len(merged) == 4
    new = next(r for r in merged if r["method"] == "ict" and r["seed"] == 1)
    assert new["r1"] == 1.7 and new["verdict"] == "FAIL"
    doc = toy2d.results_document(merged, ["cmd"])
    ict = next(s for s in doc["summary"] if s["method"] == "ict")
    assert ict["r1"] == pytest.approx(1.55) and ict["seeds"] == [0, 1]


def test_a_gpu_row_is_not_held_to_the_cpu_time_bar() -> None:
    assert toy2d.Row("moons", "diffusion", 200.0, 1.0, None, timed=False).verdict() == "pass"


def test_only_a_run_alone_on_two_cores_is_held_to_the_time_bar() -> None:
    assert toy2d.is_timed(1, 2, False, 2) and toy2d.is_timed(1, None, False, 2) and toy2d.is_timed(7, 2, False, 14)
    assert not toy2d.is_timed(2, 1, False, 2)  # two trainings sharing 2 cores, one thread each
    assert not toy2d.is_timed(1, 1, False, 16) and not toy2d.is_timed(1, 2, True, 16)
    assert not toy2d.is_timed(1, None, False, 16)  # torch's default: all 16 cores
