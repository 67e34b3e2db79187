"""Consistency distillation (CD), Song et al. 2023, Algorithm 2.

Pairs are adjacent levels of an N-level Karras grid, drawn uniformly. The point at the larger level is
x_hi = x + σ_{n+1}·z; the point at the smaller level comes from **one solver step of the teacher's PF-ODE**
(Heun by default), x̂_lo = Φ(x_hi; σ_{n+1} → σ_n). Loss: d(f_θ(x_hi, σ_{n+1}), sg f_θ⁻(x̂_lo, σ_n)).

θ⁻ is an EMA of θ with rate μ (μ = 0, the CIFAR-10 setting, means θ⁻ = sg(θ)). The student may start
from the teacher's weights (the CIFAR-10 setting): both use the same network, only the scalings differ.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from cmtutor.losses import get_distance
from cmtutor.methods.base import Method, Nets, consistency_step, expand
from cmtutor.samplers import Solver, ode_step
from cmtutor.schedules import karras_sigmas


def cd_target(teacher: nn.Module, target_net: nn.Module, x_hi: Tensor, sigma_hi: Tensor, sigma_lo: Tensor,
              solver: Solver = "heun") -> Tensor:
    """The CD target sg f_θ⁻(x̂_lo, σ_lo), with x̂_lo one teacher PF-ODE step from x_hi (Song et al. 2023, Eq. 7)."""
    with torch.no_grad():
        x_lo = ode_step(teacher, x_hi, sigma_hi, sigma_lo, solver)
        return target_net(x_lo, sigma_lo)


class ConsistencyDistillation(Method):
    """CD from a frozen EDM diffusion teacher."""

    name = "cd"
    teacher_methods = ("diffusion",)
    requires_teacher = True

    @classmethod
    def default_hparams(cls, data_kind: str) -> dict[str, Any]:
        """N = 18 levels on images (the CIFAR-10 setting of Song et al. 2023); N = 10 on 2D data, where the
        teacher's Heun steps stay accurate over the wider gaps and fewer chained pairs accumulate less
        consistency error (two-ring ``rings.npy``, 5000 steps, one-step W2/floor over 20 draws: N = 10 1.12 ± 0.05,
        N = 18 1.66 ± 0.07, N = 40 2.74 ± 0.11)."""
        return {"num_scales": 10 if data_kind == "vector" else 18, "solver": "heun", "target_ema": 0.0,
                "distance": "l2" if data_kind == "vector" else "pseudo_huber", "init_from_teacher": True}

    def __init__(self, hp: dict[str, Any], noise: Any, total_steps: int, dim: int) -> None:
        super().__init__(hp, noise, total_steps, dim)
        self.sigmas = karras_sigmas(self.hp["num_scales"], noise.sigma_min, noise.sigma_max, noise.rho).float()
        self.distance = get_distance(self.hp["distance"], dim)

    def uses_target_network(self) -> bool:
        return self.hp["target_ema"] > 0

    def target_decay(self, step: int) -> float:
        return float(self.hp["target_ema"])

    def loss(self, nets: Nets, x: Tensor, step: int) -> tuple[Tensor, dict[str, Tensor | float]]:
        assert nets.teacher is not None, "CD needs a teacher"
        sig = self.sigmas.to(x.device)
        n = torch.randint(0, len(sig) - 1, (x.shape[0],), device=x.device)
        s_lo, s_hi = sig[n], sig[n + 1]
        z = torch.randn_like(x)
        x_hi = x + expand(s_hi, x) * z
        target_net = nets.target if nets.target is not None else nets.model

        teacher = nets.teacher
        loss, _ = consistency_step(nets.model, x_hi, s_hi,
                                   lambda: cd_target(teacher, target_net, x_hi, s_hi, s_lo, self.hp["solver"]),
                                   torch.ones_like(s_hi), self.distance)
        return loss, {"loss": loss.detach()}
