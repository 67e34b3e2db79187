"""The OT re-noising diagnostic (cmtutor.benchmarks.ot_renoise): its measures, and a tiny end-to-end run."""

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


def test_the_tau_step_fd_of_a_perfect_denoiser_is_zero_and_of_the_identity_is_not(data_root: Path) -> None:
    x = torch.rand(100, 1, 8, 8) * 2 - 1
    perfect = ot_renoise.tau_step_fds(lambda xs, s: x, x, 0.8, 0.002, 50, seed=0)
    assert perfect["independent"] < 1e-6 and perfect["ot_matched"] < 1e-6
    noisy = ot_renoise.tau_step_fds(lambda xs, s: xs, x, 0.8, 0.002, 50, seed=0)
    assert noisy["independent"] > 1.0 and noisy["ot_matched"] > 1.0


def test_a_tiny_run_writes_its_results(tmp_path: Path, data_root: Path) -> None:
    out = tmp_path / "ot.json"
    assert ot_renoise.main(["--steps", "2", "--seeds", "0", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res["seeds"]["0"]) == {"ot", "ict"} and "machine" in res and res["command"].endswith(str(out))
    ot = res["seeds"]["0"]["ot"]
    assert {"independent", "ot_matched", "tau", "sigma_max", "fd_tau_step_on_real", "fd_1step", "fd_2step_independent",
            "fd_2step_ot_matched", "fd_2step_on_ict_samples"} <= set(ot)
    assert "fd_2step_on_ot_samples" in res["seeds"]["0"]["ict"]
