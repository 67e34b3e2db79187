"""The FD-digits / FD-photos classifiers ship with the package (cmtutor/evaluation/classifiers/): a fresh machine
loads them instead of training its own, so the committed results' distances mean the same everywhere."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from cmtutor.benchmarks.image_quality import N_EVAL, results_path
from cmtutor.evaluation.classifier_fd import ClassifierFD
from cmtutor.evaluation.digits_fd import DIGITS
from cmtutor.evaluation.photos_fd import PHOTOS


def _never_trained(self: ClassifierFD) -> None:
    raise AssertionError(f"{self.name}: trained a classifier although one ships")


@pytest.mark.parametrize("metric", [DIGITS, PHOTOS], ids=["digits", "photos"])
def test_a_fresh_data_root_loads_the_shipped_classifier(metric: ClassifierFD, data_root: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = dataclasses.replace(metric, _cache={}, _split=[])
    monkeypatch.setattr(ClassifierFD, "train_classifier", _never_trained)
    assert fresh.shipped() and "shipped with cmtutor" in fresh.protocol(10)["classifier"]
    _, acc = fresh.classifier()
    assert not list((data_root / "cache").glob("*classifier*"))  # nothing trained, nothing cached
    # the committed image table was measured with this very classifier: same accuracy, same floor
    committed = json.loads(results_path(metric.name).read_text())
    assert f"held-out accuracy {acc:.3f}" in committed["quality"]["features"]
    assert fresh.floor(N_EVAL[metric.name]) == pytest.approx(committed["floor"], abs=0.01)


def test_other_settings_train_and_cache_their_own(data_root: Path) -> None:
    other = dataclasses.replace(DIGITS, settings={**DIGITS.settings, "steps": 3}, _cache={}, _split=[])
    assert not other.shipped() and "trained on this machine" in other.protocol(10)["classifier"]
    assert [p.name for p in (data_root / "cache").glob("*classifier*")] == [other.key()]
