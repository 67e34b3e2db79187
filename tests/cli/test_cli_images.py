"""Images through the command line, for every method: train 2 steps, resume exactly, sample, evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cmtutor.cli import main
from cmtutor.methods import METHODS

TINY = ["--data", "digits", "--batch-size", "8", "--set", 'net={"preset":"tiny"}', "--set", "log_every=1",
        "--checkpoint-every", "1", "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(autouse=True)
def _env(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMTUTOR_DATA", str(data_root))
    monkeypatch.setenv("CMTUTOR_OFFLINE", "1")


@pytest.fixture(scope="module")
def teachers(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> dict[str, Path]:
    """One 2-step checkpoint per method that some method learns from (built on demand, in order)."""
    return {}


def _teacher_for(method: str, teachers: dict[str, Path], root: Path) -> list[str]:
    cls = METHODS[method]
    if not cls.teacher_methods:
        return []
    name = next((m for m in cls.teacher_methods if m in METHODS), None)
    assert name is not None, f"{method}: none of its teacher methods {cls.teacher_methods} is available"
    if name not in teachers:
        out = root / f"teacher-{name}"
        assert main(["train", "--method", name, "--steps", "2", "--out", str(out), *TINY,
                     *_teacher_for(name, teachers, root)]) == 0
        teachers[name] = out / "checkpoint.pt"
    return ["--teacher", str(teachers[name])]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(path, weights_only=True)
    return {**{f"model.{k}": v for k, v in ckpt["model"].items()}, **{f"ema.{k}": v for k, v in ckpt["ema"].items()}}


@pytest.mark.parametrize("method", list(METHODS))
def test_two_steps_then_exact_resume(method: str, tmp_path: Path, teachers: dict[str, Path],
                                     data_root: Path) -> None:
    teacher = _teacher_for(method, teachers, data_root)
    args = ["train", "--method", method, "--steps", "2", *TINY, *teacher]
    assert main([*args, "--out", str(tmp_path / "full")]) == 0
    assert main([*args, "--out", str(tmp_path / "cut"), "--stop-at", "1"]) == 0
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["step"] == 1
    assert main([*args, "--out", str(tmp_path / "cut"), "--resume"]) == 0
    a, b = _weights(tmp_path / "full" / "checkpoint.pt"), _weights(tmp_path / "cut" / "checkpoint.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{method}: {k} differs after resume"
    cfg = json.loads((tmp_path / "full" / "config.json").read_text())
    assert cfg["data_kind"] == "image" and cfg["net"]["kind"] == "unet" and cfg["net"]["preset"] == "tiny"
    assert cfg["noise"]["sigma_max"] == 80.0 and cfg["noise"]["sigma_data"] == 0.5
    # the resolved network (the preset expanded), as the checkpoint holds it
    assert "channels" in cfg["net"] and cfg == torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)["config"]
    logs = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in logs] == [1, 2] and all(np.isfinite(x["loss"]) for x in logs)
    assert "peak_rss_mb" in logs[-1] and logs[-1]["images_per_s"] > 0  # the throughput report

    out = tmp_path / "s.npz"
    assert main(["sample", "--ckpt", str(tmp_path / "full"), "--n", "12", "--steps", "2", "--batch-size", "5",
                 "--device", "cpu", "--out", str(out)]) == 0
    with np.load(out) as f:
        images = f["images"]
    assert images.shape == (12, 8, 8, 1) and images.dtype == np.uint8
    meta = json.loads(Path(str(out) + ".json").read_text())
    assert meta["method"] == method and meta["steps"] == 2 and meta["weights"] == "ema" and meta["hardware"]


def test_sampling_is_batch_independent_and_sample_grids_are_written(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["train", "--method", "ict", "--steps", "2", *TINY, "--set", "sample_every=2",
                 "--out", str(run)]) == 0
    assert (run / "samples" / "step_0000002.png").exists()
    files = []
    for bs in ("3", "12"):
        files.append(tmp_path / f"b{bs}.npz")
        assert main(["sample", "--ckpt", str(run), "--n", "12", "--batch-size", bs, "--device", "cpu",
                     "--out", str(files[-1])]) == 0  # one step: the noise alone decides the image
    a, b = (np.load(f)["images"] for f in files)
    assert np.array_equal(a, b)


def test_bf16_autocast_path_runs_on_cpu(tmp_path: Path) -> None:
    assert main(["train", "--method", "ict", "--steps", "2", *TINY, "--set", "precision=bf16",
                 "--out", str(tmp_path / "r")]) == 0
    logs = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(x["loss"]) for x in logs)


def test_evaluate_digits_reports_fd_digits_with_its_protocol(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             teachers: dict[str, Path], data_root: Path) -> None:
    teacher = _teacher_for("cd", teachers, data_root)[1]
    out = tmp_path / "s.npz"
    # the teacher's own 40-step ODE samples: exactly its ODE solution from the same noise
    assert main(["sample", "--ckpt", teacher, "--n", "40", "--steps", "40", "--device", "cpu", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--samples", str(out), "--data", "digits", "--teacher", teacher, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["fd_digits"] > res["fd_digits_floor"] > 0  # an untrained model is far from the data
    assert "not an FID" in res["fd_digits_protocol"]["metric"] and res["fd_digits_protocol"]["steps"] == 40
    assert res["fid"] is None and "--inception" in res["fid_note"]  # offline: skipped, and says why
    assert res["ode_error"] == 0.0


def test_photos_train_sample_and_evaluate_with_fd_photos(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photos = [a if a != "digits" else "photos" for a in TINY]
    assert main(["train", "--method", "ict", "--steps", "2", *photos, "--out", str(tmp_path / "r")]) == 0
    out = tmp_path / "s.npz"
    assert main(["sample", "--ckpt", str(tmp_path / "r" / "checkpoint.pt"), "--n", "30", "--device", "cpu",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--samples", str(out), "--data", "photos", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["fd_photos"] > res["fd_photos_floor"] > 0 and "FD-photos" in res["fd_photos_protocol"]["metric"]
    assert res["fid"] is None  # offline: skipped, and says why


def test_image_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.savez(tmp_path / "f.npz", images=np.zeros((20, 8, 8, 3), np.float32))
    for args in (["train", "--method", "ict", "--data", str(tmp_path / "f.npz"), "--out", str(tmp_path / "o")],
                 ["train", "--method", "ict", "--data", "digits", "--set", 'net={"preset":"huge"}',
                  "--out", str(tmp_path / "o")]):
        assert main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ")
        assert not (tmp_path / "o").exists()
