"""Exercises of notebooks 00–03: the course map (a warm-up), diffusion, consistency models, consistency training."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from cmtutor.core.losses import pseudo_huber
from cmtutor.core.precond import cm_scalings, edm_scalings
from cmtutor.core.schedules import ict_num_scales, karras_sigmas, lognormal_pair_probs
from cmtutor.core.solvers import ode_step
from cmtutor.exercises import Exercise, Mistake, ToyConsistency, ToyDenoiser, register
from cmtutor.exercises import sigmas_for_tests as _sigmas
from cmtutor.methods.cd import cd_target


def _ex_0_1(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    yield (5, 0.002, 80.0, 7.0), {}
    yield (18, 0.002, 10.0, 7.0), {}
    yield (3, 0.01, 1.0, 3.0), {}


def _hidden_0_1(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    yield (2, 0.002, 80.0, 7.0), {}
    yield (9, 0.005, 20.0, 5.0), {}
    yield (40, 0.002, 10.0, 7.0), {}


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


def _hidden_3_1(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    for k in (0, 7, 333, 1000, 2999, 3000):
        yield (k, 3000, 5, 80), {}


def _ex_3_2(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    yield (karras_sigmas(11, 0.002, 80.0), -1.1, 2.0), {}
    yield (karras_sigmas(41, 0.002, 10.0), -0.5, 1.0), {}


def _hidden_3_2(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    yield (karras_sigmas(21, 0.002, 80.0), -1.1, 2.0), {}
    yield (karras_sigmas(6, 0.01, 5.0), 0.0, 0.5), {}


def _ex_3_3(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    a = torch.randn(16, 2, generator=gen, dtype=torch.float64)
    b = torch.randn(16, 2, generator=gen, dtype=torch.float64)
    yield (a, b, 0.03), {}
    yield (a, a + 1e-3, 0.5), {}
    yield (torch.randn(4, 3, 8, 8, generator=gen, dtype=torch.float64),
           torch.randn(4, 3, 8, 8, generator=gen, dtype=torch.float64), 0.0299), {}


# --- classic mistakes, with the hint a student gets when their answer matches one -------------------------

def _edm_no_sqrt(sigma: Any, sigma_data: float) -> Any:
    c_skip, c_out, _ = edm_scalings(sigma, sigma_data)
    return c_skip, c_out, 1.0 / (sigma**2 + sigma_data**2)


def _cm_no_sqrt(sigma: Any, sigma_data: float, sigma_min: float) -> Any:
    c_skip, c_out, _ = cm_scalings(sigma, sigma_data, sigma_min)
    return c_skip, c_out, 1.0 / (sigma**2 + sigma_data**2)


_NO_SQRT = ("c_in = 1/√(σ² + σ_d²): without the square root the network's input is not of unit variance")
_BOUNDARY = ("without σ_min the boundary condition fails: at σ = σ_min, c_skip must be exactly 1 and c_out "
             "exactly 0, so shift σ by σ_min in c_skip and c_out (not in c_in)")


def _target_wrong_level(teacher: Any, target_net: Any, x_hi: Any, sigma_hi: Any, sigma_lo: Any) -> Any:
    with torch.no_grad():
        return target_net(ode_step(teacher, x_hi, sigma_hi, sigma_lo, "heun"), sigma_hi)


def _target_no_teacher_step(teacher: Any, target_net: Any, x_hi: Any, sigma_hi: Any, sigma_lo: Any) -> Any:
    with torch.no_grad():
        return target_net(x_hi, sigma_lo)


def _target_euler(teacher: Any, target_net: Any, x_hi: Any, sigma_hi: Any, sigma_lo: Any) -> Any:
    return cd_target(teacher, target_net, x_hi, sigma_hi, sigma_lo, "euler")


def _pseudo_huber_no_shift(a: Any, b: Any, c: float) -> Any:
    return pseudo_huber(a, b, c) + c


def _register() -> None:
    register(Exercise("0.1", "the Karras noise levels σ_1 < … < σ_N", karras_sigmas, _ex_0_1, hidden=_hidden_0_1,
                      mistakes=(Mistake(lambda n, lo, hi, rho: karras_sigmas(n, lo, hi, rho).flip(0),
                                        "the course lists the levels increasing: σ_1 = σ_min, σ_N = σ_max"),)))
    register(Exercise("1.1", "the EDM scalings c_skip, c_out, c_in", edm_scalings, _ex_1_1,
                      mistakes=(Mistake(_edm_no_sqrt, _NO_SQRT),)))
    register(Exercise("1.2", "one Heun step of the PF-ODE",
                      lambda d, x, s, s_next: ode_step(d, x, s, s_next, "heun"), _ex_1_2, guards=(ode_step,),
                      mistakes=(Mistake(lambda d, x, s, s_next: ode_step(d, x, s, s_next, "euler"),
                                        "that is an Euler step: Heun averages the slope at σ with the slope at "
                                        "the Euler prediction, at σ_next"),)))
    register(Exercise("2.1", "the consistency-model scalings with the boundary condition", cm_scalings, _ex_2_1,
                      mistakes=(Mistake(_cm_no_sqrt, _NO_SQRT),
                                Mistake(lambda s, sd, smin: edm_scalings(s, sd), _BOUNDARY))))
    register(Exercise("2.2", "the consistency-distillation target",
                      lambda t, f, x, sh, sl: cd_target(t, f, x, sh, sl, "heun"), _ex_2_2, points=2,
                      grad_check=True, guards=(cd_target,),
                      mistakes=(Mistake(_target_wrong_level, "the target network is evaluated at the smaller "
                                        "level σ_lo, where x̂_lo lies, not at σ_hi"),
                                Mistake(_target_no_teacher_step, "the target network's input is x̂_lo, one "
                                        "teacher step from x_hi down to σ_lo, not x_hi itself"),
                                Mistake(_target_euler, "the teacher's step is Heun's (ode_step(..., \"heun\")), "
                                        "not Euler's"))))
    register(Exercise("3.1", "iCT's doubling curriculum N(k)", ict_num_scales, _ex_3_1, rtol=0, atol=0,
                      hidden=_hidden_3_1))
    register(Exercise("3.2", "the discrete lognormal pair probabilities", lognormal_pair_probs, _ex_3_2,
                      hidden=_hidden_3_2))
    register(Exercise("3.3", "the pseudo-Huber distance", pseudo_huber, _ex_3_3,
                      mistakes=(Mistake(_pseudo_huber_no_shift, "subtract c: the distance between equal points "
                                        "must be 0, √(‖a − b‖² + c²) − c"),)))


_register()
