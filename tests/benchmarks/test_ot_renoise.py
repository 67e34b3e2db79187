"""The OT re-noising diagnostic (cmtutor.benchmarks.ot_renoise): its measure, and a tiny end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from cmtutor.benchmarks import ot_renoise


def test_matched_noise_lies_closer_to_the_data_and_a_perfect_denoiser_has_no_error() -> None:
    x = torch.rand(128, 1, 4, 4) * 2 - 1
    perfect = ot_renoise.denoising_errors(lambda xs, s: x, x, 0.8, 64, seed=0)  # knows the clean images
    assert perfect["independent"] == 0.0 and perfect["ot_matched"] == 0.0
    assert perfect["ot_matched_noise_to_data"] < perfect["independent_noise_to_data"]
    identity = ot_renoise.denoising_errors(lambda xs, s: xs, x, 0.8, 64, seed=0)  # returns its noisy input
    assert abs(identity["independent"] - 0.64) < 0.1  # σ² E‖z‖²/D


def test_a_tiny_run_writes_its_results(tmp_path: Path, data_root: Path) -> None:
    out = tmp_path / "ot.json"
    assert ot_renoise.main(["--steps", "2", "--seeds", "0", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res["seeds"]["0"]) == {"ot", "ict"} and "machine" in res and res["command"].endswith(str(out))
    assert {"independent", "ot_matched", "tau", "sigma_max"} <= set(res["seeds"]["0"]["ot"])
