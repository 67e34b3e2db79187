"""The teacher-budget curve (cmtutor.benchmarks.teacher_budget) end to end at a tiny budget, and its page section."""

from __future__ import annotations

import json
from pathlib import Path

from cmtutor.benchmarks import teacher_budget
from cmtutor.benchmarks.report import teacher_budget_section


def test_a_tiny_curve_merges_seeds_and_renders(tmp_path: Path, data_root: Path, monkeypatch) -> None:
    # few samples at few Heun steps: the curve's bookkeeping is under test, not the teacher's quality
    monkeypatch.setattr(teacher_budget, "N_EVAL", {"digits": 128})
    monkeypatch.setattr(teacher_budget, "TEACHER_STEPS", 4)
    out = tmp_path / "budget.json"
    for seed in ("0", "1"):  # separate processes in practice: merged, not overwritten
        assert teacher_budget.main(["--data", "digits", "--steps", "4", "--every", "2", "--seeds", seed,
                                    "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert sorted(res["seeds"]) == ["0", "1"]
    row = res["seeds"]["1"]["diffusion"]
    assert [p["step"] for p in row["curve"]] == [2, 4] and row["fd_online_at_end"] > 0
    assert row["curve"][0]["train_cpu_s"] <= row["curve"][1]["train_cpu_s"]
    page = teacher_budget_section(res)
    assert "how long the digits teacher must train" in page and "| 4 |" in page
