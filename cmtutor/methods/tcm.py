"""Truncated consistency models (TCM), Lee et al. 2025 (ICLR), stage 2.

A standard CM must map *every* noise level σ ∈ [ε, T] to data, so much of its capacity goes to easy
denoising at small σ. TCM trains a second stage only on [t', T]. Alone, that objective has trivial
solutions (nothing ties the model to the data), so the consistency function is made piecewise
(Lee et al., Eq. 5; NVlabs/TCM ``TCMPrecond``):

    f(x, σ) = F_θ(x, σ)        for σ ≥ t'   (the trainable student)
    f(x, σ) = f_θ⁻(x, σ)       for σ < t'   (the frozen stage-1 consistency model)

**Stage 1** is any standard consistency model of cmtutor (``ict``, ``ct``, ``gc``, ``ot``, ``cd``, ``direct``).
**Stage 2** (this method, ``--method tcm --teacher STAGE1``) starts the student from the stage-1 weights and
trains with:

* times t on [t', T]: log t from a Student-t (loc log t', scale 0.2, df 0.01) truncated to [log t', log T],
  the official setting; then a share ``boundary_share`` (25 %) of the batch is set to t = t' exactly;
* the smaller time r = t − Δt one step down the final Karras grid of stage 1 (N levels):
  r = (t^{1/ρ} − (T^{1/ρ} − ε^{1/ρ})/(N − 1))^ρ, so Δt continues where stage 1's curriculum ended
  (the official ``--resume_tick``);
* the iCT loss λ·d(F_θ(x + t·z, t), sg f(x + r·z, r)) with λ = 1/(t − r), pseudo-Huber d, the **same z**;
  whenever r < t' the target comes from the frozen stage-1 model (always for the boundary samples);
* L = mean over t > t' + w_b · mean over t = t' (w_b = 0.1), as in the official training loop.

``anchor="none"`` is the ablation without the frozen boundary model: every target comes from sg(student)
and no sample sits at t = t' (no boundary term), i.e. naive truncated consistency training.

**Parameterisation.** The official code uses EDM scalings for both stages (inherited from ECT). Here
stage 2 keeps the *CM-boundary* scalings of our stage-1 models: the student is initialised from the
stage-1 weights, and with the same scalings it starts as exactly the stage-1 function (with EDM scalings
the same weights would be a different function). The boundary at ε is never used by stage 2 (the student
only acts for σ ≥ t'; the boundary condition at t' is inherited from the frozen model, not hard-coded),
so nothing is lost. ``tests/methods/test_couplings_tcm_direct.py`` checks that f starts equal to stage 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from cmtutor.methods.base import ConsistencyHparams, ConsistencyMethod, Draw, Method, Nets, expand
from cmtutor.methods.hparams import HparamError

#: Stage-1 methods whose checkpoints can serve as the frozen boundary model.
STAGE1_METHODS: tuple[str, ...] = ("ict", "ct", "gc", "ot", "cd", "direct")


class TruncatedConsistency(nn.Module):
    """The piecewise consistency function: ``student`` for σ ≥ t', the frozen ``boundary`` model below."""

    def __init__(self, student: nn.Module, boundary: nn.Module, t_prime: float) -> None:
        super().__init__()
        self.student = student
        self.boundary = boundary
        self.t_prime = float(t_prime)

    def forward(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        s = torch.as_tensor(sigma, dtype=x.dtype if not isinstance(sigma, Tensor) else None, device=x.device)
        if s.ndim == 0:
            s = s.expand(x.shape[0])
        upper = s >= self.t_prime
        if bool(upper.all()):
            return self.student(x, s)
        with torch.no_grad():
            low = self.boundary(x, s)
        if not bool(upper.any()):
            return low
        return torch.where(expand(upper, x), self.student(x, s), low)


def tcm_target(student: nn.Module, stage1: nn.Module, x: Tensor, r: Tensor, t_prime: float) -> Tensor:
    """The TCM target sg f(x_r, r) with the piecewise f of Lee et al. (Eq. 5): the student where r ≥ t', the
    frozen stage-1 model below, without gradients."""
    with torch.no_grad():
        return TruncatedConsistency(student, stage1, t_prime)(x, r)


def truncated_student_t_log_times(u: Tensor, t_prime: float, t_max: float, scale: float = 0.2,
                                  df: float = 0.01) -> Tensor:
    """log t from uniforms u ∈ [0, 1) by inverse CDF: Student-t(loc log t', ``scale``, ``df``) on [log t', log T].

    TCM stage 2 (Lee et al. 2025; NVlabs/TCM ``misc.truncated_t``): df = 0.01 is extremely heavy-tailed, so
    t concentrates just above t' while still reaching T.
    """
    from scipy import stats  # imported here: scipy.stats is slow to import and only stage 2 needs it

    dist = stats.t(df=df, loc=math.log(t_prime), scale=scale)
    lo, hi = dist.cdf(math.log(t_prime)), dist.cdf(math.log(t_max))
    q = lo + u.detach().cpu().double().numpy() * (hi - lo)
    logt = np.clip(dist.ppf(q), math.log(t_prime), math.log(t_max))
    return torch.as_tensor(logt, dtype=torch.float32, device=u.device)


def karras_step_down(t: Tensor, sigma_min: float, sigma_max: float, rho: float, num_scales: int) -> Tensor:
    """r = (t^{1/ρ} − h)^ρ with h = (T^{1/ρ} − ε^{1/ρ})/(N − 1): one level down a Karras grid of N levels.

    On grid points this is exactly the next smaller level; in between it interpolates. Clamped to ≥ ε.
    """
    h = (sigma_max ** (1 / rho) - sigma_min ** (1 / rho)) / (num_scales - 1)
    base = (t.double() ** (1 / rho) - h).clamp_min(sigma_min ** (1 / rho))
    return (base**rho).to(t.dtype)


def boundary_weights(t: Tensor, r: Tensor, boundary: Tensor, w_b: float) -> Tensor:
    """Per-sample weights w with mean(w·d) = mean_{t > t'} d/(t − r) + w_b · mean_{t = t'} d/(t − r).

    The two means of the official TCM loss (NVlabs/TCM: ``loss.mean() + w_boundary * loss_boundary.mean()``)
    written as one batch mean; an empty group contributes nothing.
    """
    b = boundary.to(t.dtype)
    n = t.shape[0]
    n_b = b.sum().clamp_min(1.0)
    n_i = (1.0 - b).sum().clamp_min(1.0)
    return (b * (w_b * n / n_b) + (1.0 - b) * (n / n_i)) / (t - r)


@dataclass(frozen=True)
class TCMHparams(ConsistencyHparams):
    """TCM stage 2's settings (Lee et al. 2025; the official CIFAR-10 values)."""

    #: the truncation time t': the student trains on [t', T], the frozen stage-1 model answers below
    t_prime: float = 1.0
    #: the boundary loss weight w_b and the share of the batch drawn at t = t'
    w_b: float = 0.1
    boundary_share: float = 0.25
    #: the truncated Student-t distribution of log t (scale, degrees of freedom)
    t_scale: float = 0.2
    t_df: float = 0.01
    #: Karras levels for Δt; None: N at the end of stage 1 (:meth:`TruncatedConsistencyModel.adapt_to_teacher`)
    num_scales: int | None = None
    #: "frozen": the stage-1 model is the boundary; "none": the collapse ablation of notebook 05
    anchor: Literal["frozen", "none"] = "frozen"
    init_from_teacher: bool = True


class TruncatedConsistencyModel(ConsistencyMethod):
    """TCM stage 2: consistency training on [t', T] with a frozen stage-1 model as the boundary."""

    name = "tcm"
    teacher_methods = STAGE1_METHODS
    requires_teacher = True
    hparams_type = TCMHparams

    @classmethod
    def adapt_to_teacher(cls, hp: dict[str, Any], stage1: Method) -> dict[str, Any]:
        """Continue stage 1's Δt: ``num_scales=None`` becomes N at the end of stage 1 (CT-family teachers)."""
        if hp.get("num_scales") is not None:
            return hp
        num_scales = getattr(stage1, "num_scales", None)
        n = num_scales(stage1.total_steps) if callable(num_scales) else 1281
        return {**hp, "num_scales": int(n)}

    @classmethod
    def sampling_network(cls, model: nn.Module, teacher: nn.Module | None, hp: dict[str, Any]) -> nn.Module:
        """Sample with the piecewise f: the student for σ ≥ t', the frozen stage-1 model below."""
        typed = cls.hparams_type.parse(hp, cls.name)
        if teacher is None or typed.anchor == "none":
            return model
        return TruncatedConsistency(model, teacher, typed.t_prime)

    def __init__(self, hp: dict[str, Any], noise: Any, total_steps: int, dim: int) -> None:
        super().__init__(hp, noise, total_steps, dim)
        self.t_prime = self.hp.t_prime
        if not noise.sigma_min < self.t_prime < noise.sigma_max:
            raise HparamError(f"t_prime must lie in (σ_min, σ_max) = ({noise.sigma_min}, {noise.sigma_max}), "
                             f"got {self.t_prime}")
        self.num_scales = self.hp.num_scales or 1281

    def sample_times(self, batch: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """(t, r, is_boundary): t ∈ [t', T], r one Karras level below t, a ``boundary_share`` of t set to t'."""
        n = self.noise
        logt = truncated_student_t_log_times(torch.rand(batch, device=device), self.t_prime, n.sigma_max,
                                             self.hp.t_scale, self.hp.t_df)
        t = logt.exp().clamp(self.t_prime, n.sigma_max)
        boundary = torch.zeros(batch, dtype=torch.bool, device=device)
        k = int(batch * self.hp.boundary_share) if self.hp.anchor == "frozen" else 0
        if k > 0:
            boundary[torch.randperm(batch, device=device)[:k]] = True
        t = torch.where(boundary, torch.full_like(t, self.t_prime), t)
        r = karras_step_down(t, n.sigma_min, n.sigma_max, n.rho, self.num_scales)
        return t, r, boundary

    def target(self, nets: Nets, x0: Tensor, z: Tensor, d: Draw, x_hi: Tensor) -> Tensor:
        """f at the smaller time r, the same z: sg(student) above t', the frozen stage-1 model below
        (:meth:`truncated_target`); with ``anchor="none"`` sg(student) everywhere. Run under no_grad."""
        if self.hp.anchor == "none":
            return super().target(nets, x0, z, d, x_hi)
        assert nets.teacher is not None, "TCM needs the frozen stage-1 model (--teacher)"
        return self.truncated_target(nets.model, nets.teacher, x0 + expand(d.s_lo, x0) * z, d.s_lo, self.t_prime)

    def truncated_target(self, student: nn.Module, stage1: nn.Module, x: Tensor, r: Tensor,
                         t_prime: float) -> Tensor:
        """The hook notebook 05's Exercise 5.1 writes: :func:`tcm_target`."""
        return tcm_target(student, stage1, x, r, t_prime)

    # -- axis 1: t on [t', T], r one Karras level below, a share of the batch at t = t' -----------------
    def times(self, batch: int, device: torch.device, step: int) -> tuple[Tensor, Tensor, Tensor]:
        t, r, boundary = self.sample_times(batch, device)
        return r, t, boundary

    # -- axis 4: 1/(t − r), the boundary samples' mean weighted by w_b -------------------------------------
    def weight(self, s_lo: Tensor, s_hi: Tensor, boundary: Tensor | None) -> Tensor:
        assert boundary is not None
        return boundary_weights(s_hi, s_lo, boundary, self.hp.w_b)

    def logs(self, d: Draw, step: int) -> dict[str, Tensor | float]:
        return {"frozen_share": (d.s_lo < self.t_prime).float().mean().detach()}
