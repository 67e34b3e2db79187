"""Continuous-time consistency models, sCM (Lu & Song 2024, "Simplifying, stabilizing and scaling continuous-time
consistency models", Algorithm 1): consistency training (sCT) and, with ``--hp velocity=teacher``, distillation
(sCD) from the course's diffusion teacher.

Discrete CT compares f_θ at two adjacent levels; as the gap Δt → 0 the loss's gradient becomes

    ∇_θ E[ w(t)·f_θ(x_t, t)ᵀ · d f_θ⁻(x_t, t)/dt ],

the total derivative of the consistency function along the PF-ODE (their Eq. 7), one Jacobian-vector product. In
TrigFlow coordinates (:mod:`cmtutor.core.trigflow`) the paper writes it as a regression on the network output,

    L = e^{w_φ(t)}/D · ‖F_θ − sg(F_θ + g)‖² − w_φ(t),   g = −cos²t(σ_d F⁻ − dx_t/dt) − r·cos t sin t(x_t + σ_d dF⁻/dt),

with three stabilisers, each a switch here (ablated in notebook 09):

* **tangent normalisation** g ← g/(‖g‖ + c), c = 0.1 (``normalize``);
* **tangent warm-up** r = min(1, k/H) on the second term of g, H a fraction of the run (``tangent_warmup``);
* **adaptive weighting** w_φ(t), a learned log-weight per level (``weighting="adaptive"``).

dx_t/dt is cos t·z − sin t·x₀ (sCT, from the data) or the teacher's PF-ODE velocity (sCD). θ⁻ = sg(θ): there is no
target EMA. The JVP is taken on the plain module under no_grad; the gradient comes from a separate forward pass
through the (possibly DDP-wrapped) model, so that gradients are synchronised across processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from cmtutor.core import trigflow as tf
from cmtutor.core.jvp import JvpMode
from cmtutor.errors import UserError
from cmtutor.hardware.accel import unwrap
from cmtutor.methods.base import Method, Nets, rng_state, restore_rng_state
from cmtutor.methods.hparams import Hparams


@dataclass(frozen=True)
class SCMHparams(Hparams):
    """sCM's settings; the defaults are the paper's CIFAR-10 sCT ones (App. G: P_mean −1.0, P_std 1.4, c = 0.1)."""

    #: the proposal of training levels: ln σ ~ N(p_mean, p_std²), t = arctan(σ/σ_d)
    p_mean: float = -1.0
    p_std: float = 1.4
    #: tangent normalisation g/(‖g‖ + c) (``normalize``) and its constant c
    normalize: bool = True
    tangent_c: float = 0.1
    #: tangent warm-up: the second term of g ramps in linearly over this fraction of the run (0: off). The paper's
    #: 10k of 400k steps is 0.025; relative to the run so that a CPU-sized run ends with r = 1 (with r < 1 the
    #: loss's fixed point is not the consistency function: docs/continuous.md#the-three-stabilisers)
    tangent_warmup: float = 0.025
    #: "adaptive": the learned w_φ(t); "uniform": w = 0 (every level weighs the same)
    weighting: Literal["adaptive", "uniform"] = "adaptive"
    #: a fixed prior weight multiplying the loss: 1/σ = 1/(σ_d·tan t), or none
    prior_weight: Literal["none", "inv_sigma"] = "none"
    #: dx_t/dt from the data (sCT) or from the diffusion teacher's PF-ODE (sCD, needs --teacher)
    velocity: Literal["data", "teacher"] = "data"
    #: start from the teacher's weights (sCD; TrigFlow's f is then the teacher's denoiser at step 0)
    init_from_teacher: bool = False
    #: how the JVP is computed (cmtutor.core.jvp): forward-mode AD, a finite difference, or AD with a fallback
    jvp: JvpMode = "auto"


class ContinuousConsistencyModel(Method):
    """sCT / sCD (module doc): the continuous-time consistency loss with its three stabilisers."""

    name = "scm"
    parameterization = "trig"
    teacher_methods = ("diffusion",)
    hparams_type = SCMHparams

    def warmup(self, step: int) -> float:
        """r(k) = min(1, k/H), H = ``tangent_warmup`` × the run's steps: the weight of the tangent's second term."""
        h = self.hp.tangent_warmup * self.total_steps
        return 1.0 if h <= 0 else min(1.0, step / h)

    def draw_times(self, batch: int, device: torch.device) -> Tensor:
        """TrigFlow times t = arctan(σ/σ_d) for a lognormal σ, clamped to the course's [σ_min, σ_max]."""
        sigma = torch.exp(torch.randn(batch, device=device) * self.hp.p_std + self.hp.p_mean)
        return tf.time_of_sigma(sigma.clamp(self.noise.sigma_min, self.noise.sigma_max), self.noise.sigma_data)

    def loss(self, nets: Nets, x: Tensor, step: int, drawn: Any = None) -> tuple[Tensor, dict[str, Tensor | float]]:
        sd = self.noise.sigma_data
        t = self.draw_times(x.shape[0], x.device)
        z = torch.randn_like(x) * sd
        cos, sin = tf.expand_like(t.cos(), x), tf.expand_like(t.sin(), x)
        x_t = cos * x + sin * z
        if self.hp.velocity == "teacher":
            if nets.teacher is None:
                raise UserError("--hp velocity=teacher (sCD) needs --teacher, a diffusion checkpoint")
            with torch.no_grad():
                dxt_dt = tf.teacher_velocity(nets.teacher, x_t, t, sd)
        else:
            dxt_dt = tf.sct_velocity(x, z, t)
        inner = unwrap(nets.model)
        state = rng_state(x.device)
        with torch.no_grad():  # θ⁻ = sg(θ): the JVP needs no graph
            f_minus, g = tf.consistency_tangent(inner.trig_network, x_t, dxt_dt, t, sd, self.warmup(step),
                                                mode=self.hp.jvp)
            if self.hp.normalize:
                g = tf.normalize_tangent(g, self.hp.tangent_c)
        restore_rng_state(state, x.device)  # the same dropout mask as the JVP's pass
        f_online, log_w = nets.model(x_t / cos, tf.sigma_of_time(t, sd), output="trig")
        sq = (f_online - f_minus - g).flatten(1).pow(2).mean(dim=1)
        if self.hp.prior_weight == "inv_sigma":
            sq = sq / tf.sigma_of_time(t, sd)
        if self.hp.weighting == "adaptive":
            per_sample = torch.exp(log_w) * sq - log_w
        else:
            per_sample = sq + 0.0 * log_w  # w_φ unused, but in the graph (DDP expects every parameter)
        loss = per_sample.mean()
        return loss, {"loss": loss.detach(), "tangent_rms": g.flatten(1).pow(2).mean(1).sqrt().mean().detach()}
