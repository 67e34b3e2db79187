"""The GPU check runs end to end on a CPU with a tiny network, and a failing method does not stop it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cmtutor.benchmarks import common, gpu_check, report, throughput

TINY = ["--net", "tiny", "--steps", "5", "--batch", "4", "--samples", "12", "--compile-steps", "2",
        "--budget-s", "300"]


@pytest.fixture(autouse=True)
def _no_cifar10_search(monkeypatch: pytest.MonkeyPatch, data_root: Path) -> None:
    monkeypatch.setattr(common, "SEARCH_ROOTS", ())  # random pixels, whatever this machine holds


def test_every_method_trains_and_the_ict_run_samples(tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    assert gpu_check.main([*TINY, "--out", str(out), "--no-compile"]) == 0
    r = json.loads(out.read_text())
    assert r["failed"] == [] and "random uint8" in r["data"] and r["net"] == "tiny"
    for method in ("diffusion", "cd", "ct", "ict", "gc", "ot", "tcm", "direct"):
        t = r[f"train/{method}"]
        assert t["steps"] == 5 and t["loss_finite"] and t["images_per_s"] > 0 and t["mfu"] > 0, (method, t)
        assert r[f"flops/{method}"]["per_image"] > 0
    assert r["flops/cd"]["per_image"] > r["flops/ict"]["per_image"]  # CD pays for its teacher's ODE step
    s = r["sample"]
    assert s["images"] == 12 and s["seconds_for_50k"] > 0 and (tmp_path / s["grid"]).stat().st_size > 0
    assert not any(k.startswith("compile/") for k in r)
    page = report.gpu_check_section(r)  # the results page renders it
    assert "| ict | eager | 5 |" in page and "One-step sampling: 12 images" in page


def test_a_failing_method_is_recorded_and_the_rest_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build = throughput._build

    def broken(method: str, *args: object, **kw: object) -> object:
        if method == "gc":
            raise RuntimeError("CUDA out of memory (simulated)")
        return build(method, *args, **kw)

    monkeypatch.setattr(gpu_check, "_build", broken)
    out = tmp_path / "check.json"
    assert gpu_check.main([*TINY, "--out", str(out), "--methods", "ict", "gc", "ot", "--no-compile"]) == 1
    r = json.loads(out.read_text())
    assert r["failed"] == ["train/gc"] and "out of memory" in r["train/gc"]["error"]
    assert r["train/ict"]["steps"] == 5 and r["train/ot"]["steps"] == 5 and r["sample"]["images"] == 12


def test_the_budget_skips_what_it_cannot_fit(tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    gpu_check.main([*TINY[:-2], "--budget-s", "0.000001", "--out", str(out), "--methods", "ict", "--compile"])
    r = json.loads(out.read_text())
    assert r["train/ict"] == {"skipped": "time budget"} and r["compile/ict"]["skipped"].startswith("time budget")


def test_the_loss_fell_rule() -> None:
    assert gpu_check.loss_fell([5, 5, 4, 3, 2, 1, 1, 1, 1, 0.5]) and not gpu_check.loss_fell([1, 1, 1, 2, 3])
