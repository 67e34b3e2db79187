"""Generating from a trained model, in raw data units.

:class:`Sampler` wraps a trained network with its config and standardiser. Diffusion models sample by
solving the PF-ODE (Heun, ``steps`` steps on a Karras grid); consistency models by one-step or multistep
consistency sampling. The unit noise z is drawn on the CPU from ``seed`` (so the same seed gives the same
noise on any device), which is what "from the same noise" means for the ODE-error metric.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from cmtutor.checkpoint import load_checkpoint
from cmtutor.config import TrainConfig
from cmtutor.data import Standardizer
from cmtutor.methods import get_method
from cmtutor.samplers import consistency_sample, sample_ode

#: Default number of Heun steps when sampling a diffusion model.
DEFAULT_ODE_STEPS = 40


def cm_sigmas(steps: int, sigma_max: float, tau: float) -> list[float]:
    """Noise levels for K-step consistency sampling: [σ_max], then τ, τ/4, τ/16, … (K − 1 of them)."""
    if steps < 1:
        raise ValueError("steps must be at least 1")
    return [sigma_max] + [tau / 4**j for j in range(steps - 1)]


def unit_noise(n: int, shape: tuple[int, ...], seed: int) -> Tensor:
    """n draws of N(0, I) of the given per-sample shape, from a CPU generator seeded with ``seed``."""
    return torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed))


class Sampler:
    """Generates raw-space samples from a trained model (diffusion via its ODE, CMs in K steps)."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, standardizer: Standardizer, dim: int,
                 teacher: nn.Module | None = None) -> None:
        self.model = model
        self.cfg = cfg
        self.standardizer = standardizer
        self.dim = dim
        self.method = get_method(cfg.method)
        self.noise = cfg.noise_config
        self.teacher = teacher

    @classmethod
    def from_checkpoint(cls, path: Any, weights: str = "ema", device: str = "cpu") -> Sampler:
        from cmtutor.train import model_from_checkpoint, teacher_from_checkpoint

        ckpt = load_checkpoint(path, role="--ckpt")
        cfg = TrainConfig.from_dict(ckpt["config"])
        model = model_from_checkpoint(ckpt, weights).to(device)
        teacher = teacher_from_checkpoint(ckpt)
        return cls(model, cfg, Standardizer.from_dict(ckpt["standardizer"]), ckpt["dim"],
                   teacher.to(device) if teacher is not None else None)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def network(self) -> nn.Module:
        """The function that sampling evaluates: the model itself, or for TCM the piecewise f (the student
        for σ ≥ t', the frozen stage-1 model below; see :meth:`cmtutor.methods.Method.sampling_network`)."""
        return self.method.sampling_network(self.model, self.teacher, self.cfg.hp)

    def default_steps(self) -> int:
        return DEFAULT_ODE_STEPS if self.method.ode_sampling else 1

    @torch.no_grad()
    def sample_standardized(self, n: int, steps: int | None = None, seed: int = 0,
                            sigmas: list[float] | None = None) -> Tensor:
        """Samples in the model's standardised coordinates."""
        steps = self.default_steps() if steps is None else steps
        z = unit_noise(n, (self.dim,), seed).to(self.device)
        was_training = self.model.training
        self.model.eval()
        try:
            if self.method.ode_sampling:
                return sample_ode(self.model, z, self.noise.sigma_min, self.noise.sigma_max, steps=steps)
            levels = sigmas or cm_sigmas(steps, self.noise.sigma_max, self.cfg.two_step_sigma)
            gen = torch.Generator(device=self.device).manual_seed(seed + 1)
            return consistency_sample(self.network, z, levels, self.noise.sigma_min, generator=gen)
        finally:
            self.model.train(was_training)

    def sample(self, n: int, steps: int | None = None, seed: int = 0, sigmas: list[float] | None = None) -> Tensor:
        """n samples in raw data units (CPU tensor)."""
        return self.standardizer.decode(self.sample_standardized(n, steps, seed, sigmas)).cpu()
