"""FID through clean-fid, with the protocol recorded beside every number.

The Fréchet Inception Distance (Heusel et al. 2017) compares the Gaussians fitted to Inception-v3 pool
features of generated and reference images: FID = ‖μ_g − μ_r‖² + Tr(Σ_g + Σ_r − 2(Σ_g Σ_r)^½).
cmtutor uses clean-fid (Parmar et al. 2022) for the network (the torchscript Inception of
StyleGAN2-ADA / EDM, ``inception-2015-12-05.pt``), its resizing modes and its Fréchet distance:

* ``legacy_tensorflow`` (default): the network resizes 32×32 → 299×299 itself like the original
  TensorFlow code. This is the protocol of the CM paper's CIFAR-10 numbers (``jcm/metrics.py``) and is
  equivalent to EDM / ECT / TCM's ``fid50k_full``: 50,000 samples against the 50,000 training images.
* ``clean``: clean-fid's own protocol (PIL bicubic resizing outside the network); numbers differ
  slightly and are not comparable with the papers' tables.

Inception weights: clean-fid downloads them on first use. Where it cannot (no network), give a local
copy: ``--inception FILE`` on the command line, ``$CMTUTOR_INCEPTION``, or
``<data root>/fid/inception-2015-12-05.pt``. Reference statistics are computed once and cached under
``<data root>/fid/``. Any feature extractor can stand in for Inception (the tests use a tiny one):
numbers from another extractor are *not* FIDs and are labelled with the extractor's name.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from cmtutor.data.root import data_root
from cmtutor.errors import UserError

INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
MODES = ("legacy_tensorflow", "clean", "legacy_pytorch")
DEFAULT_MODE = "legacy_tensorflow"
#: The papers' sample count; smaller counts are labelled (e.g. "FID-5k") because FID is biased upwards.
FULL_SAMPLES = 50_000


@dataclass
class FeatureExtractor:
    """A feature network and the clean-fid resizing mode that prepares its input.

    ``fn`` maps a float batch [B, 3, H', W'] with values in [0, 255] to features [B, D]; ``mode`` decides
    H', W' (``clean``/``legacy_pytorch``: 299×299 outside the network; ``legacy_tensorflow``: as is).
    ``name`` identifies the extractor in protocols and cache files.
    """

    name: str
    fn: Callable[[Tensor], Any]
    mode: str = DEFAULT_MODE
    device: torch.device = torch.device("cpu")

    @property
    def is_inception(self) -> bool:
        return self.name.startswith("inception")

    def features(self, images: np.ndarray | Iterable[np.ndarray], batch_size: int = 200) -> np.ndarray:
        """Features [N, D] of uint8 images [N, H, W, C] (or of an iterable of such batches)."""
        from cleanfid.resize import build_resizer

        resize = build_resizer(self.mode)
        batches = (images[i:i + batch_size] for i in range(0, len(images), batch_size)) \
            if isinstance(images, np.ndarray) else images
        out = []
        for b in batches:
            if b.shape[-1] == 1:
                b = np.repeat(b, 3, axis=-1)  # grey → RGB, as PIL's convert("RGB") does
            if self.mode == "legacy_tensorflow":
                x = torch.from_numpy(b.transpose(0, 3, 1, 2).astype(np.float32))
            else:
                x = torch.from_numpy(np.stack([resize(img).transpose(2, 0, 1) for img in b]).astype(np.float32))
            with torch.no_grad():
                f = self.fn(x.to(self.device))
            out.append(f.detach().float().cpu().numpy() if isinstance(f, Tensor) else np.asarray(f, np.float32))
        return np.concatenate(out).astype(np.float64)


def find_inception(weights: str | os.PathLike[str] | None = None) -> Path | None:
    """A local Inception weights file: ``weights``, ``$CMTUTOR_INCEPTION``, ``<data root>/fid/``, clean-fid's cache."""
    if weights is not None:
        p = Path(weights)
        if not p.is_file():
            raise UserError(f"--inception {p}: file not found (expected clean-fid's {INCEPTION_FILE})")
        return p
    cands = [os.environ.get("CMTUTOR_INCEPTION"), data_root() / "fid" / INCEPTION_FILE,
             Path(tempfile.gettempdir()) / INCEPTION_FILE]
    for c in cands:
        if c and Path(c).is_file():
            return Path(c)
    return None


def inception_missing_message(reason: str) -> str:
    return (f"FID needs clean-fid's Inception weights ({INCEPTION_FILE}), which are not here and could not be "
            f"downloaded ({reason}). Download {INCEPTION_URL} on a machine with network access and pass "
            f"--inception FILE, or put it at {data_root() / 'fid' / INCEPTION_FILE}")


def inception(mode: str = DEFAULT_MODE, weights: str | os.PathLike[str] | None = None, device: str = "cpu",
              allow_download: bool = True) -> FeatureExtractor:
    """clean-fid's Inception-v3 feature extractor (2048-d pool features) in ``mode``.

    Uses a local weights file when one is found (:func:`find_inception`), otherwise lets clean-fid
    download it into ``<data root>/fid/``; :class:`UserError` with instructions when neither works.
    """
    from cleanfid.inception_torchscript import InceptionV3W

    if mode not in MODES:
        raise UserError(f"unknown FID mode {mode!r}; choose one of: {', '.join(MODES)}")
    path = find_inception(weights)
    if path is None:
        if not allow_download or os.environ.get("CMTUTOR_OFFLINE"):
            raise UserError(inception_missing_message("downloads are off"))
        from cleanfid.downloads_helper import check_download_inception

        folder = data_root() / "fid"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = Path(check_download_inception(fpath=str(folder)))
        except Exception as exc:
            partial = folder / INCEPTION_FILE
            if partial.exists() and partial.stat().st_size < 1_000_000:
                partial.unlink()
            raise UserError(inception_missing_message(f"{exc.__class__.__name__}: {exc}")) from None
    dev = torch.device(device)
    with tempfile.TemporaryDirectory() as tmp:  # InceptionV3W loads <folder>/inception-2015-12-05.pt
        link = Path(tmp) / INCEPTION_FILE
        link.symlink_to(path.resolve())
        try:
            net = InceptionV3W(tmp, download=False, resize_inside=(mode == "legacy_tensorflow")).to(dev).eval()
        except Exception as exc:
            raise UserError(f"{path}: not a usable Inception weights file ({exc.__class__.__name__}); expected "
                            f"clean-fid's {INCEPTION_FILE} from {INCEPTION_URL}") from None
    return FeatureExtractor(f"inception-2015-12-05 ({mode})", net, mode, dev)


# --- statistics and distance -------------------------------------------------------------------------

def feature_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of features [N, D] (the unbiased covariance, as clean-fid)."""
    return feats.mean(0), np.cov(feats, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2(Σ1Σ2)^½) (clean-fid's numerically stable implementation)."""
    from cleanfid.fid import frechet_distance as fd

    with warnings.catch_warnings():  # clean-fid passes scipy's deprecated ``disp`` argument
        warnings.simplefilter("ignore", DeprecationWarning)
        return float(fd(np.asarray(mu1), np.asarray(sigma1), np.asarray(mu2), np.asarray(sigma2)))


def _digest(images: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(images).data).hexdigest()[:12]


def reference_stats(images: np.ndarray, label: str, extractor: FeatureExtractor, cache: bool = True
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Feature statistics of reference images, computed once and cached under ``<data root>/fid/``.

    The cache file is named by ``label`` (e.g. ``cifar10-train``), the number of images, a digest of
    their bytes and the extractor, so a different data set or extractor never reuses stale numbers.
    Extractors that are not Inception are not cached (tests pass throwaway ones).
    """
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label)
    ext = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in extractor.name)
    path = data_root() / "fid" / f"{safe}-{len(images)}-{_digest(images)}-{ext}.npz"
    if cache and extractor.is_inception and path.exists():
        with np.load(path) as f:
            return f["mu"], f["sigma"]
    mu, sigma = feature_stats(extractor.features(images))
    if cache and extractor.is_inception:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez(tmp, mu=mu, sigma=sigma)
        os.replace(tmp, path)
    return mu, sigma


def metric_label(n_samples: int, extractor: FeatureExtractor) -> str:
    """"FID" for 50k Inception samples, "FID-5k" style for fewer, "FD (<extractor>)" for other features."""
    if not extractor.is_inception:
        return f"FD ({extractor.name}; not an FID)"
    if n_samples >= FULL_SAMPLES:
        return "FID"
    return f"FID-{n_samples / 1000:g}k"


def fid(samples: np.ndarray | Iterable[np.ndarray], reference: np.ndarray, reference_label: str,
        extractor: FeatureExtractor, protocol: dict[str, Any] | None = None) -> dict[str, Any]:
    """FID of uint8 samples against uint8 reference images, with its protocol.

    Returns ``{"value": float, "protocol": {...}}``; ``protocol`` holds what makes the number
    comparable: metric label, mode, feature extractor, reference (label and size), sample count,
    and whatever the caller adds (method, EMA or raw weights, sampler steps, seed, hardware).
    """
    feats = extractor.features(samples)
    mu, sigma = feature_stats(feats)
    ref_mu, ref_sigma = reference_stats(reference, reference_label, extractor)
    value = frechet_distance(mu, sigma, ref_mu, ref_sigma)
    proto = {"metric": metric_label(len(feats), extractor), "mode": extractor.mode, "features": extractor.name,
             "reference": reference_label, "reference_size": int(len(reference)), "samples": int(len(feats)),
             **(protocol or {})}
    return {"value": value, "protocol": proto}


def format_protocol(proto: dict[str, Any]) -> str:
    """One line: ``metric; key=value; …`` for printing beside a number."""
    rest = "; ".join(f"{k}={v}" for k, v in proto.items() if k != "metric")
    return f"{proto.get('metric', '')}; {rest}"


def random_features(seed: int = 0, dim: int = 64) -> FeatureExtractor:
    """A fixed random convolutional network as a stand-in feature extractor, for demonstrations only.

    Its Fréchet distances are labelled ``FD (random-conv stand-in …; not an FID)``: they show the
    mechanics (features → Gaussians → Fréchet distance → protocol) where Inception weights are missing,
    and mean nothing about sample quality in the papers' sense.
    """
    g = torch.Generator().manual_seed(seed)
    w1 = torch.randn(16, 3, 3, 3, generator=g) / 3.0
    w2 = torch.randn(32, 16, 3, 3, generator=g) / 12.0
    w3 = torch.randn(dim, 32 * 16, generator=g) / 22.6

    def fn(x: Tensor) -> Tensor:
        h = F.interpolate(x / 127.5 - 1.0, size=(32, 32), mode="bilinear", align_corners=False)
        h = torch.tanh(F.conv2d(h, w1, stride=2, padding=1))
        h = torch.tanh(F.conv2d(h, w2, stride=2, padding=1))
        return F.adaptive_avg_pool2d(h, 4).flatten(1) @ w3.T

    return FeatureExtractor(f"random-conv stand-in (seed {seed})", fn, "legacy_tensorflow")
