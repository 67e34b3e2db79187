"""Consistency distillation (CD), Song et al. 2023, Algorithm 2.

Pairs are adjacent levels of an N-level Karras grid, drawn uniformly. The point at the larger level is
x_hi = x + σ_{n+1}·z; the point at the smaller level comes from **one solver step of the teacher's PF-ODE**
(Heun by default), x̂_lo = Φ(x_hi; σ_{n+1} → σ_n). Loss: d(f_θ(x_hi, σ_{n+1}), sg f_θ⁻(x̂_lo, σ_n)).

θ⁻ is an EMA of θ with rate μ (μ = 0, the CIFAR-10 setting, means θ⁻ = sg(θ)). The student may start
from the teacher's weights (the CIFAR-10 setting): both use the same network, only the scalings differ.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from cmtutor.core.losses import Distance, squared_l2
from cmtutor.core.schedules import karras_sigmas
from cmtutor.core.solvers import Solver, ode_step
from cmtutor.methods.base import ConsistencyHparams, ConsistencyMethod, Draw, Nets, expand, pair_weight


def cd_target(teacher: nn.Module, target_net: nn.Module, x_hi: Tensor, sigma_hi: Tensor, sigma_lo: Tensor,
              solver: Solver = "heun") -> Tensor:
    """The CD target sg f_θ⁻(x̂_lo, σ_lo), with x̂_lo one teacher PF-ODE step from x_hi (Song et al. 2023, Eq. 7)."""
    with torch.no_grad():
        x_lo = ode_step(teacher, x_hi, sigma_hi, sigma_lo, solver)
        return target_net(x_lo, sigma_lo)


def cd_loss(model: nn.Module, teacher: nn.Module, x: Tensor, z: Tensor, sigma_lo: Tensor, sigma_hi: Tensor,
            distance: Distance = squared_l2, solver: Solver = "heun") -> Tensor:
    """CD's loss for given draws, θ⁻ = sg(θ) and λ = 1 (Song et al. 2023, Eq. 7; the course's 2D setting).

    The mean over the batch of d(f_θ(x + σ_hi·z, σ_hi), sg f_θ(x̂_lo, σ_lo)), x̂_lo one teacher step from
    x + σ_hi·z down to σ_lo. :class:`ConsistencyDistillation` computes the same through the shared consistency
    step (which also keeps a dropout mask for both passes); notebook 02's exercise has the student write this.
    """
    x_hi = x + expand(sigma_hi, x) * z
    target = cd_target(teacher, model, x_hi, sigma_hi, sigma_lo, solver)
    return distance(model(x_hi, sigma_hi), target).mean()


@dataclass(frozen=True)
class CDHparams(ConsistencyHparams):
    """CD's settings; the defaults are the CIFAR-10 ones of Song et al. 2023 (N = 18, Heun, μ = 0)."""

    num_scales: int = 18
    solver: Solver = "heun"
    #: μ of the target EMA θ⁻ (0: θ⁻ = sg(θ))
    target_ema: float = 0.0
    #: start from the teacher's weights (both use the same network, only the scalings differ)
    init_from_teacher: bool = True
    #: λ of the loss: ``uniform`` (λ = 1, every CD config of the paper) or iCT's ``inv_delta`` λ = 1/(σ_{n+1} − σ_n)
    #: (Song & Dhariwal 2023), the small images' default (docs/defaults.md#cds-weighting-on-the-small-images)
    weighting: Literal["uniform", "inv_delta"] = "uniform"


class ConsistencyDistillation(ConsistencyMethod):
    """CD from a frozen EDM diffusion teacher: a uniform pair of adjacent grid levels, the teacher's ODE step."""

    name = "cd"
    teacher_methods = ("diffusion",)
    requires_teacher = True
    hparams_type = CDHparams

    @classmethod
    def default_hparams(cls, data_kind: str) -> dict[str, Any]:
        """The paper's CIFAR-10 setting on images; N = 10 and squared L2 on 2D data (docs/defaults.md#cd-on-2d)."""
        hp = cls.hparams_type()
        return (dataclasses.replace(hp, num_scales=10, distance="l2") if data_kind == "vector" else hp).to_dict()

    def __init__(self, hp: dict[str, Any], noise: Any, total_steps: int, dim: int) -> None:
        super().__init__(hp, noise, total_steps, dim)
        self.sigmas = karras_sigmas(self.hp.num_scales, noise.sigma_min, noise.sigma_max, noise.rho).float()

    # -- axis 1: adjacent levels (σ_n, σ_{n+1}) of the N-level grid, n uniform ----------------------------
    def times(self, batch: int, device: torch.device, step: int) -> tuple[Tensor, Tensor, None]:
        sig = self.sigmas.to(device)
        n = torch.randint(0, len(sig) - 1, (batch,), device=device)
        return sig[n], sig[n + 1], None

    # -- axis 4: the weighting λ ----------------------------------------------------------------------
    def weight(self, s_lo: Tensor, s_hi: Tensor, boundary: Tensor | None) -> Tensor:
        return pair_weight(self.hp.weighting, s_lo, s_hi)

    # -- axis 3: θ⁻ at the teacher's one-step ODE estimate --------------------------------------------
    def uses_target_network(self) -> bool:
        return self.hp.target_ema > 0

    def target_decay(self, step: int) -> float:
        return self.hp.target_ema

    def target(self, nets: Nets, x0: Tensor, z: Tensor, d: Draw, x_hi: Tensor) -> Tensor:
        assert nets.teacher is not None, "CD needs a teacher"
        return cd_target(nets.teacher, self.target_network(nets), x_hi, d.s_hi, d.s_lo, self.hp.solver)
