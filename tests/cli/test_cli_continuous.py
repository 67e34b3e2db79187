"""sCM (sCT and sCD) and MeanFlow on vectors through the command line: train, sample 1 and 2 steps, evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cmtutor.cli import main

TINY = ["--set", 'net={"hidden": 16, "depth": 1}', "--batch-size", "32", "--quiet", "--data", "moons"]


@pytest.mark.parametrize("variant", ["sct", "scd", "meanflow"])
def test_train_sample_evaluate(variant: str, tmp_path: Path, data_root: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--method", "meanflow"] if variant == "meanflow" else ["--method", "scm"]
    if variant == "scd":
        assert main(["train", "--method", "diffusion", "--steps", "4", "--out", str(tmp_path / "t"), *TINY]) == 0
        args += ["--teacher", str(tmp_path / "t"), "--hp", "velocity=teacher", "--hp", "init_from_teacher=true"]
    run = tmp_path / "run"
    assert main(["train", *args, "--steps", "6", "--out", str(run), *TINY]) == 0
    logs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert logs[-1]["step"] == 6 and all(np.isfinite(x["loss"]) for x in logs)
    assert ("r_ne_t" if variant == "meanflow" else "tangent_rms") in logs[-1]
    for k in (1, 2):
        out = tmp_path / f"s{k}.npy"
        assert main(["sample", "--ckpt", str(run), "--n", "100", "--steps", str(k), "--out", str(out)]) == 0
        x = np.load(out)
        assert x.shape == (100, 2) and np.isfinite(x).all()
        capsys.readouterr()
        assert main(["evaluate", "--samples", str(out), "--data", "moons", "--repeats", "2", "--json"]) == 0
        assert np.isfinite(json.loads(capsys.readouterr().out)["w2_ratio"])


def test_scd_without_a_teacher_is_one_clear_error(tmp_path: Path, data_root: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["train", "--method", "scm", "--hp", "velocity=teacher", "--steps", "2",
                 "--out", str(tmp_path / "r"), *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "--teacher" in err[0]
