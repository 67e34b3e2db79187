"""Exercises of notebooks 07–08: attention over pixels, the Fréchet distance, CIFAR-10 rows, MFU."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from cmtutor.data.cifar10 import batch_to_images
from cmtutor.evaluation.fid import frechet_distance
from cmtutor.exercises import Exercise, register
from cmtutor.hardware.accel import mfu


def _ex_7_1(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    for b, h, n, d in ((2, 1, 16, 8), (1, 4, 64, 16), (3, 2, 4, 32)):
        q, k, v = (torch.randn(b, h, n, d, generator=gen, dtype=torch.float64) for _ in range(3))
        yield (q, k, v), {}


def _spd(gen: torch.Generator, d: int) -> np.ndarray:
    a = torch.randn(d, d, generator=gen, dtype=torch.float64).numpy()
    return a @ a.T / d + 0.1 * np.eye(d)


def _ex_7_2(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    for d in (2, 3, 8):
        mu1 = torch.randn(d, generator=gen, dtype=torch.float64).numpy()
        mu2 = torch.randn(d, generator=gen, dtype=torch.float64).numpy()
        yield (mu1, _spd(gen, d), mu2, _spd(gen, d)), {}
    s = _spd(gen, 4)
    yield (np.zeros(4), s, np.zeros(4), s), {}  # identical Gaussians: 0


def _ex_8_1(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    for n in (1, 5):
        yield (torch.randint(0, 256, (n, 3072), generator=gen, dtype=torch.uint8).numpy(),), {}


def _ex_8_2(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    yield (168.2e9, 2000.0, 989.0), {}
    yield (42.4e9, 30000.0, 989.0), {}
    yield (252.0e9, 1.5, 0.5), {}


def _reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.scaled_dot_product_attention(q, k, v)


def _register() -> None:
    register(Exercise("7.1", "self-attention over the pixels, softmax(QKᵀ/√d)·V", _reference_attention, _ex_7_1,
                      rtol=1e-6, atol=1e-8, guards=(torch.nn.functional.scaled_dot_product_attention,)))
    register(Exercise("7.2", "the Fréchet distance between two Gaussians", frechet_distance, _ex_7_2,
                      rtol=1e-5, atol=1e-6))
    register(Exercise("8.1", "CIFAR-10 rows [N, 3072] to images [N, 32, 32, 3]", batch_to_images, _ex_8_1,
                      rtol=0, atol=0))
    register(Exercise("8.2", "model FLOPs utilisation", mfu, _ex_8_2, rtol=1e-9, atol=0))


_register()
