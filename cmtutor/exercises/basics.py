"""Exercises of notebooks 00–03: the course map (a warm-up), diffusion, consistency models, consistency training."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from cmtutor.core.losses import pseudo_huber, squared_l2
from cmtutor.core.precond import edm_scalings
from cmtutor.core.schedules import ict_num_scales, karras_sigmas, lognormal_pair_probs
from cmtutor.core.solvers import consistency_sample, ode_step
from cmtutor.exercises import Exercise, Mistake, ToyConsistency, ToyDenoiser, register
from cmtutor.exercises import sigmas_for_tests as _sigmas
from cmtutor.methods.base import expand
from cmtutor.methods.cd import cd_loss, cd_target
from cmtutor.methods.ct import ict_loss


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


def _ex_2_2(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    for levels, sigma_min in (([10.0], 0.002), ([10.0, 1.0], 0.002), ([80.0, 2.0, 0.5, 0.05], 0.002),
                              ([10.0, 0.5, 0.05], 0.02)):  # τ near σ_min: where √(τ² − σ_min²) differs from τ
        z = torch.randn(64, 2, generator=gen, dtype=torch.float64)
        yield (ToyConsistency(), z, levels, sigma_min, torch.Generator().manual_seed(len(levels))), {}


def _hidden_2_2(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    z = torch.randn(6, 3, 4, 4, generator=gen, dtype=torch.float64)  # images: [B, C, H, W]
    yield (ToyConsistency(), z, [80.0, 0.8], 0.002, torch.Generator().manual_seed(7)), {}


def _draws(gen: torch.Generator, shape: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    """(x, z, σ_lo, σ_hi) for a loss exercise: data, unit noise and per-sample adjacent levels σ_lo < σ_hi."""
    s_hi = _sigmas(gen, shape[0]) + 0.1
    s_lo = s_hi * (0.5 + 0.4 * torch.rand(shape[0], generator=gen, dtype=torch.float64))
    return (torch.randn(*shape, generator=gen, dtype=torch.float64),
            torch.randn(*shape, generator=gen, dtype=torch.float64), s_lo, s_hi)


def _ex_2_1(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    yield (ToyConsistency(), ToyDenoiser(), *_draws(gen, (32, 2))), {}


def _hidden_2_1(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    yield (ToyConsistency(), ToyDenoiser(), *_draws(gen, (8, 3, 4, 4))), {}  # images: [B, C, H, W]


class ToyStandIn(ToyConsistency):
    """A second fixed function of (x, σ): the target network θ⁻ when it is not the online network."""

    def value(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return x / (1 + s) + 0.2 * torch.cos(x * s)


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
    yield (ToyConsistency(), ToyStandIn(), *_draws(gen, (32, 2)), 0.03), {}
    yield (ToyConsistency(), ToyStandIn(), *_draws(gen, (32, 2)), 0.5), {}


def _hidden_3_3(gen: torch.Generator) -> Iterable[tuple[tuple[Any, ...], dict[str, Any]]]:
    yield (ToyConsistency(), ToyStandIn(), *_draws(gen, (8, 3, 4, 4)), 0.0299), {}


# --- classic mistakes, with the hint a student gets when their answer matches one -------------------------

def _edm_no_sqrt(sigma: Any, sigma_data: float) -> Any:
    c_skip, c_out, _ = edm_scalings(sigma, sigma_data)
    return c_skip, c_out, 1.0 / (sigma**2 + sigma_data**2)


_NO_SQRT = ("c_in = 1/√(σ² + σ_d²): without the square root the network's input is not of unit variance")


def _renoise_without_min(model: Any, z: Any, sigmas: Any, sigma_min: float, generator: Any) -> Any:
    return consistency_sample(model, z, sigmas, 0.0, generator)


def _no_renoise(model: Any, z: Any, sigmas: Any, sigma_min: float, generator: Any) -> Any:
    x = model(z * sigmas[0], sigmas[0])
    for tau in sigmas[1:]:
        x = model(x, tau)
    return x


def _cd_loss_with(target_of: Any, reduce: Any = squared_l2) -> Any:
    """A CD loss whose target is ``target_of(model, teacher, x, z, s_lo, s_hi, x_hi)``: the classic mistakes."""
    def loss(model: Any, teacher: Any, x: Any, z: Any, s_lo: Any, s_hi: Any) -> Any:
        x_hi = x + expand(s_hi, x) * z
        with torch.no_grad():
            target = target_of(model, teacher, x, z, s_lo, s_hi, x_hi)
        return reduce(model(x_hi, s_hi), target).mean()
    return loss


def _heun(teacher: Any, x_hi: Any, s_hi: Any, s_lo: Any) -> Any:
    return ode_step(teacher, x_hi, s_hi, s_lo, "heun")


_CD_MISTAKES = (
    Mistake(_cd_loss_with(lambda f, t, x, z, lo, hi, xh: f(_heun(t, xh, hi, lo), hi)),
            "the target network is evaluated at the smaller level σ_lo, where x̂_lo lies, not at σ_hi"),
    Mistake(_cd_loss_with(lambda f, t, x, z, lo, hi, xh: f(x + expand(lo, x) * z, lo)),
            "x + σ_lo·z is consistency training's point (notebook 03); CD moves x_hi one teacher Heun step "
            "down to σ_lo"),
    Mistake(_cd_loss_with(lambda f, t, x, z, lo, hi, xh: f(ode_step(t, xh, hi, lo, "euler"), lo)),
            "the teacher's step is Heun's (ode_step(..., \"heun\")), not Euler's"),
    Mistake(_cd_loss_with(lambda f, t, x, z, lo, hi, xh: _heun(t, xh, hi, lo)),
            "the target is the network's value at x̂_lo, f_θ(x̂_lo, σ_lo), not the point x̂_lo itself"),
    Mistake(_cd_loss_with(lambda f, t, x, z, lo, hi, xh: f(_heun(t, xh, hi, lo), lo),
                          lambda a, b: (a - b).flatten(1).pow(2).sum(1)),
            "the course's squared L2 is the mean over coordinates, ‖a − b‖²/D, not the sum"),
)


def _ict_loss_with(target_of: Any, distance: Any = None, weighted: bool = True) -> Any:
    """An iCT loss with another target, distance or weighting: the classic mistakes."""
    def loss(model: Any, target_net: Any, x: Any, z: Any, s_lo: Any, s_hi: Any, c: float) -> Any:
        with torch.no_grad():
            target = target_of(model, target_net, x, z, s_lo)
        d = (distance or pseudo_huber)(model(x + expand(s_hi, x) * z, s_hi), target, c)
        return ((1.0 / (s_hi - s_lo) if weighted else 1.0) * d).mean()
    return loss


def _same_z(f: Any, g: Any, x: Any, z: Any, lo: Any) -> Any:
    return g(x + expand(lo, x) * z, lo)


_ICT_MISTAKES = (
    Mistake(_ict_loss_with(lambda f, g, x, z, lo: f(x + expand(lo, x) * z, lo)),
            "the target comes from θ⁻, the target_net argument (the wrong network: with CT's EMA target it is "
            "not the online model; iCT passes the online model itself as target_net)"),
    Mistake(_ict_loss_with(_same_z, weighted=False), "iCT weights each pair by λ = 1/(σ_hi − σ_lo)"),
    Mistake(_ict_loss_with(_same_z, distance=lambda a, b, c: squared_l2(a, b)),
            "iCT's distance is pseudo-Huber, √(‖a − b‖² + c²) − c, not the squared L2"),
    Mistake(_ict_loss_with(_same_z, distance=lambda a, b, c: pseudo_huber(a, b, c) + c),
            "subtract c: the distance between equal points must be 0, √(‖a − b‖² + c²) − c"),
    Mistake(_ict_loss_with(_same_z, distance=lambda a, b, c: pseudo_huber(a, b, 0.0)),
            "pseudo-Huber keeps c: √(‖a − b‖² + c²) − c, which is quadratic for differences smaller than c"),
)


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
    register(Exercise("2.1", "the consistency-distillation loss", cd_loss, _ex_2_1, hidden=_hidden_2_1, points=3,
                      grad_check=True, guards=(cd_loss, cd_target), mistakes=_CD_MISTAKES,
                      grad_hint="the target side is held fixed: compute the teacher's step and f_θ(x̂_lo, σ_lo) "
                      "under torch.no_grad() (the stop-gradient sg), so only f_θ(x_hi, σ_hi) is differentiated",
                      random_hint="use the z you are given, at both levels; do not draw new noise inside the loss"))
    register(Exercise("2.2", "multistep consistency sampling", consistency_sample, _ex_2_2, hidden=_hidden_2_2,
                      mistakes=(Mistake(_renoise_without_min, "re-noise to the level τ with standard deviation "
                                        "√(τ² − σ_min²): x already carries σ_min of noise"),
                                Mistake(_no_renoise, "after each jump add fresh noise, x + √(τ² − σ_min²)·z', "
                                        "before the next jump from τ")),
                      random_hint="draw the fresh noise with the generator you are given, "
                      "torch.randn(z.shape, generator=generator, dtype=z.dtype)"))
    register(Exercise("3.1", "iCT's doubling curriculum N(k)", ict_num_scales, _ex_3_1, rtol=0, atol=0,
                      hidden=_hidden_3_1,
                      mistakes=(Mistake(lambda k, total, s0, s1: ict_num_scales(k, total, s0, s1) - 1,
                                        "N counts levels: s0·2^j intervals need s0·2^j + 1 levels"),)))
    register(Exercise("3.2", "the discrete lognormal pair probabilities", lognormal_pair_probs, _ex_3_2,
                      hidden=_hidden_3_2,
                      mistakes=(Mistake(lambda sig, m, s: lognormal_pair_probs(sig, -m, s),
                                        "mind the sign of P_mean: ln σ is centred at P_mean = −1.1, σ ≈ 0.33"),
                                Mistake(lambda sig, m, s: lognormal_pair_probs(sig.double().exp(), m, s),
                                        "the normal CDF is taken of ln σ, not of σ"))))
    register(Exercise("3.3", "iCT's consistency-training loss", ict_loss, _ex_3_3, hidden=_hidden_3_3, points=3,
                      grad_check=True, mistakes=_ICT_MISTAKES,
                      grad_hint="the target f_θ⁻(x + σ_lo·z, σ_lo) is held fixed (sg): compute it under "
                      "torch.no_grad(), so only f_θ(x + σ_hi·z, σ_hi) is differentiated",
                      random_hint="fresh noise at the second level: CT's target uses the same z as x_hi, "
                      "x + σ_lo·z, the point one Euler step with D ≈ x lands on"))


_register()
