"""A quick quality distance for 8×8 digits: the Fréchet distance on a small digits classifier's features.

FID's Inception network is trained on 299×299 photographs; on 8×8 grey digits its features say little
(and its weights may not be available). For the digits we use a small convolutional classifier trained
on the digits' training split (trained once, cached under ``<data root>/cache/``) and compute the
Fréchet distance between the 64-d hidden features of generated and held-out digits:

    FD_digits = ‖μ_g − μ_h‖² + Tr(Σ_g + Σ_h − 2(Σ_g Σ_h)^½).

This is **not an FID** and is never called one; it is labelled "FD-digits" everywhere. Its finite-sample
floor (:func:`fd_digits_floor`, real training digits against the held-out digits, at the same sample
size) is what a perfect generator would score.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cmtutor.checkpoint import atomic_torch_save, read_torch_file
from cmtutor.data.images import digits_split
from cmtutor.data.root import cache_dir
from cmtutor.evaluation.fid import FeatureExtractor, feature_stats, frechet_distance

#: Classifier training settings (part of the cache key).
CLASSIFIER_SETTINGS: dict[str, Any] = {"steps": 300, "batch": 64, "lr": 2e-3, "seed": 0, "width": 16, "feat": 64,
                                       "version": 1}
LABEL = "FD-digits"


class DigitsClassifier(nn.Module):
    """conv(1→w) → conv(w→2w, stride 2) → linear(→feat) = features → linear(→10); input in [−1, 1]."""

    def __init__(self, width: int = 16, feat: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.fc = nn.Linear(2 * width * 16, feat)
        self.head = nn.Linear(feat, 10)

    def features(self, x: Tensor) -> Tensor:
        h = F.relu(self.conv2(F.relu(self.conv1(x))))
        return self.fc(h.flatten(1))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(F.relu(self.features(x)))


def _to_input(images: np.ndarray) -> Tensor:
    return torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32)) / 127.5 - 1.0


def train_classifier(settings: dict[str, Any] = CLASSIFIER_SETTINGS) -> tuple[DigitsClassifier, float]:
    """Train the classifier on the digits' training split; returns (model, held-out accuracy)."""
    tr, ytr, he, yhe = digits_split(0)
    gen = torch.Generator().manual_seed(settings["seed"])
    torch.manual_seed(settings["seed"])
    model = DigitsClassifier(settings["width"], settings["feat"])
    opt = torch.optim.Adam(model.parameters(), lr=settings["lr"])
    x, y = _to_input(tr), torch.from_numpy(ytr)
    for _ in range(settings["steps"]):
        idx = torch.randint(0, len(x), (settings["batch"],), generator=gen)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(_to_input(he)).argmax(1).numpy() == yhe).mean())
    return model.requires_grad_(False), acc


_CACHE: dict[str, tuple[DigitsClassifier, float]] = {}


def classifier() -> tuple[DigitsClassifier, float]:
    """The digits classifier and its held-out accuracy: trained once, cached on disk and in memory."""
    key = hashlib.sha256(json.dumps(CLASSIFIER_SETTINGS, sort_keys=True).encode()).hexdigest()[:16]
    if key in _CACHE:
        return _CACHE[key]
    path = cache_dir() / f"digits-classifier-{key}.pt"
    if path.exists():
        blob = read_torch_file(path, "cached digits classifier")
        model = DigitsClassifier(CLASSIFIER_SETTINGS["width"], CLASSIFIER_SETTINGS["feat"])
        model.load_state_dict(blob["state"])
        result = (model.eval().requires_grad_(False), float(blob["accuracy"]))
    else:
        result = train_classifier()
        atomic_torch_save({"state": result[0].state_dict(), "accuracy": result[1]}, path)
    _CACHE[key] = result
    return result


def extractor() -> FeatureExtractor:
    """The classifier's features as a :class:`FeatureExtractor` (inputs [B, 3, 8, 8] in [0, 255], grey)."""
    model, _ = classifier()

    def fn(x: Tensor) -> Tensor:
        return model.features(x[:, :1] / 127.5 - 1.0)

    return FeatureExtractor("digits-classifier", fn, mode="legacy_tensorflow")


def _features(images: np.ndarray) -> np.ndarray:
    if images.shape[1:] != (8, 8, 1):
        raise ValueError(f"FD-digits needs 8×8 grey digits [N, 8, 8, 1], got {images.shape}")
    model, _ = classifier()
    with torch.no_grad():
        return model.features(_to_input(images)).double().numpy()


def fd_digits(samples: np.ndarray, reference: np.ndarray | None = None) -> float:
    """FD-digits of uint8 samples [N, 8, 8, 1] against the held-out digits (or ``reference``)."""
    ref = digits_split(0)[2] if reference is None else reference
    return frechet_distance(*feature_stats(_features(samples)), *feature_stats(_features(ref)))


def fd_digits_floor(n: int, repeats: int = 3, seed: int = 0) -> float:
    """The finite-sample floor: FD-digits of n real *training* digits against the held-out digits."""
    tr = digits_split(0)[0]
    rng = np.random.default_rng(seed)
    return float(np.mean([fd_digits(tr[rng.choice(len(tr), size=min(n, len(tr)), replace=False)])
                          for _ in range(repeats)]))


def protocol(n: int) -> dict[str, Any]:
    """What an FD-digits number means (printed beside it)."""
    _, acc = classifier()
    return {"metric": f"{LABEL} (Fréchet distance on a small digits classifier's features; not an FID)",
            "features": f"64-d hidden layer of a 2-conv classifier, held-out accuracy {acc:.3f}",
            "reference": "held-out digits (20%, 359 images)", "samples": int(n)}
