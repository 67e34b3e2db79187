"""MeanFlow (Geng et al. 2025, "Mean flows for one-step generative modeling", Algorithm 1): one-step generation
from scratch by regressing the average velocity u(z_t, r, t) on the MeanFlow identity (:mod:`cmtutor.core.meanflow`).

Per sample: (t, r) from two logit-normal draws (a fraction ``1 − ratio`` with r = t: plain flow matching), ε, the
point z_t = (1 − t)x + tε and v = ε − x; one JVP gives u⁻ and du/dt along the tangent (v, 0, 1); the target is
sg(v − (t − r)·du/dt) and the loss the adaptively weighted ‖u_θ − u_tgt‖² (Eq. 10, Sec. 4.3).

As in sCM (``cmtutor.methods.scm``), the JVP is taken on the plain module under no_grad and u_θ comes from a separate
forward pass through the (possibly DDP-wrapped) model, so that gradients are synchronised across processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from cmtutor.core import meanflow as mf
from cmtutor.core.jvp import JvpMode
from cmtutor.hardware.accel import unwrap
from cmtutor.methods.base import Method, Nets, rng_state, restore_rng_state
from cmtutor.methods.hparams import Hparams


@dataclass(frozen=True)
class MeanFlowHparams(Hparams):
    """MeanFlow's settings; the defaults are the paper's best ImageNet ones (Table 1: lognorm(−0.4, 1.0),
    25 % of pairs with r ≠ t, p = 1); its CIFAR-10 ones are the image defaults (``cmtutor.config.images``)."""

    #: logit-normal law of t and r: logit t ~ N(p_mean, p_std²) (= ln σ: a lognormal VE level)
    p_mean: float = -0.4
    p_std: float = 1.0
    #: the fraction of samples with r ≠ t
    ratio: float = 0.25
    #: adaptive loss weight 1/(‖Δ‖² + c)^p
    power: float = 1.0
    c: float = 1e-3
    #: how the JVP is computed (cmtutor.core.jvp)
    jvp: JvpMode = "auto"


class MeanFlow(Method):
    """MeanFlow (module doc)."""

    name = "meanflow"
    parameterization = "meanflow"
    multistep = "flow_map"
    hparams_type = MeanFlowHparams

    def time_range(self) -> tuple[float, float]:
        """[t_min, t_max]: the course's [σ_min, σ_max] in flow time."""
        return float(mf.time_of_sigma(self.noise.sigma_min)), float(mf.time_of_sigma(self.noise.sigma_max))

    def loss(self, nets: Nets, x: Tensor, step: int, drawn: Any = None) -> tuple[Tensor, dict[str, Tensor | float]]:
        t, r = mf.sample_times(x.shape[0], self.hp.p_mean, self.hp.p_std, self.hp.ratio, *self.time_range(),
                               device=x.device)
        eps = torch.randn_like(x)
        z = mf.interpolate(x, eps, t)
        v = eps - x
        inner = unwrap(nets.model)
        state = rng_state(x.device)
        with torch.no_grad():  # the target is sg(·): the JVP needs no graph
            target = mf.identity_target(inner.average_velocity, z, r, t, v, mode=self.hp.jvp)
        restore_rng_state(state, x.device)  # the same dropout mask as the JVP's pass
        u = nets.model(z, t, output="u", r=r)
        loss = mf.adaptive_loss(u - target, self.hp.power, self.hp.c).mean()
        return loss, {"loss": loss.detach(), "r_ne_t": (r < t).float().mean().detach()}
