"""Generating from a trained model, in raw data units.

:class:`Sampler` wraps a trained network with its config and standardiser. Diffusion models sample by
solving the PF-ODE (Heun, ``steps`` steps on a Karras grid); consistency models by one-step or multistep
consistency sampling. The unit noise z is drawn on the CPU from ``seed`` (so the same seed gives the same
noise on any device), which is what "from the same noise" means for the ODE-error metric.

Images: :meth:`Sampler.sample_images` generates in batches and returns uint8 [N, H, W, C]; image i's
noise depends only on (seed, i) (:func:`cmtutor.data.images.image_noise`), whatever the batch size.
The model may be wrapped by DDP or ``torch.compile``: the Sampler uses the plain module inside.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cmtutor.checkpoint import load_checkpoint, model_from_checkpoint, teacher_from_checkpoint
from cmtutor.config.run import TrainConfig
from cmtutor.core.solvers import consistency_sample, flow_map_sample, sample_ode
from cmtutor.data.images import image_noise, to_uint8
from cmtutor.data.sources import sample_shape, scaler_from_dict
from cmtutor.hardware.accel import autocast, unwrap
from cmtutor.methods import get_method
from cmtutor.methods.coupling import ot_renoise

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

    def __init__(self, model: nn.Module, cfg: TrainConfig, standardizer: Any, dim: Any,
                 teacher: nn.Module | None = None) -> None:
        self.model = unwrap(model)
        self.cfg = cfg
        self.standardizer = standardizer
        self.dim = dim
        self.method = get_method(cfg.method)
        self.noise = cfg.noise_config
        self.teacher = teacher

    @classmethod
    def from_checkpoint(cls, path: Any, weights: str = "ema", device: str = "cpu") -> Sampler:
        ckpt = load_checkpoint(path, role="--ckpt")
        cfg = TrainConfig.from_dict(ckpt["config"])
        model = model_from_checkpoint(ckpt, weights).to(device)
        teacher = teacher_from_checkpoint(ckpt)
        return cls(model, cfg, scaler_from_dict(ckpt["standardizer"]), ckpt["dim"],
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
        if self.is_image:
            z = image_noise(0, n, sample_shape(self.dim), seed).to(self.device)
        else:
            z = unit_noise(n, sample_shape(self.dim), seed).to(self.device)
        gen = torch.Generator(device=self.device).manual_seed(seed + 1)
        return self.generate(z, steps, sigmas, gen)

    @property
    def is_image(self) -> bool:
        return not isinstance(self.dim, int)

    def levels(self, steps: int) -> list[float]:
        """The noise levels of K-step sampling: σ_max, then the config's τ, τ/4, … (:func:`cm_sigmas`)."""
        return cm_sigmas(steps, self.noise.sigma_max, self.cfg.two_step_sigma)

    @torch.no_grad()
    def generate(self, z: Tensor, steps: int, sigmas: list[float] | None = None,
                 gen: torch.Generator | None = None) -> Tensor:
        """Samples (standardised coordinates) from unit noise z: the PF-ODE for diffusion, else K-step sampling
        (re-noising between levels with noise from ``gen``, or the flow map's deterministic jumps)."""
        was_training = self.model.training
        self.model.eval()
        try:
            if self.method.ode_sampling:
                return sample_ode(self.model, z, self.noise.sigma_min, self.noise.sigma_max, steps=steps)
            levels = sigmas or self.levels(steps)
            if self.method.multistep == "flow_map":
                return flow_map_sample(self.network, z, levels)  # type: ignore[return-value]
            pair = partial(ot_renoise, batch=self.cfg.batch_size) if self.cfg.renoise == "ot" else None
            return consistency_sample(self.network, z, levels, self.noise.sigma_min, generator=gen, pair=pair)
        finally:
            self.model.train(was_training)

    def sample(self, n: int, steps: int | None = None, seed: int = 0, sigmas: list[float] | None = None) -> Tensor:
        """n samples in raw data units (CPU tensor)."""
        return self.standardizer.decode(self.sample_standardized(n, steps, seed, sigmas)).cpu()

    @torch.no_grad()
    def iter_images(self, n: int, steps: int | None = None, seed: int = 0, batch_size: int = 500,
                    sigmas: list[float] | None = None, precision: str | None = None) -> Iterator[np.ndarray]:
        """Generate ``n`` images in batches, yielding uint8 [b, H, W, C] arrays.

        ``precision`` (default: the run's) selects bf16 autocast on a GPU; the model runs channels-last
        if it was trained so.
        """
        if not self.is_image:
            raise ValueError("iter_images needs an image model; use sample() for vectors")
        steps = self.default_steps() if steps is None else steps
        shape = sample_shape(self.dim)
        prec = self.cfg.precision if precision is None else precision
        gen = torch.Generator(device=self.device).manual_seed(seed + 1)
        for start in range(0, n, batch_size):
            z = image_noise(start, min(batch_size, n - start), shape, seed).to(self.device)
            if self.cfg.channels_last:
                z = z.contiguous(memory_format=torch.channels_last)
            with autocast(self.device, prec):
                x = self.generate(z, steps, sigmas, gen)
            yield to_uint8(self.standardizer.decode(x.float()))

    def sample_images(self, n: int, steps: int | None = None, seed: int = 0, batch_size: int = 500,
                      sigmas: list[float] | None = None, precision: str | None = None) -> np.ndarray:
        """``n`` generated images as uint8 [n, H, W, C] (see :meth:`iter_images`)."""
        parts = list(self.iter_images(n, steps, seed, batch_size, sigmas, precision))
        return np.concatenate(parts) if parts else np.zeros((0, *self.image_hwc), np.uint8)

    @property
    def image_hwc(self) -> tuple[int, int, int]:
        c, h, w = sample_shape(self.dim)
        return (h, w, c)
