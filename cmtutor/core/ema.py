"""Exponential moving averages of weights, through ``torch.optim.swa_utils.AveragedModel``.

Two kinds of EMA appear in consistency models (Song et al. 2023, Section 3 and App. C):

* the *sampling* EMA (decay 0.9999 on CIFAR-10): a smoothed copy used to generate;
* the *target network* θ⁻ of CD and CT, θ⁻ ← μθ⁻ + (1−μ)θ, whose rate μ(k) may change every step.

Both are AveragedModel instances; :func:`ema_update` sets the decay for this step and averages.

A constant sampling decay from step 1 keeps the early weights for a long time (with 0.999, 37 % of the
step-1 weights at step 1000), which ruins short runs. :func:`warmed_up_decay` ramps it up as
1 − (1 + k)^(−2/3), capped at the configured decay: the EMA of the official GC code (ema-pytorch,
``inv_gamma = 1, power = 2/3``); see docs/defaults.md#sampling-ema-warm-up.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


#: The warm-up's power: the averaging window grows as about k^(2/3) steps (ema-pytorch's default for long runs).
WARMUP_POWER = 2.0 / 3.0


def warmed_up_decay(decay: float, step: int, power: float = WARMUP_POWER) -> float:
    """The sampling EMA's decay after ``step`` optimiser steps: min(decay, 1 − (1 + step)^(−power)).

    0 at step 0 (the EMA copies the first weights), 0.99 at step 1000, ``decay`` from
    step (1 − decay)^(−1/power) − 1 on (31,622 steps for 0.999, 10⁶ for 0.9999).
    """
    return min(decay, 1.0 - (1.0 + step) ** (-power))


def snapshot_weights(decays: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """The weight an EMA gives each snapshot θ_0 … θ_k of the weights after k updates with decays d_1 … d_k.

    The EMA starts as θ_0 and update j sets ema ← d_j·ema + (1 − d_j)·θ_j, so θ_0 keeps Π_i d_i and θ_j
    (j ≥ 1) gets (1 − d_j)·Π_{i>j} d_i; the k + 1 weights sum to one. (AveragedModel's first update copies
    the weights, so in a training run θ_0 is the model after the first step.) Notebook 07, Exercise 7.1.
    """
    d = torch.as_tensor(decays, dtype=torch.float64).flatten()
    later = torch.cat([torch.cumprod(d.flip(0), 0).flip(0)[1:], d.new_ones(1)]) if len(d) else d
    return torch.cat([d.prod().reshape(1), (1 - d) * later])


def halflife_decay(batch: int, images_seen: float, halflife_kimg: float = 500.0,
                   rampup: float | None = 0.05) -> float:
    """EDM's per-step EMA decay from a half-life in images (Karras et al. 2022, Appendix F; their training loop's
    ``ema_halflife_kimg`` and ``ema_rampup_ratio``).

    After h images the old average's weight halves: β = 0.5^(B/h) per step of B images, with the half-life h
    capped at ``rampup`` × the images seen so far, so early averages forget fast. Notebook 08, Exercise 8.1.
    """
    h = halflife_kimg * 1000.0
    if rampup is not None:
        h = min(h, images_seen * rampup)
    return 0.5 ** (batch / max(h, 1e-8))


def make_ema(model: nn.Module, decay: float) -> AveragedModel:
    """An AveragedModel copy of ``model`` averaging parameters *and* buffers with the given decay."""
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def ema_update(ema: AveragedModel, model: nn.Module, decay: float | None = None) -> None:
    """ema ← decay·ema + (1 − decay)·model (optionally with a new decay for this step)."""
    if decay is not None:
        ema.multi_avg_fn = get_ema_multi_avg_fn(decay)
    ema.update_parameters(model)
