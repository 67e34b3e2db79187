"""Our Fréchet distance against a second implementation: torchmetrics' ``FrechetInceptionDistance`` with the
same feature network (its public ``feature=`` module), statistics and matrix square root computed in float64
by torchmetrics' own code. A fixed small set: 300 real digits and patches, and degraded copies of them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from cmtutor.evaluation.classifier_fd import ClassifierFD, to_input
from cmtutor.evaluation.digits_fd import DIGITS
from cmtutor.evaluation.fid import feature_stats, frechet_distance
from cmtutor.evaluation.photos_fd import PHOTOS

torchmetrics_fid = pytest.importorskip("torchmetrics.image.fid")


class Features(nn.Module):
    """The classifier's features of uint8 images [N, C, H, W], as torchmetrics feeds them."""

    def __init__(self, metric: ClassifierFD) -> None:
        super().__init__()
        self.model = metric.classifier()[0]
        self.num_features = 64

    def forward(self, x: Tensor) -> Tensor:
        return self.model.features(x.float() / 127.5 - 1.0).double()


def _torchmetrics_fd(metric: ClassifierFD, samples: np.ndarray, reference: np.ndarray) -> float:
    fd = torchmetrics_fid.FrechetInceptionDistance(feature=Features(metric), reset_real_features=True)
    fd.update(torch.from_numpy(reference.transpose(0, 3, 1, 2).copy()), real=True)
    fd.update(torch.from_numpy(samples.transpose(0, 3, 1, 2).copy()), real=False)
    return float(fd.compute())


@pytest.mark.parametrize("metric", [DIGITS, PHOTOS], ids=["digits", "photos"])
def test_our_fd_agrees_with_torchmetrics_in_float64(metric: ClassifierFD) -> None:
    tr, _, ref, _ = metric.data()
    rng = np.random.default_rng(0)
    real = tr[rng.choice(len(tr), 300, replace=False)]
    noisy = np.clip(real + rng.normal(0, 40, real.shape), 0, 255).astype(np.uint8)
    for samples in (real, noisy):
        ours, theirs = metric.fd(samples, ref), _torchmetrics_fd(metric, samples, ref)
        assert ours == pytest.approx(theirs, rel=1e-6, abs=1e-6)
    assert metric.fd(noisy, ref) > 1.5 * metric.fd(real, ref)  # the check compares numbers that differ


def test_the_formula_alone_in_float64() -> None:
    """Gaussians with known distance: N(0, I) and N(m, 4I) in D dims: ‖m‖² + D·(1 + 4 − 2·2) = ‖m‖² + D."""
    d = 16
    m = np.full(d, 0.5)
    ours = frechet_distance(np.zeros(d), np.eye(d), m, 4 * np.eye(d))
    theirs = float(torchmetrics_fid._compute_fid(torch.zeros(d, dtype=torch.float64),
                                                 torch.eye(d, dtype=torch.float64),
                                                 torch.from_numpy(m), 4 * torch.eye(d, dtype=torch.float64)))
    assert ours == pytest.approx(d * 0.25 + d) and theirs == pytest.approx(ours, rel=1e-9)
    feats = np.random.default_rng(1).normal(size=(500, d))
    assert frechet_distance(*feature_stats(feats), *feature_stats(feats)) == pytest.approx(0, abs=1e-6)
    assert to_input(np.zeros((1, 8, 8, 1), np.uint8)).min() == -1.0
