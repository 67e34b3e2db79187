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


def _default_threads(env: dict[str, str]) -> dict[str, str]:
    """The environment a user has: the thread settings the test runner chose for its workers removed."""
    return {k: v for k, v in env.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}


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
    ckpt = torch.load(teacher_dir / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 60 and ckpt["config"]["method"] == "diffusion"
    assert {"model", "ema", "optimizer", "scheduler", "rng", "standardizer", "threads"} <= set(ckpt)


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
    ckpt = torch.load(path, weights_only=True)
    return {**{f"model.{k}": v for k, v in ckpt["model"].items()}, **{f"ema.{k}": v for k, v in ckpt["ema"].items()}}


def _assert_same_weights(full: Path, cut: Path, after: str) -> None:
    """The online and EMA weights of two runs' checkpoints are bitwise equal."""
    a, b = _weights(full / "checkpoint.pt"), _weights(cut / "checkpoint.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after {after}"


def test_resume_after_kill_9_matches_uninterrupted(tmp_path: Path, cli_env: dict[str, str]) -> None:
    cli_env = _default_threads(cli_env)  # the threads a user's machine gives torch
    args = ["train", "--method", "ict", "--data", "moons", "--steps", "600", "--checkpoint-every", "50",
            "--seed", "7", *TINY]
    full = tmp_path / "full"
    cli([*args, "--out", str(full)], cli_env)
    threads = torch.load(full / "checkpoint.pt", weights_only=True)["threads"]
    assert threads >= 1  # the count the idle-core policy chose: the weights depend on it in their last bits

    cut = tmp_path / "cut"  # started on the same count (the load may differ now); the resume below is not pinned
    proc = subprocess.Popen([PYTHON, "-m", "cmtutor", *args, "--out", str(cut)],
                            env={**cli_env, "CMTUTOR_THREADS": str(threads)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        if (cut / "checkpoint.pt").exists():
            step = torch.load(cut / "checkpoint.pt", weights_only=True)["step"]
            if step >= 100:
                break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(cut / "checkpoint.pt", weights_only=True)["step"]
    assert 100 <= killed_at < 600, f"the run was not interrupted mid-way (step {killed_at})"

    cli([*args, "--out", str(cut), "--resume"], cli_env)
    _assert_same_weights(full, cut, "kill -9 and resume")
    steps = [json.loads(x)["step"] for x in (cut / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 600  # no duplicated log lines after the resume


@pytest.mark.parametrize("case", ["missing_file", "bad_shape", "bad_dtype", "unknown_method", "wrong_teacher",
                                  "no_teacher", "not_writable", "unknown_data", "existing_run", "corrupt_ckpt",
                                  "dim_mismatch", "unknown_hp", "hp_wrong_type", "hp_not_allowed", "foreign_ckpt",
                                  "truncated_ckpt", "resume_changed_hp", "resume_changed_steps", "unwritable_out",
                                  "npz_float", "npz_no_channels", "nan_vectors", "nan_images", "n_zero", "n_huge",
                                  "data_is_folder", "samples_is_folder", "ckpt_folder_empty"])
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
    torch.save({"weight": torch.zeros(2)}, tmp_path / "foreign.pt")  # a plain state dict, not a cmtutor run
    blob = (teacher_dir / "checkpoint.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(blob[: len(blob) // 2])
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "checkpoint.pt").write_bytes(blob)
    np.savez(tmp_path / "float.npz", images=np.random.default_rng(0).random((40, 16, 16, 3), dtype=np.float32))
    np.savez(tmp_path / "nan.npz", images=np.full((40, 16, 16, 3), np.nan, np.float32))
    np.savez(tmp_path / "hw.npz", images=np.zeros((40, 16, 16), np.uint8))
    nan = np.random.default_rng(0).standard_normal((500, 2)).astype(np.float32)
    nan[3, 1] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    (tmp_path / "folder.npy").mkdir()
    (tmp_path / "empty").mkdir()
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
        "foreign_ckpt": ["sample", "--ckpt", str(tmp_path / "foreign.pt"), "--n", "5", "--out", out + ".npy"],
        "truncated_ckpt": ["sample", "--ckpt", str(tmp_path / "truncated.pt"), "--n", "5", "--out", out + ".npy"],
        "resume_changed_hp": ["train", "--method", "diffusion", "--data", "moons", "--hp", "p_mean=0.5", "--out",
                              str(copy), "--resume", "--quiet"],
        "resume_changed_steps": ["train", "--method", "diffusion", "--data", "moons", "--steps", "90", "--out",
                                 str(copy), "--resume", "--quiet"],
        "unwritable_out": [*train, "--method", "ict", "--data", "moons", "--out", "/proc/cmtutor-test/out"],
        "npz_float": [*train, "--method", "ict", "--data", str(tmp_path / "float.npz"), "--out", out],
        "npz_no_channels": [*train, "--method", "ict", "--data", str(tmp_path / "hw.npz"), "--out", out],
        "nan_vectors": [*train, "--method", "ict", "--data", str(tmp_path / "nan.npy"), "--out", out],
        "nan_images": [*train, "--method", "ict", "--data", str(tmp_path / "nan.npz"), "--out", out],
        "n_zero": ["sample", "--ckpt", str(teacher_dir), "--n", "0", "--out", out + ".npy"],
        "n_huge": ["sample", "--ckpt", str(teacher_dir), "--n", str(10**13), "--out", out + ".npy"],
        "data_is_folder": [*train, "--method", "ict", "--data", str(tmp_path / "folder.npy"), "--out", out],
        "samples_is_folder": ["evaluate", "--samples", str(tmp_path / "folder.npy"), "--data", "moons"],
        "ckpt_folder_empty": ["sample", "--ckpt", str(tmp_path / "empty"), "--n", "5", "--out", out + ".npy"],
    }[case]
    proc = cli(args, cli_env, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert (existing / "checkpoint.pt").read_bytes() == b"precious" and (copy / "checkpoint.pt").read_bytes() == blob
    assert not Path(out).exists() and not Path(out + ".npy").exists()  # nothing written, nothing overwritten
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


# --- trustworthy runs: checkpoints are data, signals, one train per folder, divergence ------------------------

class _Exploit:
    """A pickle that runs a shell command when unpickled: what a crafted checkpoint would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def test_a_crafted_checkpoint_runs_nothing(teacher_dir: Path, tmp_path: Path, cli_env: dict[str, str]) -> None:
    from cmtutor.checkpoint import FORMAT

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "config": _Exploit(marker)}, evil)
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    torch.save({"format": FORMAT, "step": _Exploit(marker)}, resumed / "checkpoint.pt")
    samples = tmp_path / "s.npy"
    cli(["sample", "--ckpt", str(teacher_dir), "--n", "200", "--steps", "2", "--out", str(samples)], cli_env)
    train = ["train", "--steps", "5", *TINY, "--data", "moons", "--out", str(tmp_path / "out")]
    for args in (["sample", "--ckpt", str(evil), "--n", "5", "--out", str(tmp_path / "x.npy")],
                 [*train, "--method", "cd", "--teacher", str(evil)],
                 [*train, "--method", "tcm", "--teacher", str(evil)],
                 ["evaluate", "--samples", str(samples), "--data", "moons", "--teacher", str(evil)],
                 ["train", "--method", "ict", "--data", "moons", "--steps", "5", *TINY, "--out", str(resumed),
                  "--resume"]):
        proc = cli(args, cli_env, check=False)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert "was not loaded" in lines[0] and "system" in lines[0], lines[0]
        assert not marker.exists(), f"{args[0]} ran the checkpoint's code"
    # the same file loaded the unsafe way does run its code: the test's exploit is real
    torch.load(evil, weights_only=False)
    assert marker.exists()


def test_a_checkpoint_from_before_the_tensor_rng_state_still_loads(teacher_dir: Path, tmp_path: Path,
                                                                  cli_env: dict[str, str]) -> None:
    ckpt = torch.load(teacher_dir / "checkpoint.pt", weights_only=True)
    np.random.seed(3)
    ckpt["rng"]["numpy"] = np.random.get_state()  # how checkpoints stored it before: a tuple with an array
    old = tmp_path / "old"
    old.mkdir()
    torch.save(ckpt, old / "checkpoint.pt")
    cli(["sample", "--ckpt", str(old), "--n", "20", "--steps", "2", "--out", str(tmp_path / "a.npy")], cli_env)
    from cmtutor.checkpoint import load_checkpoint
    from cmtutor.training import resume_run

    np.random.seed(0)
    resume_run(load_checkpoint(old), device="cpu")  # restores every RNG state, the old NumPy tuple included
    assert np.array_equal(np.random.get_state()[1], ckpt["rng"]["numpy"][1])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_checkpoints_the_step_reached_and_resume_matches(sig: signal.Signals, tmp_path: Path,
                                                                   cli_env: dict[str, str]) -> None:
    env = _default_threads(cli_env)
    args = ["train", "--method", "ict", "--data", "moons", "--steps", "400", "--checkpoint-every", "100000",
            "--seed", "3", *TINY]
    full = tmp_path / "full"
    cli([*args, "--out", str(full)], env)
    threads = torch.load(full / "checkpoint.pt", weights_only=True)["threads"]
    cut = tmp_path / "cut"  # started on the full run's count: the load (another test worker) may differ now
    proc = subprocess.Popen([PYTHON, "-m", "cmtutor", *args, "--out", str(cut)],
                            env={**env, "CMTUTOR_THREADS": str(threads)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (cut / "metrics.jsonl").exists():  # the first step is logged at 1
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    line = err.strip().splitlines()[-1]
    assert f"stopped by {sig.name} at step" in line and line.endswith("--resume"), line
    step = torch.load(cut / "checkpoint.pt", weights_only=True)["step"]
    assert 0 < step < 400 and f"at step {step} of 400" in line
    cli([*args, "--out", str(cut), "--resume"], env)  # not pinned: the resume keeps the count it started with
    assert torch.load(cut / "checkpoint.pt", weights_only=True)["threads"] == threads
    _assert_same_weights(full, cut, f"{sig.name} and resume")


def test_a_second_train_on_the_same_folder_is_refused(tmp_path: Path, cli_env: dict[str, str]) -> None:
    out = tmp_path / "run"
    args = ["train", "--method", "ict", "--data", "moons", "--steps", "3000", "--checkpoint-every", "500", *TINY,
            "--out", str(out)]
    first = subprocess.Popen([PYTHON, "-m", "cmtutor", *args], env=cli_env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "metrics.jsonl").exists():
        time.sleep(0.02)
    second = cli([*args, "--resume"], cli_env, check=False)
    assert second.returncode == 2 and "another train process" in second.stderr, second.stderr
    assert f"pid {first.pid}" in second.stderr
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=120)
    assert first.returncode == 143
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)  # the first run's checkpoint is whole
    assert 0 < ckpt["step"] < 3000


def test_a_diverging_run_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path, cli_env: dict[str, str]) -> None:
    out = tmp_path / "run"
    proc = cli(["train", "--method", "diffusion", "--data", "moons", "--steps", "300", "--checkpoint-every", "1",
                "--lr", "1e30", *TINY, "--out", str(out)], cli_env, check=False)
    line = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and "training diverged" in line, proc.stderr
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert f"the last good checkpoint (step {ckpt['step']})" in line and ckpt["step"] < 300
    logs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(x["loss"]) for x in logs if x["step"] <= ckpt["step"])
