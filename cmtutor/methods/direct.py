"""Direct consistency models (Direct CM), Vouitsis et al. 2024 ("Inconsistencies in consistency models:
better ODE solving does not imply better samples").

Consistency distillation regresses f_θ(x_t, t) onto its *own* prediction one teacher step earlier,
sg f_θ⁻(Φ(x_t; t → t'), t'). Direct CM removes the self-target: it regresses directly onto the teacher's
**full** PF-ODE solution from x_t,

    L = E ‖f_θ(x_t, t) − Φ_teacher(x_t; t → ε)‖²,

solved here with Heun (``solver``) in ``ode_steps`` steps on a Karras grid from each sample's own t down
to σ_min = ε (the official code uses up to 100 DDIM steps from a batch-wide schedule). Times are drawn as
in CD: x_t = x + t·z with t uniform over the upper N − 1 levels of an N-level Karras grid, so CD and
Direct CM see the same noisy points and differ only in the target. No target network, no EMA target.

The paper's finding: Direct CM has a smaller ODE-solving error (distance to the teacher's solution from
the same noise) than CD, yet worse samples (FID). Notebook 06 measures both in 2D.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from cmtutor.core.solvers import Solver, ode_step
from cmtutor.methods.base import ConsistencyHparams, ConsistencyMethod, Draw, Nets
from cmtutor.methods.cd import ConsistencyDistillation


def per_sample_karras(sigma_start: Tensor, sigma_end: float, steps: int, rho: float = 7.0) -> Tensor:
    """Decreasing Karras levels from each sample's σ_start to σ_end: [B, steps + 1] (Karras et al. 2022, Eq. 5)."""
    j = torch.arange(steps + 1, dtype=torch.float64, device=sigma_start.device) / steps
    hi = sigma_start.double()[:, None] ** (1 / rho)
    lo = sigma_end ** (1 / rho)
    return ((hi + j[None, :] * (lo - hi)) ** rho).to(sigma_start.dtype)


@torch.no_grad()
def direct_target(teacher: nn.Module, x_t: Tensor, sigma_t: Tensor, sigma_min: float, steps: int = 16,
                  solver: Solver = "heun", rho: float = 7.0) -> Tensor:
    """The Direct CM target Φ(x_t; t → ε): the teacher's PF-ODE solved from each x_t to σ_min."""
    levels = per_sample_karras(sigma_t, sigma_min, steps, rho)
    x = x_t
    for j in range(steps):
        x = ode_step(teacher, x, levels[:, j], levels[:, j + 1], solver)
    return x


@dataclass(frozen=True)
class DirectHparams(ConsistencyHparams):
    """Direct CM's settings: CD's grid and solver, the number of teacher ODE steps of its target; no θ⁻."""

    num_scales: int = 18
    ode_steps: int = 16
    solver: Solver = "heun"
    init_from_teacher: bool = True


class DirectConsistencyModel(ConsistencyDistillation):
    """Direct CM: CD's noisy points (its pair draw), regressed onto the teacher's full ODE solution instead of
    the self-target; no target network."""

    name = "direct"
    hparams_type = DirectHparams

    @classmethod
    def default_hparams(cls, data_kind: str) -> dict[str, Any]:
        """Squared L2 on 2D data (docs/defaults.md#tcm-and-direct-cm-on-2d), pseudo-Huber on images."""
        hp = cls.hparams_type()
        return (dataclasses.replace(hp, distance="l2") if data_kind == "vector" else hp).to_dict()

    def uses_target_network(self) -> bool:
        return False

    # -- axis 4: λ = 1 (Vouitsis et al. 2024); CD's weighting switch is not Direct CM's --------------------
    weight = ConsistencyMethod.weight

    # -- axis 3: the teacher's PF-ODE solved from x_hi all the way to σ_min -----------------------------
    def target(self, nets: Nets, x0: Tensor, z: Tensor, d: Draw, x_hi: Tensor) -> Tensor:
        assert nets.teacher is not None, "Direct CM needs a diffusion teacher"
        return self.solve(nets.teacher, x_hi, d.s_hi, self.noise.sigma_min, self.hp.ode_steps)

    def solve(self, teacher: nn.Module, x_t: Tensor, sigma_t: Tensor, sigma_min: float, steps: int) -> Tensor:
        """The hook notebook 06's Exercise 6.1 writes: :func:`direct_target` with this run's solver and ρ."""
        return direct_target(teacher, x_t, sigma_t, sigma_min, steps, self.hp.solver, self.noise.rho)
