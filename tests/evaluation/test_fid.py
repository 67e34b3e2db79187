"""FID through clean-fid with a small feature extractor given by the test; Inception weights handling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cmtutor.errors import UserError
from cmtutor.evaluation import fid as fidlib


def _tiny_extractor(mode: str = "clean") -> fidlib.FeatureExtractor:
    """A fixed random conv net: [B, 3, H, W] in [0, 255] → 6 features (a stand-in for Inception)."""
    g = torch.Generator().manual_seed(0)
    w1 = torch.randn(8, 3, 3, 3, generator=g) * 0.2
    w2 = torch.randn(6, 8 * 4 * 4, generator=g) * 0.1

    def fn(x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(x, 16)  # cheap on 299×299 inputs (clean mode)
        h = torch.tanh(F.conv2d(x / 128.0 - 1.0, w1, padding=1))
        h = F.adaptive_avg_pool2d(h, 4).flatten(1)
        return h @ w2.T

    return fidlib.FeatureExtractor("tiny-test-net", fn, mode)


def _images(seed: int, n: int = 40, shift: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 200, (n, 16, 16, 3))
    return np.clip(base + shift, 0, 255).astype(np.uint8)


def _write_folder(images: np.ndarray, folder: Path) -> None:
    folder.mkdir()
    for i, img in enumerate(images):
        Image.fromarray(img).save(folder / f"{i:04d}.png")


@pytest.mark.parametrize("mode", ["clean", "legacy_tensorflow"])
def test_matches_clean_fid_on_folders(mode: str, tmp_path: Path) -> None:
    from cleanfid import fid as cleanfid

    a, b = _images(0, n=20), _images(1, n=20, shift=40)  # few: clean mode resizes each to 299×299
    _write_folder(a, tmp_path / "a")
    _write_folder(b, tmp_path / "b")
    ext = _tiny_extractor(mode)
    ours = fidlib.fid(a, b, "test-b", ext)
    theirs = cleanfid.compute_fid(str(tmp_path / "a"), str(tmp_path / "b"), mode=mode, custom_feat_extractor=ext.fn,
                                  num_workers=0, device=torch.device("cpu"), verbose=False)
    assert ours["value"] > 0.1
    assert ours["value"] == pytest.approx(theirs, rel=1e-5)


def test_fid_is_zero_for_the_same_images_and_grows_with_the_shift() -> None:
    ext = _tiny_extractor("legacy_tensorflow")
    a = _images(0, n=60)
    assert abs(fidlib.fid(a, a, "self", ext)["value"]) < 1e-6
    near = fidlib.fid(_images(2, n=60, shift=5), a, "a", ext)["value"]
    far = fidlib.fid(_images(2, n=60, shift=50), a, "a", ext)["value"]
    assert 0 < near < far


def test_the_protocol_is_recorded_beside_the_number() -> None:
    ext = _tiny_extractor("legacy_tensorflow")
    res = fidlib.fid(_images(0), _images(1), "cifar10 train", ext, {"weights": "ema", "steps": 1, "seed": 0,
                                                                  "evaluated_on": "CPU"})
    proto = res["protocol"]
    assert proto["metric"] == "FD (tiny-test-net; not an FID)"  # never called FID with another network
    assert proto["mode"] == "legacy_tensorflow" and proto["reference"] == "cifar10 train"
    assert proto["reference_size"] == 40 and proto["samples"] == 40
    assert {"weights", "steps", "seed", "evaluated_on"} <= set(proto)
    line = fidlib.format_protocol(proto)
    assert line.startswith("FD (tiny-test-net") and "samples=40" in line
    inc = fidlib.FeatureExtractor("inception-2015-12-05 (legacy_tensorflow)", ext.fn)
    assert fidlib.metric_label(50_000, inc) == "FID" and fidlib.metric_label(5_000, inc) == "FID-5k"


def test_grey_images_are_treated_as_rgb() -> None:
    ext = _tiny_extractor("legacy_tensorflow")
    grey = _images(3)[..., :1]
    assert np.allclose(ext.features(grey), ext.features(np.repeat(grey, 3, axis=-1)))


def test_missing_or_bad_inception_weights_explain_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMTUTOR_DATA", str(tmp_path))
    monkeypatch.delenv("CMTUTOR_INCEPTION", raising=False)
    if fidlib.find_inception() is not None:
        pytest.skip("an Inception weights file is present on this machine")
    with pytest.raises(UserError, match="--inception FILE"):
        fidlib.inception(allow_download=False)
    with pytest.raises(UserError, match="file not found"):
        fidlib.inception(weights=tmp_path / "nope.pt")
    bogus = tmp_path / "weights.pt"
    bogus.write_bytes(b"not a torchscript file")
    with pytest.raises(UserError, match="not a usable Inception weights file"):
        fidlib.inception(weights=bogus)


class _FakeInceptionLayers(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class _FakeInception(torch.nn.Module):
    """Has the interface of clean-fid's torchscript Inception (``layers``, ``return_features``); 2048 features."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = _FakeInceptionLayers()
        self.proj = torch.nn.Linear(3 * 4 * 4, 2048)

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        h = torch.nn.functional.adaptive_avg_pool2d(x / 255.0, 4).flatten(1)
        return torch.tanh(self.proj(h))


def test_a_local_weights_file_is_loaded_through_clean_fid(tmp_path: Path) -> None:
    torch.manual_seed(0)
    weights = tmp_path / "my-inception.pt"  # any file name: clean-fid's loader gets a link with its own name
    torch.jit.script(_FakeInception()).save(str(weights))
    ext = fidlib.inception("legacy_tensorflow", weights=weights)
    assert ext.is_inception and ext.mode == "legacy_tensorflow"
    assert ext.features(_images(0, n=3)).shape == (3, 2048)


def test_evaluate_reports_fid_with_its_protocol_and_caches_the_reference(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The command line's FID path end to end (a small network stands in for Inception: its 2048-d
    Fréchet distance alone takes tens of seconds on a CPU)."""
    import json

    from cmtutor.cli import main
    from cmtutor.course.images import standin_images
    from cmtutor.data.cifar10 import write_cifar10_format

    monkeypatch.setenv("CMTUTOR_DATA", str(tmp_path / "data"))
    small = _tiny_extractor("legacy_tensorflow")
    monkeypatch.setattr(fidlib, "inception", lambda mode, weights=None, device="cpu": fidlib.FeatureExtractor(
        "inception-like test network", small.fn, mode))
    tr, ytr, te, yte = standin_images(300, 50)
    write_cifar10_format(tmp_path / "c10", tr, ytr, te, yte, note="test stand-in")
    np.savez(tmp_path / "s.npz", images=te[:40])
    args = ["evaluate", "--samples", str(tmp_path / "s.npz"), "--data", str(tmp_path / "c10"), "--device", "cpu"]
    assert main([*args, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    proto = res["fid_protocol"]
    assert res["fid"] > 0 and proto["metric"] == "FID-0.04k" and proto["mode"] == "legacy_tensorflow"
    assert proto["reference"].endswith("train") and proto["reference_size"] == 300 and proto["samples"] == 40
    assert proto["data_note"] == "test stand-in" and proto["evaluated_on"]
    cached = list((tmp_path / "data" / "fid").glob("*.npz"))
    assert len(cached) == 1  # the reference statistics, computed once ...
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fid"] == res["fid"]  # ... and reused
    assert main([*args, "--ref", "heldout", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fid_protocol"]["reference"].endswith("test batch")
    assert main(args) == 0  # the text report prints the protocol beside the number
    text = capsys.readouterr().out
    assert "fid_protocol" in text and "FID-0.04k; mode=legacy_tensorflow" in text
