"""Exercises of notebook 09: the sCM tangent and the MeanFlow target (docs/continuous.md)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from cmtutor.core import meanflow as mf
from cmtutor.core import trigflow as tf
from cmtutor.exercises import Exercise, register


def toy_trig_network(x_scaled: Tensor, t: Tensor) -> Tensor:
    """A fixed smooth function of (x_t/σ_d, t) standing in for a TrigFlow network F in the checkers."""
    tt = t.reshape(-1, *([1] * (x_scaled.ndim - 1)))
    return torch.tanh(x_scaled) * torch.cos(tt) + 0.3 * torch.sin(2 * tt) * x_scaled.roll(1, dims=-1)


def toy_average_velocity(z: Tensor, r: Tensor, t: Tensor) -> Tensor:
    """A fixed smooth function of (z, r, t) standing in for a MeanFlow network u in the checkers."""
    rr, tt = (c.reshape(-1, *([1] * (z.ndim - 1))) for c in (r, t))
    return torch.sin(z) * (1 + tt) + 0.5 * (tt - rr) * z.roll(1, dims=-1) ** 2


def _ex_9_1(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    for sd, warmup in ((1.0, 1.0), (0.5, 1.0), (0.5, 0.3)):
        t = torch.rand(48, generator=gen, dtype=torch.float64) * 1.5 + 0.02
        x_t = torch.randn(48, 2, generator=gen, dtype=torch.float64)
        dxt_dt = torch.randn(48, 2, generator=gen, dtype=torch.float64)
        yield (toy_trig_network, x_t, dxt_dt, t, sd, warmup), {}


def _ex_9_2(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    for same in (0.0, 0.5):
        t = torch.rand(48, generator=gen, dtype=torch.float64) * 0.9 + 0.05
        r = t * torch.rand(48, generator=gen, dtype=torch.float64)
        r = torch.where(torch.rand(48, generator=gen, dtype=torch.float64) < same, t, r)
        z = torch.randn(48, 2, generator=gen, dtype=torch.float64)
        v = torch.randn(48, 2, generator=gen, dtype=torch.float64)
        yield (toy_average_velocity, z, r, t, v), {}


def _register() -> None:
    register(Exercise("9.1", "the sCM tangent g (Algorithm 1) through one JVP",
                      lambda f, x, dx, t, sd, w: tf.consistency_tangent(f, x, dx, t, sd, w)[1], _ex_9_1, points=2,
                      guards=(tf.consistency_tangent,)))
    register(Exercise("9.2", "the MeanFlow target v − (t − r)·du/dt through one JVP", mf.identity_target, _ex_9_2,
                      points=2))


_register()
