"""Quick quality distances for the small built-in image sets: the Fréchet distance on a small classifier's features.

FID's Inception network is trained on 299×299 photographs; on 8×8 digits or 16×16 patches its features say
little (and its weights may not be available). For each small set a two-layer convolutional classifier is
trained on the set's own training split and labels (digit classes; for ``photos`` the photo and horizontal
band of a patch), trained once and shipped with the package (``cmtutor/evaluation/classifiers/``), so that a
distance means the same on every machine: retrained on an AMD and an Intel CPU from the same seed, the photos
classifier's floor was 27.33 against 28.39 (docs/defaults.md#the-photos-budget). A classifier whose settings or
data differ from the shipped one's is trained on first use and cached under ``<data root>/cache/``. The distance
is the Fréchet distance
between the 64-d hidden features of generated and held-out images,

    FD = ‖μ_g − μ_h‖² + Tr(Σ_g + Σ_h − 2(Σ_g Σ_h)^½),

labelled with the set (``FD-digits``, ``FD-photos``), **never called an FID**. Its finite-sample floor
(:meth:`ClassifierFD.floor`: real training images against the held-out ones, at the same sample size) is
what a perfect generator would score.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cmtutor.checkpoint import atomic_torch_save, read_torch_file
from cmtutor.data.root import cache_dir
from cmtutor.evaluation.fid import FeatureExtractor, feature_stats, frechet_distance

Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

#: classifiers shipped with the package, named ``NAME-classifier-KEY.pt`` like the cache's (written by :meth:`ship`)
SHIPPED_DIR = Path(__file__).resolve().parent / "classifiers"


class SmallClassifier(nn.Module):
    """conv(C→w) → conv(w→2w, stride 2) → linear(→feat) = features → linear(→classes); input in [−1, 1]."""

    def __init__(self, channels: int = 1, side: int = 8, classes: int = 10, width: int = 16, feat: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.fc = nn.Linear(2 * width * (side // 2) ** 2, feat)
        self.head = nn.Linear(feat, classes)

    def features(self, x: Tensor) -> Tensor:
        h = F.relu(self.conv2(F.relu(self.conv1(x))))
        return self.fc(h.flatten(1))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(F.relu(self.features(x)))


def to_input(images: np.ndarray) -> Tensor:
    """uint8 [N, H, W, C] → float [N, C, H, W] in [−1, 1]."""
    return torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32)) / 127.5 - 1.0


@dataclass
class ClassifierFD:
    """The Fréchet distance of one small image set: its split, its classifier's settings, its label."""

    #: the set's name (``digits``) and the metric's label (``FD-digits``)
    name: str
    label: str
    #: (train, train labels, held-out, held-out labels), uint8 [N, H, W, C] and int64 labels
    split: Callable[[], Split]
    #: what the classifier predicts and what the reference is (for the protocol)
    labels: str
    reference: str
    #: classifier training settings (part of the cache key)
    settings: dict[str, Any]
    _cache: dict[str, tuple[SmallClassifier, float]] = field(default_factory=dict, repr=False)
    _split: list[Split] = field(default_factory=list, repr=False)

    def data(self) -> Split:
        """The set's split, read once."""
        if not self._split:
            self._split.append(self.split())
        return self._split[0]

    def _new(self) -> SmallClassifier:
        tr, ytr, _, _ = self.data()
        s = self.settings
        return SmallClassifier(tr.shape[3], tr.shape[1], int(ytr.max()) + 1, s["width"], s["feat"])

    def train_classifier(self) -> tuple[SmallClassifier, float]:
        """Train the classifier on the set's training split; returns (model, held-out accuracy)."""
        tr, ytr, he, yhe = self.data()
        s = self.settings
        gen = torch.Generator().manual_seed(s["seed"])
        torch.manual_seed(s["seed"])
        model = self._new()
        opt = torch.optim.Adam(model.parameters(), lr=s["lr"])
        x, y = to_input(tr), torch.from_numpy(ytr)
        for _ in range(s["steps"]):
            idx = torch.randint(0, len(x), (s["batch"],), generator=gen)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = float((model(to_input(he)).argmax(1).numpy() == yhe).mean())
        return model.requires_grad_(False), acc

    def key(self) -> str:
        """The classifier's name: a hash of its settings and, except for the digits (a fixed split), its data."""
        key = hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()[:16]
        if self.name != "digits":  # the key also names the data (the digits' key predates this; their split is fixed)
            key = hashlib.sha256(key.encode() + self.data()[0].tobytes()).hexdigest()[:16]
        return f"{self.name}-classifier-{key}.pt"

    def shipped(self) -> bool:
        """Whether this set's classifier ships with the package (same settings, same data)."""
        return (SHIPPED_DIR / self.key()).exists()

    def classifier(self) -> tuple[SmallClassifier, float]:
        """The classifier and its held-out accuracy: the shipped one, else trained once and cached on disk; both
        kept in memory."""
        name = self.key()
        if name in self._cache:
            return self._cache[name]
        path = SHIPPED_DIR / name if self.shipped() else cache_dir() / name
        if path.exists():
            blob = read_torch_file(path, f"{'shipped' if self.shipped() else 'cached'} {self.name} classifier")
            model = self._new()
            model.load_state_dict(blob["state"])
            result = (model.eval().requires_grad_(False), float(blob["accuracy"]))
        else:
            result = self.train_classifier()
            atomic_torch_save({"state": result[0].state_dict(), "accuracy": result[1]}, path)
        self._cache[name] = result
        return result

    def ship(self, folder: Path = SHIPPED_DIR) -> Path:
        """Write this set's classifier (the cached one, else trained now) into ``folder`` for the package."""
        model, acc = self.classifier()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / self.key()
        atomic_torch_save({"state": model.state_dict(), "accuracy": acc}, path)
        return path

    def features(self, images: np.ndarray) -> np.ndarray:
        """The 64-d features [N, 64] (float64) of uint8 images shaped like the set's."""
        model, _ = self.classifier()
        with torch.no_grad():
            return model.features(self._input(images)).double().numpy()

    def predict(self, images: np.ndarray) -> np.ndarray:
        """The classifier's predicted class [N] (int64) of uint8 images shaped like the set's."""
        model, _ = self.classifier()
        with torch.no_grad():
            return model(self._input(images)).argmax(1).numpy()

    def _input(self, images: np.ndarray) -> Tensor:
        want = self.data()[0].shape[1:]
        if images.shape[1:] != want:
            raise ValueError(f"{self.label} needs images [N, {', '.join(map(str, want))}], got {images.shape}")
        return to_input(images)

    def extractor(self) -> FeatureExtractor:
        """The classifier's features as a :class:`FeatureExtractor` (inputs [B, 3, H, W] in [0, 255])."""
        model, _ = self.classifier()
        channels = self.data()[0].shape[3]

        def fn(x: Tensor) -> Tensor:
            return model.features(x[:, :channels] / 127.5 - 1.0)

        return FeatureExtractor(f"{self.name}-classifier", fn, mode="legacy_tensorflow")

    def fd(self, samples: np.ndarray, reference: np.ndarray | None = None) -> float:
        """The distance of uint8 samples to the held-out images (or to ``reference``)."""
        ref = self.data()[2] if reference is None else reference
        return frechet_distance(*feature_stats(self.features(samples)), *feature_stats(self.features(ref)))

    def floor(self, n: int, repeats: int = 3, seed: int = 0) -> float:
        """The finite-sample floor: the distance of n real *training* images to the held-out images."""
        tr = self.data()[0]
        rng = np.random.default_rng(seed)
        return float(np.mean([self.fd(tr[rng.choice(len(tr), size=min(n, len(tr)), replace=False)])
                              for _ in range(repeats)]))

    def protocol(self, n: int) -> dict[str, Any]:
        """What a number of this metric means (printed beside it)."""
        _, acc = self.classifier()
        origin = "shipped with cmtutor" if self.shipped() else "trained on this machine"
        return {"metric": f"{self.label} (Fréchet distance on a small {self.name} classifier's features; not an FID)",
                "features": f"64-d hidden layer of a 2-conv classifier of {self.labels}, held-out accuracy {acc:.3f}",
                "reference": self.reference, "samples": int(n),
                "classifier": f"{origin} ({self.key()})"}
