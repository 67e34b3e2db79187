"""Noise grids, discretisation curricula and time-pair distributions.

Conventions: grids are returned **ascending**, σ_1 < σ_2 < … < σ_N (the iCT paper's notation; the
original CM code indexes the other way round, with index 0 at σ_max). A consistency pair is an
adjacent pair (σ_i, σ_{i+1}); the online network sees the *larger* level σ_{i+1} and the target the
*smaller* σ_i, both built from the same noise z.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> Tensor:
    """Karras et al. (2022) grid, Eq. 5, ascending: σ_i = (ε^{1/ρ} + i/(N−1)·(T^{1/ρ} − ε^{1/ρ}))^ρ.

    Returns ``n`` levels from σ_min to σ_max inclusive (float64 for exactness; cast as needed).
    """
    if n < 2:
        raise ValueError(f"a Karras grid needs at least 2 levels, got {n}")
    i = torch.arange(n, dtype=torch.float64)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    return (lo + i / (n - 1) * (hi - lo)) ** rho


# --- Consistency training, Song et al. 2023 (Appendix C, "adaptive" schedules) -----------------

def ct_num_scales(k: int, total_steps: int, s0: int = 2, s1: int = 150) -> int:
    """N(k) = ⌈√(k/K·((s1+1)² − s0²) + s0²) − 1⌉ + 1 (Song et al. 2023, Table 3 / App. C).

    Grows from N(0) = s0 to N(K) = s1 + 1 levels.
    """
    k = min(max(k, 0), total_steps)
    inner = math.sqrt(k / total_steps * ((s1 + 1) ** 2 - s0**2) + s0**2)
    # round before ceil so that float error cannot push an exact integer up by one
    return int(math.ceil(round(inner - 1.0, 9))) + 1


def ct_target_ema(k: int, total_steps: int, s0: int = 2, s1: int = 150, mu0: float = 0.9) -> float:
    """Target-network EMA rate μ(k) = exp(s0·ln μ0 / N(k)) (Song et al. 2023, App. C).

    This is the paper's formula, with μ(0) = μ0. The official code divides by N(k) − 1 instead.
    """
    return math.exp(s0 * math.log(mu0) / ct_num_scales(k, total_steps, s0, s1))


# --- Improved consistency training, Song & Dhariwal 2023 (Section 3.3–3.5) ------------------------

def ict_stage_length(total_steps: int, s0: int = 10, s1: int = 1280) -> int:
    """K' = ⌊K / (log2⌊s1/s0⌋ + 1)⌋: steps per stage of the doubling curriculum (iCT Eq. 8)."""
    return max(1, total_steps // (int(math.log2(s1 // s0)) + 1))


def ict_num_scales(k: int, total_steps: int, s0: int = 10, s1: int = 1280) -> int:
    """N(k) = min(s0·2^⌊k/K'⌋, s1) + 1 (iCT Eq. 8): N doubles every K' steps, then stays at s1 + 1."""
    stage = k // ict_stage_length(total_steps, s0, s1)
    return min(s0 * 2**stage, s1) + 1


def lognormal_pair_probs(sigmas: Tensor, p_mean: float = -1.1, p_std: float = 2.0) -> Tensor:
    """Discrete lognormal over adjacent pairs (iCT Section 3.5).

    p(i) ∝ erf((ln σ_{i+1} − P_mean)/(√2·P_std)) − erf((ln σ_i − P_mean)/(√2·P_std)) for i = 1..N−1:
    the probability that ln σ ~ N(P_mean, P_std²) lands in [σ_i, σ_{i+1}). ``sigmas`` ascending.
    """
    log_s = torch.log(sigmas.to(torch.float64))
    cdf = torch.erf((log_s - p_mean) / (math.sqrt(2.0) * p_std))
    p = cdf[1:] - cdf[:-1]
    return p / p.sum()


def sample_pair_indices(probs: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
    """Draw n interval indices i (0-based, pair (σ_i, σ_{i+1})) from the given probabilities."""
    return torch.multinomial(probs.float(), n, replacement=True, generator=generator)


def lognormal_sigmas(n: int, p_mean: float, p_std: float, generator: torch.Generator | None = None,
                     device: torch.device | str | None = None) -> Tensor:
    """Continuous lognormal noise levels ln σ ~ N(P_mean, P_std²) (EDM training, Karras et al. 2022)."""
    return torch.exp(p_mean + p_std * torch.randn(n, generator=generator, device=device))
