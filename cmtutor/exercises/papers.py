"""Exercises of notebooks 04–06: couplings (OT, GC), truncated CMs, direct CMs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from cmtutor.core.solvers import sample_ode
from cmtutor.exercises import Exercise, Mistake, ToyConsistency, ToyDenoiser, register
from cmtutor.exercises import sigmas_for_tests as _sigmas
from cmtutor.methods.coupling import gc_endpoint, gc_mix, ot_couple, ot_permutation
from cmtutor.methods.direct import direct_target
from cmtutor.methods.tcm import TruncatedConsistency, boundary_weights, tcm_target


class ToyStageOne(ToyConsistency):
    """A second fixed smooth function of (x, σ), standing in for a frozen stage-1 consistency model."""

    def value(self, x: Tensor, s: Tensor) -> Tensor:
        return torch.tanh(x) * (1 + 0.1 * s)


def _ex_4_1(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    for n in (5, 64):
        yield (torch.randn(n, 2, generator=gen, dtype=torch.float64) * 2 + 1,
               torch.randn(n, 2, generator=gen, dtype=torch.float64)), {}


def _ex_4_2(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    for mu in (0.0, 0.3, 0.5, 1.0):
        x = torch.randn(128, 2, generator=gen, dtype=torch.float64)
        z = torch.randn(128, 2, generator=gen, dtype=torch.float64)
        yield (ToyConsistency(), x, z, _sigmas(gen, 128), mu, torch.rand(128, generator=gen, dtype=torch.float64)), {}


def _ex_5_1(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    for t_prime in (0.5, 1.0, 2.0):
        r = torch.cat([_sigmas(gen, 30), torch.tensor([t_prime, t_prime * 0.999], dtype=torch.float64)])
        yield (ToyConsistency(), ToyStageOne(), torch.randn(32, 2, generator=gen, dtype=torch.float64), r,
               t_prime), {}


def _ex_5_2(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    for w_b, frac in ((0.1, 0.25), (1.0, 0.5), (0.0, 0.25), (0.1, 0.0)):
        t = 1.0 + torch.rand(40, generator=gen, dtype=torch.float64) * 5
        boundary = torch.rand(40, generator=gen, dtype=torch.float64) < frac
        t = torch.where(boundary, torch.ones_like(t), t)
        r = t * 0.9
        yield (t, r, boundary, w_b), {}


def _ex_6_1(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    for steps in (4, 10):
        sig = _sigmas(gen, 32) + 0.01
        x_t = torch.randn(32, 2, generator=gen, dtype=torch.float64) * sig[:, None]
        yield (ToyDenoiser(), x_t, sig, 0.002, steps), {}


def _ex_6_2(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    for smax, steps in ((10.0, 20), (5.0, 8)):
        yield (ToyConsistency(), ToyDenoiser(), torch.randn(64, 2, generator=gen, dtype=torch.float64), 0.002,
               smax, steps), {}


def one_step_ode_error(f: nn.Module, teacher: nn.Module, z: Tensor, sigma_min: float, sigma_max: float,
                       steps: int) -> Tensor:
    """Reference of 6.2: mean ‖f(σ_max z, σ_max) − Φ(σ_max z)‖²/D, Φ the teacher's Heun solve (Karras grid)."""
    with torch.no_grad():
        ref = sample_ode(teacher, z, sigma_min, sigma_max, steps=steps)
        x = f(z * sigma_max, torch.full((z.shape[0],), sigma_max, dtype=z.dtype))
    return ((x - ref) ** 2).flatten(1).mean(1).mean()


def _register() -> None:
    register(Exercise("4.1", "the minibatch optimal-transport coupling", ot_couple, _ex_4_1,
                      guards=(ot_couple, ot_permutation),
                      mistakes=(Mistake(lambda x, z: (x, z), "that is the independent coupling: re-order z so "
                                        "the total squared distance ‖x_i − z_π(i)‖² is smallest"),)))
    register(Exercise("4.2", "the generator-induced (GC) mixed endpoint",
                      lambda g, x, z, s, mu, u: gc_mix(x, gc_endpoint(g, x, z, s), mu, u), _ex_4_2, points=2,
                      grad_check=True, guards=(gc_endpoint, gc_mix),
                      mistakes=(Mistake(lambda g, x, z, s, mu, u: gc_mix(x, gc_endpoint(g, x, z, s), 1 - mu, 1 - u),
                                        "μ is the share of generated endpoints: take x̂ where u < μ"),)))
    register(Exercise("5.1", "the TCM target network (student above t', frozen stage 1 below)",
                      tcm_target, _ex_5_1, points=2,
                      grad_check=True, guards=(tcm_target, TruncatedConsistency)))
    register(Exercise("5.2", "the TCM loss weights with the boundary term", boundary_weights, _ex_5_2))
    register(Exercise("6.1", "the Direct CM target: the teacher's full ODE solve",
                      lambda d, x, s, smin, k: direct_target(d, x, s, smin, k, "heun"), _ex_6_1, points=2,
                      grad_check=True, guards=(direct_target,)))
    register(Exercise("6.2", "the ODE-solving error of one-step samples", one_step_ode_error, _ex_6_2))


_register()
