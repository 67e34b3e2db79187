"""Preconditioning: how a raw network F_θ becomes a denoiser or a consistency function.

Both wrappers compute

    out(x, σ) = c_skip(σ)·x + c_out(σ)·F_θ(c_in(σ)·x, c_noise(σ))

and differ only in the scalings:

* **EDM** (Karras et al. 2022, Table 1, "Ours" column), used for the diffusion teacher D_φ and for TCM:
  c_skip = σ_d²/(σ²+σ_d²), c_out = σσ_d/√(σ²+σ_d²), c_in = 1/√(σ²+σ_d²), c_noise = ¼·ln σ.
* **Consistency-model boundary** (Song et al. 2023, Appendix C, Eq. 8 as in their code): the same shape
  with σ replaced by σ−ε in c_skip and c_out, so that c_skip(ε) = 1 and c_out(ε) = 0 and the boundary
  condition f(x, ε) = x holds *exactly* for any network.

Note the square root in c_in: dropping it (a known bug of one public iCT script) scales the network
input wrongly at every σ. ``tests/core/test_precond.py`` checks all of these in closed form.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from cmtutor.core.noise import NoiseConfig

#: "edm" and "cm" are :class:`Preconditioned`; "trig" (sCM) and "meanflow" are ``cmtutor.nets.flow_models``.
Parameterization = Literal["edm", "cm", "trig", "meanflow"]


def _as_tensor(sigma: Tensor | float, like: Tensor | None = None) -> Tensor:
    if isinstance(sigma, Tensor):
        return sigma
    return torch.as_tensor(sigma, dtype=torch.float32 if like is None else like.dtype,
                           device=None if like is None else like.device)


def edm_scalings(sigma: Tensor, sigma_data: float) -> tuple[Tensor, Tensor, Tensor]:
    """(c_skip, c_out, c_in) of EDM preconditioning (Karras et al. 2022, Table 1)."""
    s2 = sigma**2 + sigma_data**2
    c_skip = sigma_data**2 / s2
    c_out = sigma * sigma_data / s2.sqrt()
    c_in = 1.0 / s2.sqrt()
    return c_skip, c_out, c_in


def cm_scalings(sigma: Tensor, sigma_data: float, sigma_min: float) -> tuple[Tensor, Tensor, Tensor]:
    """(c_skip, c_out, c_in) with the consistency boundary condition (Song et al. 2023, Eq. 8 / App. C).

    c_skip(σ) = σ_d²/((σ−ε)²+σ_d²),  c_out(σ) = σ_d(σ−ε)/√(σ²+σ_d²),  c_in(σ) = 1/√(σ²+σ_d²).
    At σ = ε: c_skip = 1 and c_out = 0 exactly.
    """
    c_skip = sigma_data**2 / ((sigma - sigma_min) ** 2 + sigma_data**2)
    c_out = (sigma - sigma_min) * sigma_data / (sigma**2 + sigma_data**2).sqrt()
    c_in = 1.0 / (sigma**2 + sigma_data**2).sqrt()
    return c_skip, c_out, c_in


def c_noise(sigma: Tensor) -> Tensor:
    """Noise-level conditioning fed to the network: ¼·ln σ (EDM; also the CM CIFAR-10 code)."""
    return 0.25 * torch.log(sigma)


def _broadcast(c: Tensor, x: Tensor) -> Tensor:
    """Reshape a per-sample coefficient [B] (or scalar) to broadcast against x [B, ...]."""
    if c.ndim == 0:
        return c
    return c.reshape(c.shape[0], *([1] * (x.ndim - 1)))


class Preconditioned(nn.Module):
    """out(x, σ) = c_skip·x + c_out·F(c_in·x, c_noise), with EDM or CM-boundary scalings.

    ``net`` is any module called as ``net(x_scaled, c_noise)`` that returns a tensor shaped like x.
    ``kind="edm"`` gives the diffusion denoiser D_θ(x, σ) ≈ E[x_0 | x_σ]; ``kind="cm"`` gives the
    consistency function f_θ(x, σ) with f_θ(x, σ_min) = x.
    """

    def __init__(self, net: nn.Module, noise: NoiseConfig, kind: Parameterization) -> None:
        super().__init__()
        if kind not in ("edm", "cm"):
            raise ValueError(f"unknown parameterization {kind!r}; expected 'edm' or 'cm'")
        self.net = net
        self.noise = noise
        self.kind: Parameterization = kind

    def scalings(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if self.kind == "edm":
            return edm_scalings(sigma, self.noise.sigma_data)
        return cm_scalings(sigma, self.noise.sigma_data, self.noise.sigma_min)

    def forward(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        sigma = _as_tensor(sigma, x)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        sigma = sigma.to(dtype=torch.float32)
        c_skip, c_out, c_in = self.scalings(sigma)
        f = self.net(_broadcast(c_in, x) * x, c_noise(sigma))
        return _broadcast(c_skip, x) * x + _broadcast(c_out, x) * f.to(x.dtype)
