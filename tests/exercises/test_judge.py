"""The exercise judge: values, where gradients flow, hints for classic mistakes, answers that only call the
library, and the grader's inputs that the notebook does not show."""

from __future__ import annotations

import contextlib
import io

import pytest
import torch

from cmtutor.core.schedules import karras_sigmas
from cmtutor.core.solvers import consistency_sample, ode_step
from cmtutor.exercises import CHECK_SEED, EXERCISES, check, exercise, grade, use
from cmtutor.exercises._judge import watch
from cmtutor.methods.base import expand
from cmtutor.methods.cd import cd_loss


def _said(exercise_id: str, fn) -> str:  # type: ignore[no-untyped-def]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        check(exercise_id, fn)
    return buf.getvalue().strip()


def test_every_reference_passes_its_own_checks_and_is_caught_calling_the_library() -> None:
    exercise("0.1")  # imports every exercise module
    for ex_id in sorted(EXERCISES):
        ex = exercise(ex_id)
        assert check(ex_id, ex.reference, verbose=False, guard=False), ex_id
        v = grade(ex_id, ex.reference)
        assert v.status == "calls the library", (ex_id, v)
    assert len(EXERCISES) >= 20


def _cd_loss(sg_target: bool = True, fresh: bool = False):  # type: ignore[no-untyped-def]
    """A student's CD loss, optionally with one of the classic mistakes."""
    def loss(model, teacher, x, z, lo, hi):  # type: ignore[no-untyped-def]
        x_hi = x + expand(hi, x) * z
        with torch.set_grad_enabled(not sg_target):
            x_lo = ode_step(teacher, x_hi + (0.01 * torch.randn_like(x) if fresh else 0), hi, lo, "heun")
            target = model(x_lo, lo)
        return (model(x_hi, hi) - target).flatten(1).pow(2).mean(1).mean()
    return loss


def test_a_target_built_with_gradients_fails_with_a_message_saying_so() -> None:
    assert _said("2.1", _cd_loss()) == "Exercise 2.1: correct"
    assert grade("2.1", _cd_loss()).ok  # also on the grader's image-shaped inputs
    msg = _said("2.1", _cd_loss(sg_target=False))
    assert "gradient with respect to ToyConsistency" in msg and "torch.no_grad()" in msg
    assert "draw new noise" in _said("2.1", _cd_loss(fresh=True))

    def tcm_target_frozen_with_gradients(f, f1, x, r, t_prime):  # type: ignore[no-untyped-def]
        with torch.no_grad():
            upper = f(x, r)
        return torch.where((r >= t_prime)[:, None], upper, f1(x, r))

    assert "gradient flows into ToyStageOne" in _said("5.1", tcm_target_frozen_with_gradients)

    def tcm_target(f, f1, x, r, t_prime):  # type: ignore[no-untyped-def]
        with torch.no_grad():
            return torch.where((r >= t_prime)[:, None], f(x, r), f1(x, r))

    assert _said("5.1", tcm_target) == "Exercise 5.1: correct"


def _ict_loss(target_from_model: bool = False, fresh: bool = False):  # type: ignore[no-untyped-def]
    def loss(model, target_net, x, z, lo, hi, c):  # type: ignore[no-untyped-def]
        with torch.no_grad():
            z_lo = torch.randn_like(z) if fresh else z
            target = (model if target_from_model else target_net)(x + expand(lo, x) * z_lo, lo)
        d = ((model(x + expand(hi, x) * z, hi) - target).flatten(1).pow(2).sum(1) + c * c).sqrt() - c
        return (d / (hi - lo)).mean()
    return loss


def _sample_renoising_to_tau(f, z, sigmas, gen):  # type: ignore[no-untyped-def]
    x = f(z * sigmas[0], sigmas[0])
    for tau in sigmas[1:]:
        x = f(x + tau * torch.randn(z.shape, generator=gen, dtype=z.dtype), tau)
    return x


@pytest.mark.parametrize("ex_id, answer, hint", [
    ("2.1", lambda f, t, x, z, lo, hi: (f(x + expand(hi, x) * z, hi)
                                        - f(ode_step(t, x + expand(hi, x) * z, hi, lo, "heun"), hi).detach()
                                        ).pow(2).mean(1).mean(), "smaller level"),
    ("2.2", lambda f, z, sigmas, smin, gen: _sample_renoising_to_tau(f, z, sigmas, gen), "√(τ² − σ_min²)"),
    ("3.3", _ict_loss(target_from_model=True), "target_net"),
    ("3.3", _ict_loss(fresh=True), "fresh noise at the second level"),
    ("1.2", lambda d, x, s, sn: x + (sn - s) * (x - d(x, s)) / s, "Euler step"),
])
def test_classic_mistakes_get_a_targeted_hint(ex_id: str, answer, hint: str) -> None:  # type: ignore[no-untyped-def]
    msg = _said(ex_id, answer)
    assert "not yet right" in msg and "Hint:" in msg and hint in msg


def test_an_answer_that_calls_the_library_is_reported_also_through_an_alias_or_a_builtin() -> None:
    alias = consistency_sample
    assert "calls cmtutor's own consistency_sample" in _said("2.2", lambda *a: alias(*a))
    assert "calls cmtutor's own cd_loss" in _said("2.1", lambda *a: cd_loss(*a))
    sdpa = torch.nn.functional.scaled_dot_product_attention  # a built-in (C) function is seen too
    q = torch.randn(1, 1, 4, 8)
    with watch((sdpa,)) as called:
        sdpa(q, q, q)
    assert called == ["scaled_dot_product_attention"]
    with watch((sdpa,)) as called:
        torch.softmax(q @ q.transpose(-1, -2), dim=-1) @ q
    assert called == []


def test_the_ema_half_life_and_pixel_exercises_hint_at_their_classic_mistakes() -> None:
    def reversed_weights(decays):  # type: ignore[no-untyped-def]
        d = torch.as_tensor(decays, dtype=torch.float64)
        later = [float(torch.prod(d[j + 1:])) for j in range(len(d))]
        w = torch.tensor([float(torch.prod(d))] + [(1 - float(d[j])) * later[j] for j in range(len(d))])
        return w.flip(0).double()

    assert "reverse" in _said("7.1", reversed_weights)
    assert _said("7.1", lambda d: reversed_weights(d).flip(0)) == "Exercise 7.1: correct"
    assert "ramp-up" in _said("8.1", lambda b, seen, h, r: 0.5 ** (b / (h * 1000)))
    wrapped = _said("8.2", lambda x: ((x + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
    assert "clip" in wrapped or "wraps" in wrapped


def test_the_grader_uses_inputs_the_notebook_does_not_show() -> None:
    """An answer that memorised the notebook's cases passes the notebook's check and fails the grader."""
    ex = exercise("0.1")
    seen = {args: karras_sigmas(*args) for args, _ in ex.inputs(torch.Generator().manual_seed(CHECK_SEED))}

    def memorised(n, lo, hi, rho):  # type: ignore[no-untyped-def]
        return seen.get((n, lo, hi, rho), torch.zeros(n))

    assert check("0.1", memorised, verbose=False)
    assert grade("0.1", memorised).status == "wrong"


def test_unfinished_and_crashing_answers() -> None:
    def unfinished(*args):  # type: ignore[no-untyped-def]
        raise NotImplementedError("Exercise 3.3: the pseudo-Huber distance")

    assert grade("3.3", unfinished).status == "not done"
    v = grade("3.3", lambda *a: a[0].nonexistent)
    assert v.status == "error" and "AttributeError" in v.message


def test_use_gives_the_students_function_once_it_is_right_and_the_reference_before() -> None:
    right, wrong = _cd_loss(), _cd_loss(sg_target=False)
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert use("2.1", right) is right
        assert use("2.1", wrong) is cd_loss
    assert "use your loss" in out.getvalue() and "not done yet" in out.getvalue()
