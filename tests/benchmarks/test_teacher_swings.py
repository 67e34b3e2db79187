"""The teacher-swings study (cmtutor.benchmarks.teacher_swings): its colour measures in closed form, and a tiny run
end to end with its page section."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cmtutor.benchmarks import teacher_swings
from cmtutor.benchmarks.report import teacher_swings_section


def test_colour_shift_and_its_removal_in_closed_form() -> None:
    rng = np.random.default_rng(0)
    reference = rng.integers(40, 200, size=(50, 4, 4, 3)).astype(np.uint8)
    shifted = (reference.astype(np.int64) + np.array([10, -5, 0])).astype(np.uint8)  # no clipping: 40..199 ± 10
    shift = teacher_swings.colour_shift(shifted, reference)
    assert np.allclose(shift, [10, -5, 0])
    assert np.array_equal(teacher_swings.without_shift(shifted, shift), reference)
    # contrast halved about the mean: matching mean and deviation brings the channels' statistics back
    faded = (128 + (reference.astype(np.float64) - 128) / 2).astype(np.uint8)
    matched = teacher_swings.colour_matched(faded, reference).reshape(-1, 3).astype(np.float64)
    ref = reference.reshape(-1, 3).astype(np.float64)
    assert np.allclose(matched.mean(0), ref.mean(0), atol=0.6) and np.allclose(matched.std(0), ref.std(0), rtol=0.02)


def test_a_tiny_run_records_every_sampler_and_renders(tmp_path: Path, data_root: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # few samples at few Heun steps: the bookkeeping is under test, not the teacher's quality
    monkeypatch.setattr(teacher_swings, "N_EVAL", {"digits": 64})
    monkeypatch.setattr(teacher_swings, "TEACHER_STEPS", 3)
    monkeypatch.setattr(teacher_swings, "FEW_STEPS", 2)
    out = tmp_path / "swings.json"
    assert teacher_swings.main(["--data", "digits", "--steps", "30", "--every", "10", "--start", "20",
                                "--windows", "20", "--seeds", "0", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    points = res["seeds"]["0"]["diffusion"]["points"]
    assert [p["step"] for p in points] == [20, 30]
    assert set(res["samplers"]) == {"ema", "ema_18", "online", "mean_20"}
    for p in points:
        for name in res["samplers"]:
            assert p[name]["fd"] > 0 and len(p[name]["colour_shift"]) == 1  # digits: one channel
    page = teacher_swings_section(res)
    assert "what moves the digits teacher's distance" in page and "| 0 | 30 | mean_20 |" in page


def test_a_window_shorter_than_the_snapshot_spacing_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        teacher_swings.main(["--windows", "5"])
    assert "at least" in capsys.readouterr().err
