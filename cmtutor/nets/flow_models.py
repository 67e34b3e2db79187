"""The model wrappers of the continuous-time methods: sCM's TrigFlow consistency function (with its adaptive
weight w_φ) and MeanFlow's average-velocity network. Both keep the σ-interface of every cmtutor model,
``model(x_σ, σ)`` → the clean estimate, so sampling, evaluation and checkpoints treat them like any consistency
model; the method's own coordinates are reached with ``output=`` in the same forward pass (under
DistributedDataParallel everything that carries a gradient goes through one wrapped call).

The math lives in :mod:`cmtutor.core.trigflow` and :mod:`cmtutor.core.meanflow`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cmtutor.core import meanflow as mf
from cmtutor.core.noise import NoiseConfig
from cmtutor.core.precond import Preconditioned, c_noise, edm_scalings
from cmtutor.core.trigflow import expand_like, sigma_of_time
from cmtutor.nets.mlp import SinusoidalEmbedding


class AdaptiveWeight(nn.Module):
    """w_φ(t): a scalar per noise level, the learned log-weight of the sCM loss (Sec. 4.2, after EDM2)."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.embed = SinusoidalEmbedding(dim, max_freq=16.0)
        self.linear = nn.Linear(dim, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, c: Tensor) -> Tensor:
        return self.linear(self.embed(c.reshape(-1))).reshape(-1)


class TrigFlowModel(Preconditioned):
    """The sCM consistency function: EDM preconditioning with F_θ = −F_net (module doc), plus w_φ.

    ``model(x_σ, σ)`` is f_θ in the σ-interface of every cmtutor model. ``model(x_σ, σ, output="trig")`` returns
    (F_θ(x_t/σ_d, t), w_φ(t)), the TrigFlow network output and the adaptive log-weight, in one forward pass (so
    under DistributedDataParallel both get their gradients synchronised). :meth:`trig_network` is F_θ as a function
    of (x_t/σ_d, t), for the JVP.
    """

    def __init__(self, net: nn.Module, noise: NoiseConfig) -> None:
        super().__init__(net, noise, "edm")
        self.log_weight = AdaptiveWeight()
        if hasattr(net, "dedupe_levels"):  # continuous levels; the JVP needs a path with forward-mode rules
            net.dedupe_levels = False

    def forward(self, x: Tensor, sigma: Tensor | float, output: str = "f") -> Tensor | tuple[Tensor, Tensor]:
        if output == "f":
            return super().forward(x, sigma)
        if output != "trig":
            raise ValueError(f"output must be 'f' or 'trig'; got {output!r}")
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).expand(x.shape[0])
        _, _, c_in = edm_scalings(sigma, self.noise.sigma_data)
        c = c_noise(sigma)
        return -self.net(expand_like(c_in, x) * x, c).to(x.dtype), self.log_weight(c)

    def trig_network(self, x_scaled: Tensor, t: Tensor) -> Tensor:
        """F_θ(x_t/σ_d, t) as a function of TrigFlow's inputs (differentiable in both, for the JVP)."""
        return -self.net(x_scaled, c_noise(sigma_of_time(t, self.noise.sigma_data)))



class MeanFlowModel(nn.Module):
    """u_θ(z_t, r, t) = F_θ(z_t, t, t − r), conditioned on t and the interval as in Geng et al. 2025 (Sec. 4.3).

    ``model(x_σ, σ)`` is the clean estimate z_t − t·u_θ(z_t, 0, t) at z_t = x_σ/(1 + σ), t = σ/(1 + σ): one MeanFlow
    step to t = 0, written in the σ-interface. ``model(z, t, output="u", r=r)`` is u_θ(z, r, t) in flow time.
    The network embeds the flow time t where other cmtutor networks embed c_noise = ¼·ln σ (both span about one
    unit; on moons, one seed, 6000 steps: one-step W2/floor 1.57 with t, 1.65 with ¼·ln σ: docs/defaults.md).
    """

    def __init__(self, net: nn.Module, noise: NoiseConfig) -> None:
        super().__init__()
        self.net = net
        self.noise = noise

    def average_velocity(self, z: Tensor, r: Tensor, t: Tensor) -> Tensor:
        """u_θ(z, r, t) for per-sample flow times r ≤ t [B] (differentiable in z, r and t, for the JVP)."""
        return self.net(z, t, t - r).to(z.dtype)

    def forward(self, x: Tensor, sigma: Tensor | float, output: str = "f", r: Tensor | None = None) -> Tensor:
        s = torch.as_tensor(sigma, dtype=torch.float32, device=x.device)
        if s.ndim == 0:
            s = s.expand(x.shape[0])
        if output == "u":
            if r is None:
                raise ValueError('output="u" needs r')
            return self.average_velocity(x, r, s)
        if output != "f":
            raise ValueError(f"output must be 'f' or 'u'; got {output!r}")
        return self.jump(x, s, torch.zeros_like(s))

    def jump(self, x: Tensor, sigma: Tensor, sigma_to: Tensor) -> Tensor:
        """The flow map from level σ to σ' ≤ σ in the σ-interface: z_r = z_t − (t − r)·u_θ(z_t, r, t) (Eq. 4),
        with z = x/(1 + σ) and t = σ/(1 + σ) at both ends (σ' = 0: the clean estimate)."""
        t, r = mf.time_of_sigma(sigma), mf.time_of_sigma(sigma_to)
        z = x / expand_like(1 + sigma, x)
        z_r = z - expand_like(t - r, x) * self.average_velocity(z, r, t)
        return z_r * expand_like(1 + sigma_to, x)
