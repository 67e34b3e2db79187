"""PF-ODE solvers and consistency sampling against closed forms.

For Gaussian data x0 ~ N(0, σ_d² I) the ideal denoiser is D(x, σ) = σ_d²/(σ² + σ_d²)·x and the exact PF-ODE
solution is x(σ) = x(σ0)·√(σ² + σ_d²)/√(σ0² + σ_d²).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import cmtutor.sampler as sampler_module
from cmtutor.config import default_config
from cmtutor.core.solvers import consistency_sample, ode_step, sample_ode, sampling_sigmas, solve_ode
from cmtutor.errors import UserError
from cmtutor.methods.coupling import ot_renoise
from cmtutor.sampler import cm_sigmas
from cmtutor.training.run import build_run

SD = 0.5


class GaussianDenoiser(nn.Module):
    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        s = torch.as_tensor(sigma, dtype=x.dtype)
        s = s.reshape(-1, *([1] * (x.ndim - 1))) if s.ndim else s
        return SD**2 / (s**2 + SD**2) * x


def exact(x: torch.Tensor, s0: float, s1: float) -> torch.Tensor:
    return x * math.sqrt(s1**2 + SD**2) / math.sqrt(s0**2 + SD**2)


def test_solver_orders_of_convergence() -> None:
    """Doubling the steps halves Euler's error (first order) and quarters Heun's (second order)."""
    d = GaussianDenoiser()
    x = torch.randn(256, 2, dtype=torch.float64) * 80
    truth = exact(x, 80.0, 0.002)

    def err(n: int, solver: str) -> float:
        return (solve_ode(d, x, sampling_sigmas(n, 0.002, 80.0), solver) - truth).abs().max().item()

    e36, e72 = err(36, "euler"), err(72, "euler")
    h36, h72 = err(36, "heun"), err(72, "heun")
    assert 1.7 < e36 / e72 < 2.3
    assert 3.4 < h36 / h72 < 4.6
    assert h36 < e36 / 5


def test_single_steps_and_trajectory() -> None:
    d = GaussianDenoiser()
    x = torch.randn(8, 2, dtype=torch.float64)
    # Euler: x + (σ' − σ)(x − D)/σ
    e = ode_step(d, x, 2.0, 1.0, "euler")
    assert torch.allclose(e, x + (1.0 - 2.0) * (x - d(x, torch.tensor(2.0))) / 2.0)
    # Heun to σ' = 0 falls back to Euler
    assert torch.allclose(ode_step(d, x, 1.0, 0.0, "heun"), ode_step(d, x, 1.0, 0.0, "euler"))
    # per-sample σ tensors
    s = torch.tensor([2.0] * 8, dtype=torch.float64)
    assert torch.allclose(ode_step(d, x, s, s / 2, "heun"), ode_step(d, x, 2.0, 1.0, "heun"))
    final, traj = solve_ode(d, x, [3.0, 2.0, 1.0], "heun", return_trajectory=True)
    assert traj.shape == (3, 8, 2) and torch.equal(traj[-1], final) and torch.equal(traj[0], x)
    with pytest.raises(ValueError):
        ode_step(d, x, 2.0, 1.0, "rk4")  # type: ignore[arg-type]


def test_sample_ode_starts_at_sigma_max() -> None:
    d = GaussianDenoiser()
    z = torch.randn(4, 2, dtype=torch.float64)
    out, traj = sample_ode(d, z, 0.002, 80.0, steps=10, return_trajectory=True)
    assert torch.allclose(traj[0], 80.0 * z)
    assert traj.shape[0] == 11


def test_consistency_sampling_steps() -> None:
    calls: list[float] = []

    class Spy(nn.Module):
        def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            calls.append(float(sigma[0]))
            return torch.zeros_like(x)

    z = torch.ones(3, 2)
    out = consistency_sample(Spy(), z, [80.0, 0.8], 0.002, generator=torch.Generator().manual_seed(0))
    assert calls == pytest.approx([80.0, 0.8])
    assert out.shape == z.shape
    assert cm_sigmas(1, 80.0, 0.8) == [80.0]
    assert cm_sigmas(3, 80.0, 0.8) == [80.0, 0.8, 0.2]


def test_consistency_sampling_re_noises_with_the_given_pairing() -> None:
    seen: list[torch.Tensor] = []

    class Spy(nn.Module):
        def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            seen.append(x.clone())
            return torch.full_like(x, 0.5)

    z, r = torch.zeros(4, 2), (0.8**2 - 0.002**2) ** 0.5
    independent = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    flip = lambda x, noise: noise.flip(0)  # noqa: E731 - any re-ordering of the fresh draws
    consistency_sample(Spy(), z, [80.0, 0.8], 0.002, generator=torch.Generator().manual_seed(0), pair=flip)
    assert torch.allclose(seen[1], 0.5 + r * independent.flip(0))
    consistency_sample(Spy(), z, [80.0, 0.8], 0.002, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(seen[3], 0.5 + r * independent)


def test_ot_re_noising_assigns_fresh_noise_within_chunks_of_the_training_batch() -> None:
    gen = torch.Generator().manual_seed(1)
    x, noise = torch.randn(10, 3, generator=gen), torch.randn(10, 3, generator=gen)
    out = ot_renoise(x, noise, batch=5)
    for chunk in (slice(0, 5), slice(5, 10)):  # a permutation of each chunk's own draws, the cheapest one
        assert sorted(out[chunk].sum(1).tolist()) == pytest.approx(sorted(noise[chunk].sum(1).tolist()))
        best = min(float((x[chunk] - noise[chunk][list(p)]).pow(2).sum()) for p in itertools.permutations(range(5)))
        assert float((x[chunk] - out[chunk]).pow(2).sum()) == pytest.approx(best)


def test_the_sampler_re_noises_as_the_config_says(monkeypatch: pytest.MonkeyPatch, data_root: Path) -> None:
    batches: list[int] = []
    real = sampler_module.ot_renoise
    monkeypatch.setattr(sampler_module, "ot_renoise", lambda x, n, batch: batches.append(batch) or real(x, n, batch))
    cfg = default_config("ot", "digits", batch_size=4, device="cpu", net={"kind": "unet", "preset": "tiny"})
    assert cfg.renoise == "ot" and default_config("ict", "digits").renoise == "independent"
    assert default_config("ot", "moons").renoise == "ot"
    s = build_run(cfg).sampler()
    ot = s.sample_images(6, steps=2, seed=0)
    assert batches == [4]  # paired in chunks of the training batch
    s.cfg = dataclasses.replace(cfg, renoise="independent")
    assert (s.sample_images(6, steps=2, seed=0) != ot).any() and batches == [4]
    with pytest.raises(UserError, match="renoise must be one of"):
        dataclasses.replace(cfg, renoise="matched")
    assert "renoise" not in s.cfg.to_dict() and cfg.to_dict()["renoise"] == "ot"  # old configs keep their key
