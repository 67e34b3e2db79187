"""The teacher-swings study (cmtutor.benchmarks.teacher_swings): its colour measures in closed form, and a tiny run
end to end with its page section."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cmtutor.benchmarks import teacher_swings
from cmtutor.benchmarks.image_quality import config
from cmtutor.benchmarks.report import teacher_swings_section
from cmtutor.training.run import build_run


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


def test_balance_weights_restore_the_reference_mix_in_closed_form() -> None:
    rng = np.random.default_rng(0)
    reference_classes = np.repeat([0, 1, 2], [50, 30, 20])
    feats = rng.normal(size=(100, 3)) + reference_classes[:, None] * 5.0  # classes far apart in feature space
    # samples: the reference with class 0 drawn three times as often and class 2 never
    keep = np.concatenate([np.repeat(np.arange(50), 3), np.arange(50, 80)])
    weights, missing = teacher_swings.balance_weights(reference_classes[keep], reference_classes)
    assert missing == pytest.approx(0.2) and weights.sum() == pytest.approx(1.0)
    shares = np.bincount(reference_classes[keep], weights=weights, minlength=3)
    assert np.allclose(shares, [50 / 80, 30 / 80, 0])  # the reference's mix of the classes the samples hold
    # uniform weights are the unweighted statistics; balanced ones are the reference's (classes 0 and 1)
    mu, cov = teacher_swings.weighted_stats(feats, np.full(100, 0.01))
    assert np.allclose(mu, feats.mean(0)) and np.allclose(cov, np.cov(feats, rowvar=False))
    mu_b, _ = teacher_swings.weighted_stats(feats[keep], weights)
    assert np.allclose(mu_b, feats[:80].mean(0)) and not np.allclose(feats[keep].mean(0), feats[:80].mean(0), atol=0.5)


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
            assert 0 <= p[name]["region_tv"] <= 1 and 0 <= p[name]["missing_mass"] < 1 and p[name]["fd_balanced"] > 0
    assert res["seeds"]["0"]["diffusion"]["teacher_hp"] == {"p_mean": -1.2, "p_std": 1.2}  # the digits keep EDM's
    page = teacher_swings_section(res)
    assert "what moves the digits teacher's distance" in page and "| 0 | 30 | mean_20 |" in page
    assert "N(P_mean, P_std²): P_mean -1.2, P_std 1.2." in page


def test_a_window_shorter_than_the_snapshot_spacing_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        teacher_swings.main(["--windows", "5"])
    assert "at least" in capsys.readouterr().err


def test_the_split_hybrids_start_at_the_second_point_and_render(tmp_path: Path, data_root: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(teacher_swings, "N_EVAL", {"digits": 64})
    monkeypatch.setattr(teacher_swings, "TEACHER_STEPS", 3)
    out = tmp_path / "split.json"
    assert teacher_swings.main(["--data", "digits", "--steps", "30", "--every", "10", "--start", "10",
                                "--samplers", "ema", "split", "--split-sigma", "0.5", "--seeds", "0",
                                "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert list(res["samplers"]) == ["ema", "high_prev", "low_prev"] and "σ ≥ 0.5" in res["samplers"]["high_prev"]
    points = res["seeds"]["0"]["diffusion"]["points"]
    assert [sorted(k for k in p if isinstance(p[k], dict)) for p in points] == [
        ["ema"], ["ema", "high_prev", "low_prev"], ["ema", "high_prev", "low_prev"]]
    page = teacher_swings_section(res, "which noise levels move the {data} teacher's distance")
    assert "which noise levels move the digits teacher's distance" in page and "| 0 | 20 | high_prev |" in page
    assert "| 0 | 10 | high_prev |" not in page


def test_a_split_of_one_network_is_that_network(data_root: Path) -> None:
    run = build_run(config("diffusion", "digits", 2, 8, 0))
    ema = run.nets.ema.module
    same = teacher_swings.split(run, ema, ema, 1.0).sample_images(4, steps=3, seed=0)
    assert np.array_equal(same, run.sampler().sample_images(4, steps=3, seed=0))
