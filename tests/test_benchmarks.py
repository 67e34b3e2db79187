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
