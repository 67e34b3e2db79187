"""The exact posterior of a finite data set under VE noise, and the ideal denoiser it gives.

For data points x⁽¹⁾…x⁽ᴺ⁾ (an empirical distribution) and a noisy point x_σ = x + σ·z, Bayes' rule gives

    p(x = x⁽ʲ⁾ | x_σ) = w_j(x_σ, σ) = softmax_j( −‖x_σ − x⁽ʲ⁾‖² / (2σ²) ),

and the ideal denoiser is the posterior mean D*(x_σ, σ) = Σ_j w_j·x⁽ʲ⁾, the minimiser of the denoising
loss (Karras et al. 2022, Eq. 3 relates it to the score). A trained denoiser D_θ approximates D* of the
true data distribution; with many data points and not too small σ, D* of the empirical set is a good
proxy for it.

Consistency training replaces the PF-ODE velocity (x_σ − D(x_σ, σ))/σ by the one-sample estimate
(x_σ − x)/σ = z with x drawn from this posterior (Song et al. 2023, Eq. 9; Issenhuth et al.):
:func:`sample_posterior` draws those clean endpoints, so notebook 03 can show their spread.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _sigma_column(sigma: Tensor | float, n: int, like: Tensor) -> Tensor:
    """σ as a column [n, 1] (scalar or per-row [n])."""
    s = torch.as_tensor(sigma, dtype=like.dtype, device=like.device)
    return s.reshape(-1, 1).expand(n, 1) if s.ndim else s.expand(n, 1)


def posterior_log_weights(x_sigma: Tensor, sigma: Tensor | float, data: Tensor) -> Tensor:
    """log p(x = data[j] | x_sigma[b]) for every row b and data point j: a [B, N] tensor of log-softmaxes."""
    if x_sigma.ndim != 2 or data.ndim != 2 or x_sigma.shape[1] != data.shape[1]:
        raise ValueError(f"expected x_sigma [B, D] and data [N, D], got {tuple(x_sigma.shape)} and {tuple(data.shape)}")
    data = data.to(x_sigma)
    s = _sigma_column(sigma, x_sigma.shape[0], x_sigma)
    d2 = torch.cdist(x_sigma, data).pow(2)
    return torch.log_softmax(-d2 / (2 * s**2), dim=1)


def posterior_weights(x_sigma: Tensor, sigma: Tensor | float, data: Tensor) -> Tensor:
    """p(x = data[j] | x_sigma[b]): [B, N], each row sums to one."""
    return posterior_log_weights(x_sigma, sigma, data).exp()


class IdealDenoiser(nn.Module):
    """D*(x, σ) = E[x₀ | x_σ = x] for the empirical distribution of ``data`` (Karras et al. 2022, Eq. 3).

    Called like a trained denoiser, ``D(x, sigma)`` with σ a scalar or a per-row [B] tensor, so it plugs
    into the PF-ODE solvers of :mod:`cmtutor.core.solvers`. Rows are processed in chunks to bound memory.
    """

    def __init__(self, data: Tensor, chunk: int = 256) -> None:
        super().__init__()
        if data.ndim != 2:
            raise ValueError(f"data must be [N, D], got {tuple(data.shape)}")
        self.register_buffer("data", data)
        self.chunk = chunk

    def forward(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        s = s.expand(x.shape[0]) if s.ndim == 0 else s
        data = self.data.to(x)
        outs = [posterior_weights(x[i:i + self.chunk], s[i:i + self.chunk], data) @ data
                for i in range(0, x.shape[0], self.chunk)]
        return torch.cat(outs) if outs else x.clone()


def sample_posterior(x_sigma: Tensor, sigma: float, data: Tensor, n: int,
                     generator: torch.Generator | None = None) -> Tensor:
    """n clean points drawn from p(x | x_sigma) for ONE noisy point x_sigma [D]: the one-sample targets of CT."""
    if x_sigma.ndim != 1:
        raise ValueError(f"sample_posterior takes one point [D], got shape {tuple(x_sigma.shape)}")
    w = posterior_weights(x_sigma[None], sigma, data)[0]
    idx = torch.multinomial(w, n, replacement=True, generator=generator)
    return data.to(x_sigma)[idx]


def posterior_variance(x_sigma: Tensor, sigma: Tensor | float, data: Tensor) -> Tensor:
    """tr Cov[x₀ | x_σ] per row ([B]): how far the one-sample estimate x₀ scatters around D*(x_σ, σ)."""
    data = data.to(x_sigma)
    w = posterior_weights(x_sigma, sigma, data)
    mean = w @ data
    second = w @ data.pow(2).sum(1)
    return (second - mean.pow(2).sum(1)).clamp_min(0)
