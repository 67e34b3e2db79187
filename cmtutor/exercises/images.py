"""Exercises of notebooks 07–08: the weights an EMA keeps, the Fréchet distance, EDM's half-life EMA, pixels."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from cmtutor.core.ema import halflife_decay, snapshot_weights
from cmtutor.data.images import ImageScaler, to_uint8
from cmtutor.evaluation.fid import feature_stats, frechet_distance
from cmtutor.exercises import Exercise, Mistake, register


def _ex_7_1(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    yield ([0.5, 0.5, 0.9],), {}
    yield ([0.0, 0.3, 0.999, 0.9, 0.99],), {}
    yield ((0.9 + 0.1 * torch.rand(40, generator=gen, dtype=torch.float64)).tolist(),), {}


def _hidden_7_1(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    yield ([0.999] * 300,), {}
    yield ([0.2],), {}


def _ex_7_2(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    for n, d in ((50, 2), (200, 5), (80, 8)):
        a = torch.randn(n, d, generator=gen, dtype=torch.float64).numpy()
        b = (torch.randn(n, d, generator=gen, dtype=torch.float64) * 1.5 + 0.3).numpy()
        yield (a, b @ np.triu(np.ones((d, d))) / d), {}
    same = torch.randn(60, 4, generator=gen, dtype=torch.float64).numpy()
    yield (same, same.copy()), {}  # the same set twice: 0


def fd_of_features(a: np.ndarray, b: np.ndarray) -> float:
    """Reference of 7.2: the Fréchet distance between Gaussians fitted to two feature sets [N, D]."""
    return frechet_distance(*feature_stats(a), *feature_stats(b))


def _biased_cov(a: np.ndarray, b: np.ndarray) -> float:
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False, bias=True),
                            b.mean(0), np.cov(b, rowvar=False, bias=True))


def _cov_of_rows(a: np.ndarray, b: np.ndarray) -> float:
    d = a.shape[1]
    return frechet_distance(a.mean(0), np.cov(a.T, rowvar=False)[:d, :d], b.mean(0), np.cov(b.T, rowvar=False)[:d, :d])


def _ex_8_1(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    for batch, seen, h, ramp in ((512, 0, 500.0, 0.05), (512, 512 * 1000, 500.0, 0.05), (512, 2e8, 500.0, 0.05),
                                 (128, 1e6, 10.0, None), (64, 3e5, 50.0, 0.1)):
        yield (batch, seen, h, ramp), {}


def _pixels_case(gen: torch.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    """Model-space images whose pixel values u = (x + 1)·127.5 lie in [−20, 275], at least 0.2 from a rounding
    tie, so float32 and float64 answers round alike."""
    u = torch.randint(-20, 276, shape, generator=gen).double()
    frac = torch.tensor([0.0, 0.2, 0.3, -0.3], dtype=torch.float64)
    u = u + frac[torch.randint(0, 4, shape, generator=gen)]
    return u / 127.5 - 1.0


def _ex_8_2(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    yield (_pixels_case(gen, (2, 3, 4, 5)),), {}
    yield (_pixels_case(gen, (3, 1, 8, 8)),), {}
    yield (torch.tensor([-1.0, -1.05, 0.2, 1.0, 1.05], dtype=torch.float64).reshape(1, 1, 1, 5),), {}


def halflife_steps(batch: int, seen: float, h: float, ramp: float | None) -> float:
    """A wrong unit, for a hint: the half-life taken as a number of steps instead of images."""
    return min(h * 1000, seen * ramp) if ramp is not None else h * 1000


def model_to_pixels(x: torch.Tensor) -> np.ndarray:
    """Reference of 8.2: model-space images x ∈ [−1, 1] [N, C, H, W] → uint8 pixels [N, H, W, C]."""
    return to_uint8(ImageScaler().decode(x))


def _no_clip(x: torch.Tensor) -> np.ndarray:
    return np.rint(((x + 1) * 127.5).numpy()).astype(np.uint8).transpose(0, 2, 3, 1)


def _floor(x: torch.Tensor) -> np.ndarray:
    return np.clip(np.floor(((x + 1) * 127.5).numpy()), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def _channels_first(x: torch.Tensor) -> np.ndarray:
    return np.clip(np.rint(((x + 1) * 127.5).numpy()), 0, 255).astype(np.uint8)


def _register() -> None:
    register(Exercise("7.1", "the weight an EMA gives each snapshot of the weights", snapshot_weights, _ex_7_1,
                      hidden=_hidden_7_1, rtol=1e-6, atol=1e-9,
                      mistakes=(Mistake(lambda d: snapshot_weights(d).flip(0), "the newest snapshot θ_k gets "
                                        "1 − d_k and the oldest θ_0 the product of all the decays, not the reverse"),)))
    register(Exercise("7.2", "the Fréchet distance between two feature sets", fd_of_features, _ex_7_2,
                      rtol=1e-5, atol=1e-6, guards=(fd_of_features, frechet_distance, feature_stats),
                      mistakes=(Mistake(_biased_cov, "the covariance is the unbiased one, divided by N − 1 "
                                        "(np.cov's default), as clean-fid computes it"),
                                Mistake(lambda a, b: float(((a.mean(0) - b.mean(0)) ** 2).sum()),
                                        "the means are half of it: add the trace term of the covariances"))))
    register(Exercise("8.1", "EDM's EMA decay from a half-life in images", halflife_decay, _ex_8_1, rtol=1e-9, atol=0,
                      mistakes=(Mistake(lambda b, seen, h, r: 0.5 ** (b / (h * 1000)), "the ramp-up caps the "
                                        "half-life at rampup × images seen (when rampup is not None)"),
                                Mistake(lambda b, seen, h, r: 0.5 ** (1 / halflife_steps(b, seen, h, r)),
                                        "the half-life is in images (kimg × 1000), one step sees batch images"))))
    register(Exercise("8.2", "model-space images to uint8 pixels", model_to_pixels, _ex_8_2, rtol=0, atol=0,
                      mistakes=(Mistake(_no_clip, "clip to 0…255 before the cast: uint8 wraps around (−1 "
                                        "becomes 255, 256 becomes 0), so a pixel just too dark turns white"),
                                Mistake(_floor, "round to the nearest integer (np.rint), do not truncate"),
                                Mistake(_channels_first, "image files and plots hold [N, H, W, C]: move the "
                                        "channel axis last"))))


_register()
