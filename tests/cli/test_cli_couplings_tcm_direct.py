"""The command line for gc, ot, tcm and direct: train, sample, teachers of the right kind (in-process, tiny)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cmtutor.cli import main
from cmtutor.core.schedules import ict_num_scales

TINY = ["--set", 'net={"hidden": 16, "depth": 1}', "--batch-size", "32", "--quiet", "--data", "moons"]


@pytest.fixture
def env(tmp_path: Path, data_root: Path) -> Path:
    """The test's folder, with the data root inside it (the shared ``data_root`` fixture)."""
    return tmp_path


def _train(method: str, out: Path, steps: int = 4, *extra: str) -> None:
    assert main(["train", "--method", method, "--steps", str(steps), "--out", str(out), *TINY, *extra]) == 0


def test_gc_and_ot_train_with_method_hyperparameters(env: Path) -> None:
    _train("gc", env / "gc", 4, "--hp", "mu=0.25", "--hp", "gc_model=online")
    cfg = json.loads((env / "gc" / "config.json").read_text())
    assert cfg["hp"]["mu"] == 0.25 and cfg["hp"]["gc_model"] == "online" and cfg["hp"]["pairs"] == "lognormal"
    _train("ot", env / "ot", 4)
    assert torch.load(env / "ot" / "checkpoint.pt", weights_only=True)["config"]["method"] == "ot"


def test_ot_samples_re_noise_with_its_pairing_unless_told_otherwise(env: Path) -> None:
    _train("ot", env / "ot", 4)
    samples = {}
    for choice in (None, "independent", "ot"):
        out = env / f"{choice}.npy"
        extra = [] if choice is None else ["--renoise", choice]
        assert main(["sample", "--ckpt", str(env / "ot"), "--n", "64", "--steps", "2", "--out", str(out), *extra]) == 0
        assert json.loads(Path(str(out) + ".json").read_text())["renoise"] == (choice or "ot")
        samples[choice] = np.load(out)
    assert np.array_equal(samples[None], samples["ot"]) and not np.array_equal(samples["ot"], samples["independent"])
    with pytest.raises(SystemExit):
        main(["sample", "--ckpt", str(env / "ot"), "--n", "4", "--out", str(env / "x.npy"), "--renoise", "matched"])


def test_tcm_stage_two_from_a_stage_one_checkpoint(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _train("ict", env / "stage1", 6)
    _train("tcm", env / "tcm", 4, "--teacher", str(env / "stage1"), "--hp", "t_prime=2.0")
    ckpt = torch.load(env / "tcm" / "checkpoint.pt", weights_only=True)
    assert ckpt["teacher"]["config"]["method"] == "ict"  # the frozen stage-1 model travels with the checkpoint
    assert ckpt["config"]["hp"]["t_prime"] == 2.0
    assert ckpt["config"]["hp"]["num_scales"] == ict_num_scales(6, 6, 10, 1280)  # Δt continues from stage 1
    out = env / "s.npy"
    assert main(["sample", "--ckpt", str(env / "tcm"), "--n", "64", "--steps", "2", "--out", str(out)]) == 0
    assert np.load(out).shape == (64, 2) and np.isfinite(np.load(out)).all()
    # a diffusion model is not a consistency model: refused as TCM's stage 1, with one error line
    _train("diffusion", env / "diff", 4)
    capsys.readouterr()
    assert main(["train", "--method", "tcm", "--steps", "2", "--teacher", str(env / "diff"), "--out",
                 str(env / "bad"), *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "diffusion" in err[0]
    assert not (env / "bad").exists()
    assert main(["train", "--method", "tcm", "--steps", "2", "--out", str(env / "bad2"), *TINY]) == 2  # no teacher


def test_direct_cm_from_a_diffusion_teacher(env: Path) -> None:
    _train("diffusion", env / "teacher", 6)
    _train("direct", env / "direct", 3, "--teacher", str(env / "teacher"), "--hp", "ode_steps=4")
    out = env / "d.npy"
    assert main(["sample", "--ckpt", str(env / "direct"), "--n", "200", "--out", str(out)]) == 0
    assert main(["evaluate", "--samples", str(out), "--data", "moons", "--teacher", str(env / "teacher"),
                 "--json", "--n", "100"]) == 0
