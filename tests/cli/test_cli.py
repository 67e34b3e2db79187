"""The command line end to end: train → sample → evaluate, resume after kill -9, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cmtutor.core.metrics import EVAL_REPEATS
from conftest import PYTHON

TINY = ["--set", 'net={"hidden": 32, "depth": 2}', "--batch-size", "64", "--quiet"]


def cli(args: list[str], env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([PYTHON, "-m", "cmtutor", *args], env=env, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"cmtutor {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("teacher") / "diffusion"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cli(["train", "--method", "diffusion", "--data", "moons", "--steps", "60", "--checkpoint-every", "30",
         "--out", str(out), *TINY], env)
    return out


def test_train_writes_config_metrics_checkpoint(teacher_dir: Path) -> None:
    cfg = json.loads((teacher_dir / "config.json").read_text())
    assert cfg["method"] == "diffusion" and cfg["steps"] == 60 and cfg["net"]["hidden"] == 32
    lines = [json.loads(x) for x in (teacher_dir / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 60 and all(np.isfinite(x["loss"]) for x in lines)
    ckpt = torch.load(teacher_dir / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 60 and ckpt["config"]["method"] == "diffusion"
    assert {"model", "ema", "optimizer", "scheduler", "rng", "standardizer"} <= set(ckpt)


def test_cd_sample_evaluate_end_to_end(teacher_dir: Path, tmp_path: Path, cli_env: dict[str, str]) -> None:
    cd = tmp_path / "cd"
    cli(["train", "--method", "cd", "--data", "moons", "--teacher", str(teacher_dir / "checkpoint.pt"),
         "--steps", "20", "--out", str(cd), *TINY], cli_env)
    out = tmp_path / "s.npy"
    res = cli(["sample", "--ckpt", str(cd / "checkpoint.pt"), "--n", "300", "--steps", "2", "--out", str(out)],
              cli_env)
    assert "300 samples" in res.stdout
    x = np.load(out)
    assert x.shape == (300, 2) and x.dtype == np.float32 and np.isfinite(x).all()
    meta = json.loads(Path(str(out) + ".json").read_text())
    assert meta["steps"] == 2 and meta["method"] == "cd"
    ev = cli(["evaluate", "--samples", str(out), "--data", "moons", "--teacher", str(teacher_dir), "--json"],
             cli_env)
    result = json.loads(ev.stdout)
    for key in ("w2", "sliced_w2", "mmd", "w2_floor", "w2_ratio", "w2_ratio_se", "ode_error"):
        assert np.isfinite(result[key]), key
    assert result["n"] == 300  # every sample is used (fewer than evaluate's 1000-point cap)
    assert result["repeats"] == EVAL_REPEATS and result["w2_ratio_se"] > 0
    text = cli(["evaluate", "--samples", str(out), "--data", "moons", "--repeats", "2"], cli_env).stdout
    assert "w2_ratio" in text and "ode_error" not in text


def test_sampling_is_deterministic(teacher_dir: Path, tmp_path: Path, cli_env: dict[str, str]) -> None:
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    for f in (a, b):
        cli(["sample", "--ckpt", str(teacher_dir), "--n", "50", "--steps", "5", "--seed", "3", "--out", str(f)],
            cli_env)
    assert np.array_equal(np.load(a), np.load(b))


def _weights(path: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(path, weights_only=False)
    return {**{f"model.{k}": v for k, v in ckpt["model"].items()}, **{f"ema.{k}": v for k, v in ckpt["ema"].items()}}


def test_resume_after_kill_9_matches_uninterrupted(tmp_path: Path, cli_env: dict[str, str]) -> None:
    args = ["train", "--method", "ict", "--data", "moons", "--steps", "600", "--checkpoint-every", "50",
            "--seed", "7", *TINY]
    full = tmp_path / "full"
    cli([*args, "--out", str(full)], cli_env)

    cut = tmp_path / "cut"
    proc = subprocess.Popen([PYTHON, "-m", "cmtutor", *args, "--out", str(cut)], env=cli_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        if (cut / "checkpoint.pt").exists():
            step = torch.load(cut / "checkpoint.pt", weights_only=False)["step"]
            if step >= 100:
                break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(cut / "checkpoint.pt", weights_only=False)["step"]
    assert 100 <= killed_at < 600, f"the run was not interrupted mid-way (step {killed_at})"

    cli([*args, "--out", str(cut), "--resume"], cli_env)
    a, b = _weights(full / "checkpoint.pt"), _weights(cut / "checkpoint.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    steps = [json.loads(x)["step"] for x in (cut / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 600  # no duplicated log lines after the resume


@pytest.mark.parametrize("case", ["missing_file", "bad_shape", "bad_dtype", "unknown_method", "wrong_teacher",
                                  "no_teacher", "not_writable", "unknown_data", "existing_run", "corrupt_ckpt",
                                  "dim_mismatch", "unknown_hp", "hp_wrong_type", "hp_not_allowed"])
def test_bad_input_exits_2_with_one_line(case: str, teacher_dir: Path, tmp_path: Path,
                                         cli_env: dict[str, str]) -> None:
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "checkpoint.pt").write_bytes(b"precious")
    (tmp_path / "afile").write_text("x")
    np.save(tmp_path / "shape.npy", np.zeros((500,), np.float32))
    np.save(tmp_path / "int.npy", np.zeros((500, 2), np.int32))
    np.save(tmp_path / "three.npy", np.zeros((500, 3), np.float32))
    (tmp_path / "corrupt.pt").write_bytes(b"\x00garbage")
    out = str(tmp_path / "out")
    train = ["train", "--steps", "5", *TINY]
    args = {
        "missing_file": [*train, "--method", "ict", "--data", str(tmp_path / "nope.npy"), "--out", out],
        "bad_shape": [*train, "--method", "ict", "--data", str(tmp_path / "shape.npy"), "--out", out],
        "bad_dtype": [*train, "--method", "ict", "--data", str(tmp_path / "int.npy"), "--out", out],
        "unknown_method": [*train, "--method", "gan", "--data", "moons", "--out", out],
        "wrong_teacher": [*train, "--method", "cd", "--data", "moons", "--teacher", str(existing), "--out", out],
        "no_teacher": [*train, "--method", "cd", "--data", "moons", "--out", out],
        "not_writable": [*train, "--method", "ict", "--data", "moons", "--out", str(tmp_path / "afile" / "sub")],
        "unknown_data": [*train, "--method", "ict", "--data", "spirals", "--out", out],
        "existing_run": [*train, "--method", "ict", "--data", "moons", "--out", str(existing)],
        "corrupt_ckpt": ["sample", "--ckpt", str(tmp_path / "corrupt.pt"), "--n", "5", "--out", out + ".npy"],
        "dim_mismatch": [*train, "--method", "cd", "--data", str(tmp_path / "three.npy"), "--teacher",
                         str(teacher_dir), "--out", out],
        "unknown_hp": [*train, "--method", "ict", "--data", "moons", "--hp", "num_scale=10", "--out", out],
        "hp_wrong_type": [*train, "--method", "ict", "--data", "moons", "--hp", "s1=many", "--out", out],
        "hp_not_allowed": [*train, "--method", "ict", "--data", "moons", "--hp", "distance=l1", "--out", out],
    }[case]
    proc = cli(args, cli_env, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not Path(out).exists()  # nothing was created
    assert (existing / "checkpoint.pt").read_bytes() == b"precious"  # nothing was overwritten


def test_checkpoint_of_another_method_for_tcm_like_teacher(teacher_dir: Path, tmp_path: Path,
                                                           cli_env: dict[str, str]) -> None:
    """A diffusion checkpoint given to `sample` works; a CM checkpoint as --teacher for cd is refused."""
    cm = tmp_path / "cm"
    cli(["train", "--method", "ict", "--data", "moons", "--steps", "5", "--out", str(cm), *TINY], cli_env)
    proc = cli(["train", "--method", "cd", "--data", "moons", "--teacher", str(cm), "--steps", "5",
                "--out", str(tmp_path / "x"), *TINY], cli_env, check=False)
    assert proc.returncode == 2 and "trained with method 'ict'" in proc.stderr


def test_evaluate_bad_input(tmp_path: Path, cli_env: dict[str, str]) -> None:
    np.save(tmp_path / "s.npy", np.zeros((500, 3), np.float32))
    proc = cli(["evaluate", "--samples", str(tmp_path / "s.npy"), "--data", "moons"], cli_env, check=False)
    assert proc.returncode == 2 and "3-dimensional" in proc.stderr
    np.save(tmp_path / "t.npy", np.random.default_rng(0).normal(size=(500, 2)).astype(np.float32))
    proc = cli(["evaluate", "--samples", str(tmp_path / "t.npy"), "--data", "moons", "--teacher",
                str(tmp_path / "missing")], cli_env, check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("error:")
    proc = cli(["evaluate", "--samples", str(tmp_path / "t.npy"), "--data", "moons", "--repeats", "0"], cli_env,
               check=False)
    assert proc.returncode == 2 and "--repeats" in proc.stderr and len(proc.stderr.splitlines()) == 1


@pytest.mark.parametrize("hp", ["pairs=sideways", "no_such_knob=1"])
def test_bad_hyperparameters_exit_2(hp: str, tmp_path: Path, cli_env: dict[str, str]) -> None:
    out = tmp_path / "out"
    proc = cli(["train", "--method", "ict", "--data", "moons", "--hp", hp, "--out", str(out), *TINY], cli_env,
               check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and len(proc.stderr.splitlines()) == 1
    assert not out.exists()
