"""The teacher-budget curve (cmtutor.benchmarks.teacher_budget) end to end at a tiny budget, and its page section."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

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
    assert all(p["fd_online"] > 0 for p in row["curve"]) and row["fd_online_at_end"] == row["curve"][-1]["fd_online"]
    assert row["curve"][0]["train_cpu_s"] <= row["curve"][1]["train_cpu_s"]
    assert teacher_budget.main(["--data", "digits", "--steps", "4", "--every", "2", "--seeds", "1", "--out", str(out),
                                "--set", "lr_decay=cosine"]) == 0  # a variant: a row of its own beside the default
    res = json.loads(out.read_text())
    assert sorted(res["seeds"]["1"]) == ["diffusion", "diffusion, lr_decay=cosine"]
    assert res["seeds"]["1"]["diffusion, lr_decay=cosine"]["changes"] == {"lr_decay": "cosine"}
    page = teacher_budget_section(res)
    assert "how long the digits teacher must train" in page and "| 4 |" in page
    lines = [line for line in page.splitlines() if line.startswith("| diffusion")]
    assert [line.split(" | ")[:3] for line in lines] == [  # the default first, EMA then online per seed
        ["| diffusion", "0", "EMA"], ["| diffusion", "0", "online"], ["| diffusion", "1", "EMA"],
        ["| diffusion", "1", "online"], ["| diffusion, lr_decay=cosine", "1", "EMA"],
        ["| diffusion, lr_decay=cosine", "1", "online"]]
    assert teacher_budget.main(["--data", "digits", "--steps", "4", "--every", "4", "--seeds", "0", "--out", str(out),
                                "--batch-size", "32"]) == 0  # another batch and another --every: same file
    res = json.loads(out.read_text())
    assert res["seeds"]["0"]["diffusion, batch 32"]["batch_size"] == 32 and res["budget"] == {"steps": 4, "threads": 1}
    assert [p["step"] for p in res["seeds"]["0"]["diffusion, batch 32"]["curve"]] == [4]
    assert "| diffusion, batch 32 | 0 | EMA | – |" in teacher_budget_section(res)


@pytest.mark.parametrize("bad, says", [("bogus=1", "unknown setting"), ("lr_decay=linear", "lr_decay must be one of"),
                                       ("lr_decay", "KEY=VALUE")])
def test_a_bad_setting_is_refused_before_training(bad: str, says: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        teacher_budget.main(["--data", "digits", "--steps", "4", "--set", bad, "--out", str(tmp_path / "x.json")])
    assert says in capsys.readouterr().err and not (tmp_path / "x.json").exists()


def test_a_variant_is_named_after_its_changes() -> None:
    assert teacher_budget.row_name({}) == "diffusion"
    assert teacher_budget.row_name({"lr": 0.001}, 128) == "diffusion, lr=0.001, batch 128"
    assert teacher_budget.row_name({"hp": {"p_mean": -0.4, "p_std": 1.0}, "lr_decay": "cosine"}) == \
        "diffusion, hp.p_mean=-0.4, hp.p_std=1.0, lr_decay=cosine"


def test_a_row_keeps_its_name_when_the_shipped_teacher_changes() -> None:
    """Rows are named against EDM's noise levels, not the set's default: the photos teacher (P_mean −0.4 since
    stop 31) writes the rows its --set run wrote before, and EDM's setting reads as plain "diffusion"."""
    name = teacher_budget.row_name
    assert name(teacher_budget.variant_changes("photos", {})) == "diffusion, hp.p_mean=-0.4"
    assert name(teacher_budget.variant_changes("photos", {"hp": {"p_mean": -0.4}})) == "diffusion, hp.p_mean=-0.4"
    assert name(teacher_budget.variant_changes("photos", {"hp": {"p_mean": -1.2}})) == "diffusion"
    assert name(teacher_budget.variant_changes("digits", {"lr_decay": "cosine"})) == "diffusion, lr_decay=cosine"
    assert name(teacher_budget.variant_changes("digits", {"hp": {"p_mean": -0.4}})) == "diffusion, hp.p_mean=-0.4"


def test_the_recorded_command_runs_as_written_in_a_shell(tmp_path: Path, data_root: Path, monkeypatch) -> None:
    monkeypatch.setattr(teacher_budget, "N_EVAL", {"digits": 64})
    monkeypatch.setattr(teacher_budget, "TEACHER_STEPS", 2)
    out = tmp_path / "budget.json"
    assert teacher_budget.main(["--data", "digits", "--steps", "2", "--every", "2", "--out", str(out),
                                "--set", 'hp={"p_mean": -0.4}']) == 0
    row = json.loads(out.read_text())["seeds"]["0"]["diffusion, hp.p_mean=-0.4"]
    assert shlex.split(row["measured"]["command"])[-2:] == ["--set", 'hp={"p_mean": -0.4}']  # quoted, not split
