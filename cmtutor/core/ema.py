"""Exponential moving averages of weights, through ``torch.optim.swa_utils.AveragedModel``.

Two kinds of EMA appear in consistency models (Song et al. 2023, Section 3 and App. C):

* the *sampling* EMA (decay 0.9999 on CIFAR-10): a smoothed copy used to generate;
* the *target network* θ⁻ of CD and CT, θ⁻ ← μθ⁻ + (1−μ)θ, whose rate μ(k) may change every step.

Both are AveragedModel instances; :func:`ema_update` sets the decay for this step and averages.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


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
