"""The diffusion teacher: an EDM denoiser trained with the denoising loss (Karras et al. 2022).

Noise levels are drawn lognormally, ln σ ~ N(P_mean, P_std²) (EDM Table 1: −1.2 and 1.2), and the loss
is λ(σ)·‖D_θ(x + σn, σ) − x‖² with λ(σ) = (σ² + σ_d²)/(σσ_d)². Samples come from the probability-flow
ODE (``cmtutor.core.solvers.sample_ode``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from cmtutor.core.losses import denoising_loss
from cmtutor.core.schedules import lognormal_sigmas
from cmtutor.methods.base import Method, Nets
from cmtutor.methods.hparams import Hparams


@dataclass(frozen=True)
class DiffusionHparams(Hparams):
    """EDM's lognormal training levels: ln σ ~ N(p_mean, p_std²) (Karras et al. 2022, Table 1)."""

    p_mean: float = -1.2
    p_std: float = 1.2


class Diffusion(Method):
    """EDM denoiser training (the teacher of CD and Direct CM)."""

    name = "diffusion"
    parameterization = "edm"
    ode_sampling = True

    hparams_type = DiffusionHparams

    def loss(self, nets: Nets, x: Tensor, step: int, drawn: Any = None) -> tuple[Tensor, dict[str, Tensor | float]]:
        sigma = lognormal_sigmas(x.shape[0], self.hp.p_mean, self.hp.p_std, device=x.device)
        noise = torch.randn_like(x)
        loss = denoising_loss(nets.model, x, sigma, noise, self.noise.sigma_data)
        return loss, {"loss": loss.detach()}
