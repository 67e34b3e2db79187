"""The small sets' quality distances (FD-digits, FD-photos): the built-in photos set and an FD that ranks
real patches below degraded ones."""

from __future__ import annotations

import numpy as np
import pytest

from cmtutor.config import default_config
from cmtutor.data.images import load_images, photos_split
from cmtutor.evaluation.digits_fd import DIGITS, fd_digits
from cmtutor.evaluation.photos_fd import PHOTOS


def test_photos_are_16x16_colour_patches_with_a_fixed_reference_split() -> None:
    tr, ytr, ref, yref = photos_split()
    assert tr.dtype == np.uint8 and tr.shape[1:] == (16, 16, 3) and ref.shape[1:] == (16, 16, 3)
    assert len(tr) + len(ref) == 2 * 46 * 73 and len(ref) == (len(tr) + len(ref)) // 5  # 80 / 20
    assert set(np.unique(ytr)) == set(range(40)) and set(np.unique(yref)) <= set(range(40))
    assert np.array_equal(photos_split()[2], ref)  # the same reference every time
    data = load_images("photos", seed=3)  # one split whatever the training seed
    assert np.array_equal(data.heldout, ref) and data.shape == (3, 16, 16)
    cfg = default_config("ict", "photos")
    assert cfg.net["preset"] == "auto" and cfg.batch_size == 128 and not cfg.xflip  # the small-image settings


def test_fd_photos_ranks_real_below_degraded_patches() -> None:
    tr, _, _, _ = PHOTOS.data()
    rng = np.random.default_rng(1)
    real = tr[rng.choice(len(tr), 500, replace=False)]
    x = real.astype(np.float64)
    blurred = ((x + np.roll(x, 1, 1) + np.roll(x, -1, 1) + np.roll(x, 1, 2) + np.roll(x, -1, 2)) / 5).astype(np.uint8)
    grey = np.repeat(x.mean(-1, keepdims=True), 3, -1).astype(np.uint8)
    scores = [PHOTOS.fd(a) for a in (real, blurred, grey)]
    assert scores[0] < 2 * PHOTOS.floor(500) and scores[0] < scores[1] < scores[2]
    assert PHOTOS.protocol(500)["metric"].startswith("FD-photos") and "not an FID" in PHOTOS.protocol(500)["metric"]
    with pytest.raises(ValueError, match=r"FD-photos needs images \[N, 16, 16, 3\]"):
        PHOTOS.fd(np.zeros((10, 8, 8, 1), np.uint8))


def test_fd_digits_is_the_same_metric_under_its_old_name() -> None:
    tr = DIGITS.data()[0][:300]
    assert fd_digits(tr) == DIGITS.fd(tr) < 30
