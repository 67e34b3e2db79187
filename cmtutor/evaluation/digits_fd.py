"""FD-digits: the Fréchet distance on a small digits classifier's features (not an FID).

The metric is :class:`cmtutor.evaluation.classifier_fd.ClassifierFD` on scikit-learn's 8×8 digits, with the
digit classes as labels; this module keeps its short names.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cmtutor.data.images import digits_split
from cmtutor.evaluation.classifier_fd import ClassifierFD, SmallClassifier
from cmtutor.evaluation.fid import FeatureExtractor

#: Classifier training settings (part of the cache key).
CLASSIFIER_SETTINGS: dict[str, Any] = {"steps": 300, "batch": 64, "lr": 2e-3, "seed": 0, "width": 16, "feat": 64,
                                       "version": 1}
LABEL = "FD-digits"
DIGITS = ClassifierFD("digits", LABEL, lambda: digits_split(0), "the 10 digit classes",
                      "held-out digits (20%, 359 images)", CLASSIFIER_SETTINGS)
DigitsClassifier = SmallClassifier


def classifier() -> tuple[SmallClassifier, float]:
    """The digits classifier and its held-out accuracy (shipped with the package; see classifier_fd)."""
    return DIGITS.classifier()


def extractor() -> FeatureExtractor:
    """The classifier's features as a :class:`FeatureExtractor` (inputs [B, 3, 8, 8] in [0, 255], grey)."""
    return DIGITS.extractor()


def fd_digits(samples: np.ndarray, reference: np.ndarray | None = None) -> float:
    """FD-digits of uint8 samples [N, 8, 8, 1] against the held-out digits (or ``reference``)."""
    return DIGITS.fd(samples, reference)


def fd_digits_floor(n: int, repeats: int = 3, seed: int = 0) -> float:
    """The finite-sample floor: FD-digits of n real *training* digits against the held-out digits."""
    return DIGITS.floor(n, repeats, seed)


def protocol(n: int) -> dict[str, Any]:
    """What an FD-digits number means (printed beside it)."""
    return DIGITS.protocol(n)
