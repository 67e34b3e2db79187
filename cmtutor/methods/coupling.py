"""Couplings for consistency training: minibatch optimal transport (OT) and generator-induced (GC).

Consistency training pairs every clean point x with a noise draw z and trains on the straight path
x_σ = x + σ·z. With the *independent coupling* (IC, plain iCT) the pair (x, z) is drawn from p(x)·N(0, I).
Both methods here keep everything else of iCT (``cmtutor.methods.ct``) and only change that pair, through
the endpoint hook :meth:`cmtutor.methods.base.ConsistencyMethod.endpoint`:

* **OT** (Pooladian et al. 2023; Tong et al. 2024; the "iCT-OT" baseline of Issenhuth et al.): within each
  batch, the noise draws are permuted to solve the assignment problem
  min_π Σ_b ‖x_b − z_π(b)‖² (``scipy.optimize.linear_sum_assignment``). Since
  Σ_b ‖x_b − s·z_π(b)‖² = Σ‖x‖² + s²Σ‖z‖² − 2s·Σ_b x_b·z_π(b), the optimal π is the same for every scale s > 0:
  pairing against unit noise or against σ_max·z gives the same coupling.
* **GC** (Issenhuth et al. 2024, "generator-induced coupling", Algorithm 1): the clean endpoint is replaced by
  the model's own prediction from the *smaller* noise level of the pair,
  x̂ = sg f_EMA(x + σ_i·z, σ_i), and the pair is re-noised with the **same** z at both levels,
  x̃ + σ_i·z and x̃ + σ_{i+1}·z. Per sample, the endpoint is x̂ with probability μ and the real x otherwise
  (the paper's mixture L = μ·L_GC + (1 − μ)·L_IC). **μ is the fraction of generated endpoints.**
  Beware: the official code's flag ``mix_gen_induced_traj`` is the *opposite* fraction (its mask is
  ``u > mix``, so the generated share is 1 − mix); with its released value 0.5 the two readings agree.
  The generator is the sampling EMA by default (the official ``generator_induced_traj_ema: True``);
  ``gc_model="online"`` uses the online network under ``no_grad`` instead.
  Two schedules of the official code are exposed (both off by default): ``mu_end`` anneals μ linearly in
  k/K from ``mu`` to ``mu_end`` (the official ``mix_gen_induced_traj_end``, with μ read as the generated
  fraction), and ``gc_start`` trains with the independent coupling for the first ``gc_start`` steps
  (the official ``start_generator_induced_traj``), before the generator has learnt anything.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from cmtutor.methods.base import Draw, Nets, expand
from cmtutor.methods.ct import CTHparams, ImprovedConsistencyTraining
from cmtutor.methods.hparams import HparamError


def ot_permutation(x: Tensor, z: Tensor) -> Tensor:
    """The permutation π minimising Σ_b ‖x_b − z_π(b)‖² over the batch (exact, Hungarian/LAPJV).

    Returns an index tensor ``perm`` such that ``z[perm]`` is the noise paired with ``x``.
    """
    xa = x.detach().flatten(1).to("cpu", torch.float64).numpy()
    za = z.detach().flatten(1).to("cpu", torch.float64).numpy()
    # Noise as the rows: the fastest form measured, same optimum (docs/defaults.md#ot-on-2d).
    cost = (za**2).sum(1)[:, None] + (xa**2).sum(1)[None, :] - 2.0 * za @ xa.T
    rows, cols = linear_sum_assignment(cost)  # noise rows[i] goes with data point cols[i]
    perm = np.empty_like(rows)
    perm[cols] = rows
    return torch.as_tensor(perm, dtype=torch.long, device=z.device)


def ot_couple(x: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
    """Minibatch-OT coupling: (x, z permuted to the optimal assignment)."""
    return x, z[ot_permutation(x, z)]


def ot_renoise(x: Tensor, noise: Tensor, batch: int) -> Tensor:
    """Fresh noise for multistep sampling, assigned to the samples x by minibatch OT in chunks of ``batch``.

    The OT coupling trains every level on x + σ·z with z assigned to x within the training batch; its model
    denoises such inputs far better than independently re-noised ones (docs/defaults.md#ot-on-images), so its
    second sampling step re-noises with the same pairing, in chunks of the training batch size."""
    out = noise.clone()
    for i in range(0, len(x), batch):
        out[i:i + batch] = noise[i:i + batch][ot_permutation(x[i:i + batch], noise[i:i + batch])]
    return out


_SOLVER: ThreadPoolExecutor | None = None


def _solver() -> ThreadPoolExecutor:
    """One background thread for OT assignments (scipy's solver releases the GIL while it runs)."""
    global _SOLVER
    if _SOLVER is None:
        _SOLVER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cmtutor-ot")
    return _SOLVER


@torch.no_grad()
def gc_endpoint(generator: nn.Module, x: Tensor, z: Tensor, sigma: Tensor) -> Tensor:
    """The generator-induced endpoint x̂ = f(x + σ·z, σ), without gradients (Issenhuth et al., Alg. 1)."""
    return generator(x + expand(sigma, x) * z, sigma)


def gc_mix(x: Tensor, x_hat: Tensor, mu: float, u: Tensor) -> Tensor:
    """Per-sample mixture: x̂ where u < μ (a share μ of generated endpoints), the real x elsewhere.

    ``u`` holds one uniform draw per sample; μ = 1 is pure GC, μ = 0 the independent coupling.
    """
    m = (u < mu).reshape(-1, *([1] * (x.ndim - 1)))
    return torch.where(m, x_hat, x)


class MinibatchOTCoupling(ImprovedConsistencyTraining):
    """iCT with the noise of each batch re-assigned by minibatch optimal transport.

    The assignment depends only on the step's draws, not on the weights, so :meth:`draw` hands it to a
    background thread at once; with the training loop's lookahead it is solved while the previous step
    trains (docs/defaults.md#ot-on-2d). The pairing is the same either way.
    """

    name = "ot"
    lookahead = True

    def draw(self, x: Tensor, step: int) -> Draw:
        d = super().draw(x, step)
        if x.device.type == "cpu":  # on a GPU the pairing is solved when needed, in the training thread
            d.pairing = _solver().submit(ot_permutation, x, d.z)
        return d

    def endpoint(self, nets: Nets, x: Tensor, d: Draw, step: int) -> tuple[Tensor, Tensor]:
        if d.pairing is None:
            return ot_couple(x, d.z)
        return x, d.z[d.pairing.result()]


@dataclass(frozen=True)
class GCHparams(CTHparams):
    """iCT's settings plus GC's: the generated fraction μ, its schedule and the generator network."""

    #: the fraction of generated endpoints (the paper's CIFAR-10 value 0.5)
    mu: float = 0.5
    #: None: μ constant; else μ is annealed linearly to it over the run (the official ``get_mix_value``)
    mu_end: float | None = None
    gc_model: Literal["ema", "online"] = "ema"
    #: steps of independent coupling before GC starts
    gc_start: int = 0


class GeneratorInducedCoupling(ImprovedConsistencyTraining):
    """iCT with generator-induced endpoints mixed in at ratio μ (the fraction of generated endpoints).

    Hyperparameters (besides iCT's): ``mu`` (default 0.5, the paper's CIFAR-10 value), ``gc_model``
    (``"ema"``, the default, or ``"online"``), ``mu_end`` (``None``: μ constant; else μ is annealed
    linearly to it over the run) and ``gc_start`` (steps of independent coupling before GC starts; 0).
    """

    name = "gc"
    hparams_type = GCHparams

    def __init__(self, hp: dict[str, Any], noise: Any, total_steps: int, dim: int) -> None:
        super().__init__(hp, noise, total_steps, dim)
        for key in ("mu", "mu_end"):
            value = getattr(self.hp, key)
            if value is not None and not 0.0 <= value <= 1.0:
                raise HparamError(f"{key} is a fraction of generated endpoints and must lie in [0, 1], got {value}")
        self.gc_start = self.hp.gc_start
        if self.gc_start < 0:
            raise HparamError(f"gc_start is a number of steps and must be >= 0, got {self.gc_start}")

    def mu_at(self, step: int) -> float:
        """The generated fraction μ(k) at step k: 0 before ``gc_start``, then ``mu`` (annealed linearly in
        k/K to ``mu_end`` when it is set, as the official ``get_mix_value``)."""
        if step < self.gc_start:
            return 0.0
        mu, end = self.hp.mu, self.hp.mu_end
        if end is None:
            return mu
        return mu + (end - mu) * step / max(1, self.total_steps)

    def generator(self, nets: Nets) -> nn.Module:
        """The network that produces x̂: the sampling EMA (default) or the online model."""
        return nets.ema.module if self.hp.gc_model == "ema" else nets.model

    def endpoint(self, nets: Nets, x: Tensor, d: Draw, step: int) -> tuple[Tensor, Tensor]:
        """x̂ = sg f_EMA(x + σ_i·z, σ_i) for a share μ(k) of the batch, the real x elsewhere; the same z."""
        z, s_lo = d.z, d.s_lo
        u = torch.rand(x.shape[0], device=x.device)
        mu = self.mu_at(step)
        if mu <= 0.0:
            return x, z
        gen = self.generator(nets)
        was_training = gen.training
        gen.eval()
        try:
            return self.mixed_endpoint(gen, x, z, s_lo, mu, u), z
        finally:
            gen.train(was_training)

    def mixed_endpoint(self, generator: nn.Module, x: Tensor, z: Tensor, sigma: Tensor, mu: float,
                       u: Tensor) -> Tensor:
        """x̂ = f(x + σ·z, σ) where u < μ, the real x elsewhere (Issenhuth et al., Alg. 1): the hook notebook
        04's Exercise 4.2 writes (:func:`cmtutor.training.custom_loss.train_with_hook`)."""
        return gc_mix(x, gc_endpoint(generator, x, z, sigma), mu, u)
