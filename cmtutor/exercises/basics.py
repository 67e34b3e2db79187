"""Exercises of notebooks 00–03: the course map (a warm-up), diffusion, consistency models, consistency training."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from cmtutor.core.losses import pseudo_huber
from cmtutor.core.precond import cm_scalings, edm_scalings
from cmtutor.core.schedules import ict_num_scales, karras_sigmas, lognormal_pair_probs
from cmtutor.core.solvers import ode_step
from cmtutor.exercises import Exercise, ToyConsistency, ToyDenoiser, register
from cmtutor.exercises import sigmas_for_tests as _sigmas
from cmtutor.methods.cd import cd_target


def _ex_0_1(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    yield (5, 0.002, 80.0, 7.0), {}
    yield (18, 0.002, 10.0, 7.0), {}
    yield (3, 0.01, 1.0, 3.0), {}


def _ex_1_1(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    for sd in (0.5, 1.0):
        yield (_sigmas(gen, 16), sd), {}


def _ex_1_2(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    for s, s_next in ((2.0, 1.2), (10.0, 3.0), (0.5, 0.2)):
        yield (ToyDenoiser(), torch.randn(64, 2, generator=gen, dtype=torch.float64) * s, s, s_next), {}


def _ex_2_1(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    yield (torch.cat([torch.tensor([0.002], dtype=torch.float64), _sigmas(gen, 15)]), 0.5, 0.002), {}
    yield (_sigmas(gen, 16) + 0.01, 1.0, 0.01), {}


def _ex_2_2(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    s_hi = _sigmas(gen, 32) + 0.1
    s_lo = s_hi * 0.7
    x_hi = torch.randn(32, 2, generator=gen, dtype=torch.float64) * s_hi[:, None]
    yield (ToyDenoiser(), ToyConsistency(), x_hi, s_hi, s_lo), {}


def _ex_3_1(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    for total, s0, s1 in ((400_000, 10, 1280), (8000, 10, 160), (1000, 4, 64)):
        for k in (0, 1, total // 9, total // 4, total // 2, total - 1, total):
            yield (k, total, s0, s1), {}


def _ex_3_2(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    yield (karras_sigmas(11, 0.002, 80.0), -1.1, 2.0), {}
    yield (karras_sigmas(41, 0.002, 10.0), -0.5, 1.0), {}


def _ex_3_3(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    a = torch.randn(16, 2, generator=gen, dtype=torch.float64)
    b = torch.randn(16, 2, generator=gen, dtype=torch.float64)
    yield (a, b, 0.03), {}
    yield (a, a + 1e-3, 0.5), {}
    yield (torch.randn(4, 3, 8, 8, generator=gen, dtype=torch.float64),
           torch.randn(4, 3, 8, 8, generator=gen, dtype=torch.float64), 0.0299), {}


def _register() -> None:
    register(Exercise("0.1", "the Karras noise levels σ_1 < … < σ_N", karras_sigmas, _ex_0_1))
    register(Exercise("1.1", "the EDM scalings c_skip, c_out, c_in", edm_scalings, _ex_1_1))
    register(Exercise("1.2", "one Heun step of the PF-ODE",
                      lambda d, x, s, s_next: ode_step(d, x, s, s_next, "heun"), _ex_1_2))
    register(Exercise("2.1", "the consistency-model scalings with the boundary condition", cm_scalings, _ex_2_1))
    register(Exercise("2.2", "the consistency-distillation target",
                      lambda t, f, x, sh, sl: cd_target(t, f, x, sh, sl, "heun"), _ex_2_2))
    register(Exercise("3.1", "iCT's doubling curriculum N(k)", ict_num_scales, _ex_3_1, rtol=0, atol=0))
    register(Exercise("3.2", "the discrete lognormal pair probabilities", lognormal_pair_probs, _ex_3_2))
    register(Exercise("3.3", "the pseudo-Huber distance", pseudo_huber, _ex_3_3))


_register()
