"""The CIFAR-10 proxy end to end on the CPU: a stand-in in CIFAR-10's format, the tiny U-Net, random features
(labelled as not an FID); a missing Inception file stops it before any training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cmtutor.benchmarks import cifar10_proxy
from cmtutor.course.images import STANDIN_NOTE, standin_images
from cmtutor.data import cifar10
from cmtutor.methods import METHODS


def test_every_method_has_a_proxy_budget_at_batch_128() -> None:
    assert set(cifar10_proxy.PROXY_STEPS) == set(METHODS)
    cfg = cifar10_proxy.proxy_config("ict")
    assert cfg.batch_size == 128 and cfg.steps == 3000 and cfg.warmup_steps == 300 and cfg.ema_warmup == "power"
    assert cfg.net["preset"] == "auto" and cfg.precision == "auto"  # the 55.7M network, bf16 on a GPU


def test_the_proxy_runs_end_to_end_on_a_standin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tr, ytr, te, yte = standin_images(64, 16)
    cifar10.write_cifar10_format(tmp_path / "standin", tr, ytr, te, yte, note=STANDIN_NOTE)
    out = tmp_path / "proxy.json"
    rc = cifar10_proxy.main(["--data", str(tmp_path / "standin"), "--methods", "diffusion", "cd", "--net", "tiny",
                             "--steps", "2", "--n", "24", "--features", "random", "--device", "cpu", "--out", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert sorted(res["methods"]) == ["cd", "diffusion"] and "NOT CIFAR-10" in res["note"]
    cd = res["methods"]["cd"]
    assert cd["teacher"] == "diffusion" and cd["steps"] == 2 and {"fid_1step", "fid_2step"} <= set(cd)
    assert "not an FID" in cd["protocol"]["metric"] and cd["protocol"]["samples"] == 24
    assert "fid_18step" in res["methods"]["diffusion"]


def test_missing_inception_weights_stop_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CMTUTOR_DATA", str(tmp_path))
    monkeypatch.setenv("CMTUTOR_OFFLINE", "1")
    tr, ytr, te, yte = standin_images(16, 8)
    cifar10.write_cifar10_format(tmp_path / "standin", tr, ytr, te, yte, note=STANDIN_NOTE)
    args = ["--data", str(tmp_path / "standin"), "--out", str(tmp_path / "p.json")]
    assert cifar10_proxy.main(args) == 2  # none found, downloads off
    assert "FID needs clean-fid's Inception weights" in capsys.readouterr().err
    assert cifar10_proxy.main([*args, "--inception", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt: file not found" in capsys.readouterr().err and not (tmp_path / "p.json").exists()
