"""Image data: digits, .npz files, the CIFAR-10 reader (exact format, checksums, errors), noise, scaling."""

from __future__ import annotations

import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from cmtutor.cli import main
from cmtutor.data import cifar10
from cmtutor.data.images import (
    NOISE_CHUNK,
    ImageScaler,
    digits_uint8,
    image_batch,
    image_noise,
    images_to_tensor,
    load_images,
    read_image_file,
    to_uint8,
)
from cmtutor.errors import DataError


def _standin(root: Path, n_train: int = 50, n_test: int = 20, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    tr = rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8)
    te = rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8)
    return cifar10.write_cifar10_format(root, tr, rng.integers(0, 10, n_train), te, rng.integers(0, 10, n_test),
                                       note="random pixels written by a test; not CIFAR-10")


def _cli_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


# --- digits, scaling, noise ------------------------------------------------------------------------

def test_digits_are_uint8_8x8_and_scale_to_minus_one_one() -> None:
    images, labels = digits_uint8()
    assert images.shape == (1797, 8, 8, 1) and images.dtype == np.uint8 and images.max() == 255
    assert set(np.unique(labels)) == set(range(10))
    data = load_images("digits")
    assert data.shape == (1, 8, 8) and len(data.train) + len(data.heldout) == 1797 and len(data.heldout) == 359
    x = ImageScaler().encode(images_to_tensor(data.train))
    assert float(x.min()) == -1.0 and float(x.max()) == 1.0
    back = to_uint8(ImageScaler().decode(x))
    assert np.array_equal(back, data.train)


def test_image_batches_flip_and_use_channels_last() -> None:
    u = images_to_tensor(digits_uint8()[0][:50])
    torch.manual_seed(0)
    x = image_batch(u, 64, xflip=True, channels_last=True)
    assert x.shape == (64, 1, 8, 8) and x.is_contiguous(memory_format=torch.channels_last)
    torch.manual_seed(0)
    idx = torch.randint(0, 50, (64,))
    flip = torch.rand(64) < 0.5
    plain = u[idx].float() / 127.5 - 1
    assert torch.equal(x, torch.where(flip[:, None, None, None], plain.flip(3), plain))
    assert 0 < int(flip.sum()) < 64


def test_image_noise_does_not_depend_on_how_many_or_in_what_batches() -> None:
    big = image_noise(0, NOISE_CHUNK + 30, (1, 4, 4), seed=7)
    assert torch.equal(image_noise(0, 10, (1, 4, 4), seed=7), big[:10])
    assert torch.equal(image_noise(NOISE_CHUNK - 5, 20, (1, 4, 4), seed=7), big[NOISE_CHUNK - 5:NOISE_CHUNK + 15])
    assert not torch.equal(image_noise(0, 10, (1, 4, 4), seed=8), big[:10])
    assert abs(float(big.std()) - 1) < 0.05


def test_npz_files_are_validated(tmp_path: Path) -> None:
    good = np.random.default_rng(0).integers(0, 256, (40, 16, 16, 3), dtype=np.uint8)
    np.savez(tmp_path / "good.npz", images=good)
    assert np.array_equal(read_image_file(tmp_path / "good.npz"), good)
    data = load_images(str(tmp_path / "good.npz"))
    assert data.shape == (3, 16, 16) and len(data.heldout) == 8
    bad = {"nokey": {"x": good}, "float": {"images": good.astype(np.float32)}, "chw": {"images": good[:, :3]},
           "side12": {"images": good[:, :12, :12]}, "few": {"images": good[:3]}}
    for name, arrays in bad.items():
        np.savez(tmp_path / f"{name}.npz", **arrays)
        with pytest.raises(DataError):
            read_image_file(tmp_path / f"{name}.npz")
    with pytest.raises(DataError):
        read_image_file(tmp_path / "missing.npz")


# --- CIFAR-10 ------------------------------------------------------------------------------------

def test_writer_produces_the_exact_official_format(tmp_path: Path) -> None:
    folder = _standin(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*cifar10.TRAIN_FILES, *cifar10.TEST_FILES, "batches.meta", cifar10.STANDIN_MANIFEST])
    with open(folder / "data_batch_1", "rb") as fh:
        d = pickle.load(fh, encoding="bytes")
    assert set(d) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert d[b"data"].dtype == np.uint8 and d[b"data"].shape == (10, 3072) and isinstance(d[b"labels"], list)
    c = cifar10.load_cifar10(tmp_path)
    # row layout: 1024 red values (row-major 32×32), then green, then blue
    assert d[b"data"][3, 1024 + 32 * 5 + 7] == c.train[3, 5, 7, 1]
    assert c.train.shape == (50, 32, 32, 3) and c.test.shape == (20, 32, 32, 3)
    assert c.is_standin and "not CIFAR-10" in c.standin_note
    with open(folder / "batches.meta", "rb") as fh:
        assert pickle.load(fh, encoding="bytes")[b"label_names"][0] == b"airplane"


def test_the_reader_round_trips_and_labels_the_standin(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    tr = rng.integers(0, 256, (25, 32, 32, 3), dtype=np.uint8)
    te = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    cifar10.write_cifar10_format(tmp_path, tr, np.arange(25) % 10, te, np.arange(10), note="test pixels")
    c = cifar10.load_cifar10(tmp_path / cifar10.FOLDER)
    assert np.array_equal(c.train, tr) and np.array_equal(c.test, te)
    assert np.array_equal(c.train_labels, np.arange(25) % 10)
    data = load_images(str(tmp_path))
    assert data.note == "test pixels" and "stand-in" in data.name and data.heldout_split == "test batch"


def test_official_checksums_apply_without_a_manifest(tmp_path: Path) -> None:
    folder = _standin(tmp_path)
    (folder / cifar10.STANDIN_MANIFEST).unlink()
    with pytest.raises(DataError, match=cifar10.OFFICIAL_MD5["data_batch_1"]):
        cifar10.load_cifar10(tmp_path)


def test_wrong_checksum_exits_2_with_a_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CMTUTOR_DATA", str(tmp_path / "data"))
    folder = _standin(tmp_path / "c10")
    manifest = json.loads((folder / cifar10.STANDIN_MANIFEST).read_text())
    manifest["md5"]["data_batch_4"] = "0" * 32
    (folder / cifar10.STANDIN_MANIFEST).write_text(json.dumps(manifest))
    msg = _cli_error(["train", "--method", "ict", "--data", str(tmp_path / "c10"), "--steps", "1",
                      "--out", str(tmp_path / "out")], capsys)
    assert "data_batch_4" in msg and "checksum mismatch" in msg and "0" * 32 in msg
    assert not (tmp_path / "out").exists()


def test_corrupted_batch_exits_2_with_a_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CMTUTOR_DATA", str(tmp_path / "data"))
    folder = _standin(tmp_path / "c10")
    blob = (folder / "data_batch_2").read_bytes()
    (folder / "data_batch_2").write_bytes(blob[: len(blob) // 2])  # truncated ...
    manifest = json.loads((folder / cifar10.STANDIN_MANIFEST).read_text())
    manifest["md5"]["data_batch_2"] = cifar10.md5sum(folder / "data_batch_2")  # ... with a matching checksum
    (folder / cifar10.STANDIN_MANIFEST).write_text(json.dumps(manifest))
    msg = _cli_error(["train", "--method", "ict", "--data", str(tmp_path / "c10"), "--steps", "1",
                      "--out", str(tmp_path / "out")], capsys)
    assert "data_batch_2" in msg and "not a readable CIFAR-10 batch" in msg


def test_missing_cifar10_offline_says_which_files_to_put_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CMTUTOR_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("CMTUTOR_OFFLINE", "1")
    msg = _cli_error(["train", "--method", "ict", "--data", "cifar10", "--steps", "1",
                      "--out", str(tmp_path / "out")], capsys)
    where = str(tmp_path / "data" / "cifar10")
    for part in (cifar10.TARBALL, cifar10.TARBALL_MD5, cifar10.URL, where, "data_batch_1", "test_batch",
                 cifar10.FOLDER):
        assert part in msg, part
    assert not (tmp_path / "out").exists()


def test_a_tarball_is_verified_before_extraction(tmp_path: Path) -> None:
    folder = _standin(tmp_path / "src")
    root = tmp_path / "cifar"
    root.mkdir()
    with tarfile.open(root / cifar10.TARBALL, "w:gz") as tar:
        tar.add(folder, arcname=cifar10.FOLDER)
    with pytest.raises(DataError, match=f"expected {cifar10.TARBALL_MD5}"):
        cifar10.load_cifar10(root)  # our tarball is not the official archive
    assert not (root / cifar10.FOLDER).exists()  # nothing extracted from an unverified archive


def test_notebook_08_falls_back_to_a_labelled_standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cmtutor.course.images import STANDIN_NOTE, cifar10_source

    monkeypatch.setenv("CMTUTOR_DATA", str(tmp_path))
    monkeypatch.setenv("CMTUTOR_OFFLINE", "1")
    spec, msg = cifar10_source()
    assert "USING A STAND-IN" in msg and cifar10.TARBALL in msg and str(tmp_path) not in msg  # no machine paths
    data = load_images(spec)
    assert data.note == STANDIN_NOTE and data.train.shape == (500, 32, 32, 3) and data.train.dtype == np.uint8
    assert "stand-in" in data.name


def test_throughput_benchmark_runs_and_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cmtutor.benchmarks import common, throughput

    monkeypatch.setenv("CMTUTOR_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(common, "SEARCH_ROOTS", ())  # whatever CIFAR-10 copy this machine has is not looked at
    out = tmp_path / "t.json"
    assert throughput.main(["--net", "tiny", "--methods", "ict", "cd", "--batch-sizes", "2", "--steps", "1",
                            "--warmup", "1", "--sample-n", "4", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["cifar10_search"]["path"] is None and "random uint8" in r["data"]  # no CIFAR-10: labelled random pixels
    assert r["flops"]["cd"] > r["flops"]["ict"] > r["flops"]["forward_per_image"] > 0  # CD pays for its teacher
    rows = {e["method"]: e for e in r["training"]}
    assert rows["ict"]["images_per_s"] > 0 and "error" not in rows["cd"] and "peak_rss_mb" in rows["ict"]
    assert r["sampling"]["images"] == 4 and r["sampling"]["extrapolated"]


def test_throughput_merge_keeps_other_methods_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cmtutor.benchmarks import throughput

    monkeypatch.setenv("CMTUTOR_DATA", str(tmp_path / "data"))
    out = tmp_path / "t.json"
    common = ["--net", "tiny", "--batch-sizes", "2", "--steps", "1", "--warmup", "1", "--out", str(out)]
    assert throughput.main([*common, "--methods", "ict", "--sample-n", "4"]) == 0
    first = json.loads(out.read_text())
    assert throughput.main([*common, "--methods", "gc", "--no-sampling", "--merge"]) == 0
    merged = json.loads(out.read_text())
    rows = {e["method"]: e for e in merged["training"]}
    assert set(rows) == {"ict", "gc"} and rows["ict"]["measured_by"]["command"] == first["command"]
    assert "measured_by" not in rows["gc"] and rows["gc"]["images_per_s"] > 0
    assert merged["flops"]["ict"] == first["flops"]["ict"] and merged["flops"]["gc"] > 0
    assert merged["sampling"]["images"] == 4 and merged["sampling"]["measured_by"]["command"] == first["command"]
    with pytest.raises(SystemExit, match="same device"):  # rows of another network are not mixed in
        throughput.main(["--net", "small", "--methods", "ot", "--merge", "--out", str(out)])
