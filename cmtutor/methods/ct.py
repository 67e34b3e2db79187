"""Consistency training: CT (Song et al. 2023, Algorithm 3) and improved CT (Song & Dhariwal 2023).

Both draw an adjacent pair (σ_i, σ_{i+1}) of an N(k)-level Karras grid, one noise z, and compare

    f_θ(x + σ_{i+1}·z, σ_{i+1})   with   sg f_θ⁻(x + σ_i·z, σ_i):

the *same* z at both levels, the online network at the *larger* level. This is CD with the teacher's
ODE step replaced by the one-sample estimate D(x_σ, σ) ≈ x, whose Euler step lands exactly on x + σ_i·z.

iCT changes five things, each a switch here so they can be ablated one at a time (notebook 03):

==============  ==============================  =====================================
switch          CT (2023)                       iCT (2023b)
==============  ==============================  =====================================
curriculum      ``adaptive``: N(k) √-growth     ``doubling``: N doubles every K' steps
pairs           ``uniform`` over intervals      ``lognormal`` (P_mean −1.1, P_std 2)
distance        ``l2`` (LPIPS on images)        ``pseudo_huber`` (c = 0.00054√D)
weighting       ``uniform`` λ = 1               ``inv_delta`` λ = 1/(σ_{i+1} − σ_i)
target          ``ema`` θ⁻ with μ(k)            ``online``: θ⁻ = sg(θ), no EMA
==============  ==============================  =====================================

In the hooks of :class:`cmtutor.methods.base.ConsistencyMethod`, CT and iCT set the pair of times (curriculum,
pairs), the target network (EMA or online) and the weighting; the distance is ``hp.distance``. GC and OT
(``cmtutor.methods.coupling``) build on iCT and override only the endpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from cmtutor.core.losses import DistanceName, pseudo_huber
from cmtutor.core.schedules import ct_num_scales, ict_num_scales, karras_sigmas, lognormal_pair_probs
from cmtutor.methods.base import ConsistencyHparams, ConsistencyMethod, Draw, expand, pair_weight

CT_PRESET: dict[str, Any] = {"curriculum": "adaptive", "s0": 2, "s1": 150, "mu0": 0.9, "pairs": "uniform",
                             "distance": "l2", "weighting": "uniform", "target": "ema"}
ICT_PRESET: dict[str, Any] = {"curriculum": "doubling", "s0": 10, "s1": 1280, "mu0": 0.9, "pairs": "lognormal",
                              "distance": "pseudo_huber", "weighting": "inv_delta", "target": "online"}


def ict_loss(model: nn.Module, target_net: nn.Module, x: Tensor, z: Tensor, sigma_lo: Tensor, sigma_hi: Tensor,
             c: float) -> Tensor:
    """iCT's loss for given draws (Song & Dhariwal 2023, Eq. 9 with λ = 1/(σ_hi − σ_lo)).

    The mean over the batch of λ·d(f_θ(x + σ_hi·z, σ_hi), sg f_θ⁻(x + σ_lo·z, σ_lo)), d the pseudo-Huber
    distance with constant c, the *same* z at both levels. :class:`ConsistencyTraining` with iCT's switches
    computes the same through the shared consistency step; notebook 03's exercise has the student write this.
    """
    with torch.no_grad():
        target = target_net(x + expand(sigma_lo, x) * z, sigma_lo)
    weight = 1.0 / (sigma_hi - sigma_lo)
    return (weight * pseudo_huber(model(x + expand(sigma_hi, x) * z, sigma_hi), target, c)).mean()


@dataclass(frozen=True)
class CTHparams(ConsistencyHparams):
    """CT's settings (defaults: CT, Song et al. 2023); iCT is the same fields at :data:`ICT_PRESET`."""

    curriculum: Literal["adaptive", "doubling"] = "adaptive"
    #: N(k) grows from s0 to s1 levels over the run
    s0: int = 2
    s1: int = 150
    #: μ0 of the target EMA's rate μ(k) (``target="ema"``)
    mu0: float = 0.9
    #: the run length μ(k) was designed for (0: μ(k) as written, in absolute steps). A run of T < H steps
    #: uses μ(k)^(H/T), so θ⁻'s time constant is the same share of the run as in an H-step run
    #: (docs/defaults.md#ct-on-images)
    target_horizon: int = 0
    pairs: Literal["uniform", "lognormal"] = "uniform"
    distance: DistanceName = "l2"
    weighting: Literal["uniform", "inv_delta"] = "uniform"
    target: Literal["ema", "online"] = "ema"
    #: the lognormal pair distribution (``pairs="lognormal"``; Song & Dhariwal 2023, Sec. 3.5)
    p_mean: float = -1.1
    p_std: float = 2.0


__all__ = ["CTHparams", "CT_PRESET", "ICT_PRESET", "ConsistencyTraining", "Draw", "ImprovedConsistencyTraining"]


class ConsistencyTraining(ConsistencyMethod):
    """Consistency training (CT, Song et al. 2023, Algorithm 3); every iCT change is a switch (module doc)."""

    name = "ct"
    preset: dict[str, Any] = CT_PRESET
    hparams_type = CTHparams

    @classmethod
    def default_hparams(cls, data_kind: str) -> dict[str, Any]:
        return cls.hparams_type.parse(cls.preset).to_dict()

    def __init__(self, hp: dict[str, Any], noise: Any, total_steps: int, dim: int) -> None:
        super().__init__(hp, noise, total_steps, dim)
        self._grids: dict[int, tuple[Tensor, Tensor]] = {}

    # -- schedule ---------------------------------------------------------------------------------
    def num_scales(self, step: int) -> int:
        """N(k): the number of grid levels at step k."""
        if self.hp.curriculum == "adaptive":
            return ct_num_scales(step, self.total_steps, self.hp.s0, self.hp.s1)
        return ict_num_scales(step, self.total_steps, self.hp.s0, self.hp.s1)

    def grid(self, step: int) -> tuple[Tensor, Tensor]:
        """(ascending Karras levels, pair probabilities) for N(k) levels."""
        n = self.num_scales(step)
        if n not in self._grids:
            sig = karras_sigmas(n, self.noise.sigma_min, self.noise.sigma_max, self.noise.rho)
            if self.hp.pairs == "lognormal":
                probs = lognormal_pair_probs(sig, self.hp.p_mean, self.hp.p_std)
            else:
                probs = torch.full((n - 1,), 1.0 / (n - 1), dtype=torch.float64)
            self._grids[n] = (sig.float(), probs.float())
        return self._grids[n]

    # -- axis 1: adjacent levels of the N(k) grid, uniform or lognormal ----------------------------------
    def times(self, batch: int, device: torch.device, step: int) -> tuple[Tensor, Tensor, None]:
        sig, probs = self.grid(step)
        sig, probs = sig.to(device), probs.to(device)
        i = torch.multinomial(probs, batch, replacement=True)
        return sig[i], sig[i + 1], None

    # -- axis 4: λ = 1 or 1/(σ_{i+1} − σ_i) ------------------------------------------------------------
    def weight(self, s_lo: Tensor, s_hi: Tensor, boundary: Tensor | None) -> Tensor:
        return pair_weight(self.hp.weighting, s_lo, s_hi)

    def sample_pairs(self, step: int, batch: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """(σ_lo, σ_hi, λ) for a batch: adjacent levels σ_i < σ_{i+1} and the loss weight."""
        s_lo, s_hi, boundary = self.times(batch, device, step)
        return s_lo, s_hi, self.weight(s_lo, s_hi, boundary)

    # -- axis 3: θ⁻ an EMA with rate μ(k) (CT) or sg(θ) (iCT) --------------------------------------------
    def uses_target_network(self) -> bool:
        return self.hp.target == "ema"

    def target_decay(self, step: int) -> float:
        """μ(k) = exp(s0·ln μ0 / N(k)) (Song et al. 2023, App. C), scaled to the run by ``target_horizon``.

        The time constant of an EMA with rate μ is −1/ln μ steps; multiplying it by T/H is raising μ to H/T.
        """
        log_mu = self.hp.s0 * math.log(self.hp.mu0) / self.num_scales(step)
        horizon = self.hp.target_horizon
        if horizon > self.total_steps:
            log_mu *= horizon / self.total_steps
        return math.exp(log_mu)

    def logs(self, d: Draw, step: int) -> dict[str, Tensor | float]:
        return {"num_scales": float(self.num_scales(step))}


class ImprovedConsistencyTraining(ConsistencyTraining):
    """Improved consistency training (iCT, Song & Dhariwal 2023): CT with the five switches of the module doc."""

    name = "ict"
    preset = ICT_PRESET
