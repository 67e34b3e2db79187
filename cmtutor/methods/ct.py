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

Subclasses (GC and OT in ``cmtutor.methods.coupling``) only override :meth:`couple`, which picks the
clean endpoint and the noise of each pair.
"""

from __future__ import annotations

import math
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from cmtutor.losses import get_distance
from cmtutor.methods.base import Method, Nets, consistency_step, expand
from cmtutor.schedules import ct_num_scales, ict_num_scales, karras_sigmas, lognormal_pair_probs

CT_PRESET: dict[str, Any] = {"curriculum": "adaptive", "s0": 2, "s1": 150, "mu0": 0.9, "pairs": "uniform",
                             "distance": "l2", "weighting": "uniform", "target": "ema"}
ICT_PRESET: dict[str, Any] = {"curriculum": "doubling", "s0": 10, "s1": 1280, "mu0": 0.9, "pairs": "lognormal",
                              "distance": "pseudo_huber", "weighting": "inv_delta", "target": "online"}


@dataclass
class Draw:
    """The random draws of one consistency-training step (see :meth:`ConsistencyTraining.draw`).

    ``pairing`` is set by methods that start work on the draws ahead of time (OT's assignment, solved in a
    background thread while the previous step trains).
    """

    s_lo: Tensor
    s_hi: Tensor
    weight: Tensor
    z: Tensor
    pairing: Future[Tensor] | None = None


class ConsistencyTraining(Method):
    """Improved consistency training (iCT). Every iCT change is a hyperparameter switch (see module doc)."""

    name = "ict"
    preset: dict[str, Any] = ICT_PRESET

    @classmethod
    def default_hparams(cls, data_kind: str) -> dict[str, Any]:
        return {**cls.preset, "p_mean": -1.1, "p_std": 2.0}

    def __init__(self, hp: dict[str, Any], noise: Any, total_steps: int, dim: int) -> None:
        super().__init__(hp, noise, total_steps, dim)
        self.distance = get_distance(self.hp["distance"], dim)
        self._grids: dict[int, tuple[Tensor, Tensor]] = {}
        for key, allowed in (("curriculum", ("adaptive", "doubling")), ("pairs", ("uniform", "lognormal")),
                             ("weighting", ("uniform", "inv_delta")), ("target", ("ema", "online"))):
            if self.hp[key] not in allowed:
                raise ValueError(f"{key} must be one of {', '.join(allowed)}; got {self.hp[key]!r}")

    # -- schedule ---------------------------------------------------------------------------------
    def num_scales(self, step: int) -> int:
        """N(k): the number of grid levels at step k."""
        if self.hp["curriculum"] == "adaptive":
            return ct_num_scales(step, self.total_steps, self.hp["s0"], self.hp["s1"])
        if self.hp["curriculum"] == "doubling":
            return ict_num_scales(step, self.total_steps, self.hp["s0"], self.hp["s1"])
        raise ValueError(f"unknown curriculum {self.hp['curriculum']!r}; expected 'adaptive' or 'doubling'")

    def grid(self, step: int) -> tuple[Tensor, Tensor]:
        """(ascending Karras levels, pair probabilities) for N(k) levels."""
        n = self.num_scales(step)
        if n not in self._grids:
            sig = karras_sigmas(n, self.noise.sigma_min, self.noise.sigma_max, self.noise.rho)
            if self.hp["pairs"] == "lognormal":
                probs = lognormal_pair_probs(sig, self.hp["p_mean"], self.hp["p_std"])
            elif self.hp["pairs"] == "uniform":
                probs = torch.full((n - 1,), 1.0 / (n - 1), dtype=torch.float64)
            else:
                raise ValueError(f"unknown pair distribution {self.hp['pairs']!r}; expected 'uniform' or 'lognormal'")
            self._grids[n] = (sig.float(), probs.float())
        return self._grids[n]

    def sample_pairs(self, step: int, batch: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """(σ_lo, σ_hi, λ) for a batch: adjacent levels σ_i < σ_{i+1} and the loss weight."""
        sig, probs = self.grid(step)
        sig, probs = sig.to(device), probs.to(device)
        i = torch.multinomial(probs, batch, replacement=True)
        s_lo, s_hi = sig[i], sig[i + 1]
        if self.hp["weighting"] == "inv_delta":
            weight = 1.0 / (s_hi - s_lo)
        elif self.hp["weighting"] == "uniform":
            weight = torch.ones_like(s_hi)
        else:
            raise ValueError(f"unknown weighting {self.hp['weighting']!r}; expected 'uniform' or 'inv_delta'")
        return s_lo, s_hi, weight

    # -- target network -----------------------------------------------------------------------------
    def uses_target_network(self) -> bool:
        return self.hp["target"] == "ema"

    def target_decay(self, step: int) -> float:
        """μ(k) = exp(s0·ln μ0 / N(k)) (Song et al. 2023, App. C)."""
        return math.exp(self.hp["s0"] * math.log(self.hp["mu0"]) / self.num_scales(step))

    # -- the coupling hook --------------------------------------------------------------------------
    def couple(self, nets: Nets, x: Tensor, z: Tensor, s_lo: Tensor, step: int) -> tuple[Tensor, Tensor]:
        """The (clean endpoint, noise) pair. Independent coupling: (x, z) unchanged."""
        return x, z

    def draw(self, x: Tensor, step: int) -> Draw:
        """Every random draw of step k for the batch x: the pair of levels (with its weight) and the noise.

        The draws do not depend on the weights, so the training loop may make them one step early
        (:attr:`Method.lookahead`); the order of the draws on the RNG is the same either way.
        """
        s_lo, s_hi, weight = self.sample_pairs(step, x.shape[0], x.device)
        return Draw(s_lo, s_hi, weight, torch.randn_like(x))

    def couple_drawn(self, nets: Nets, x: Tensor, d: Draw, step: int) -> tuple[Tensor, Tensor]:
        """:meth:`couple` applied to a :class:`Draw` (OT overrides this to use a pairing solved ahead)."""
        return self.couple(nets, x, d.z, d.s_lo, step)

    def loss(self, nets: Nets, x: Tensor, step: int,
             drawn: Draw | None = None) -> tuple[Tensor, dict[str, Tensor | float]]:
        d = drawn if drawn is not None else self.draw(x, step)
        s_lo, s_hi, weight = d.s_lo, d.s_hi, d.weight
        x0, z = self.couple_drawn(nets, x, d, step)
        x_hi = x0 + expand(s_hi, x0) * z
        target_net = nets.target if nets.target is not None else nets.model

        def target() -> Tensor:
            return target_net(x0 + expand(s_lo, x0) * z, s_lo)

        loss, _ = consistency_step(nets.model, x_hi, s_hi, target, weight, self.distance)
        return loss, {"loss": loss.detach(), "num_scales": float(self.num_scales(step))}


class ConsistencyTrainingCT(ConsistencyTraining):
    """The original consistency training of Song et al. (2023): CT with the adaptive N(k) and μ(k)."""

    name = "ct"
    preset = CT_PRESET
