"""The exercise judge: values, where gradients flow, hints for classic mistakes, answers that only call the
library, and the grader's inputs that the notebook does not show."""

from __future__ import annotations

import contextlib
import io

import pytest
import torch

from cmtutor.core.precond import cm_scalings
from cmtutor.core.schedules import karras_sigmas
from cmtutor.core.solvers import ode_step
from cmtutor.exercises import CHECK_SEED, EXERCISES, check, exercise, grade


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


def test_a_target_built_with_gradients_fails_with_a_message_saying_so() -> None:
    def cd_target_without_sg(teacher, target_net, x_hi, sigma_hi, sigma_lo):  # type: ignore[no-untyped-def]
        return target_net(ode_step(teacher, x_hi, sigma_hi, sigma_lo, "heun"), sigma_lo)

    msg = _said("2.2", cd_target_without_sg)
    assert "gradient flows into" in msg and "torch.no_grad()" in msg

    def tcm_target_frozen_with_gradients(f, f1, x, r, t_prime):  # type: ignore[no-untyped-def]
        with torch.no_grad():
            upper = f(x, r)
        return torch.where((r >= t_prime)[:, None], upper, f1(x, r))

    assert "gradient flows into ToyStageOne" in _said("5.1", tcm_target_frozen_with_gradients)

    def tcm_target(f, f1, x, r, t_prime):  # type: ignore[no-untyped-def]
        with torch.no_grad():
            return torch.where((r >= t_prime)[:, None], f(x, r), f1(x, r))

    assert _said("5.1", tcm_target) == "Exercise 5.1: correct"


@pytest.mark.parametrize("ex_id, answer, hint", [
    ("2.1", lambda s, sd, smin: (sd**2 / ((s - smin) ** 2 + sd**2), (s - smin) * sd / (s**2 + sd**2).sqrt(),
                                 1 / (s**2 + sd**2)), "square root"),
    ("2.2", lambda t, f, x, sh, sl: f(ode_step(t, x, sh, sl, "heun"), sh).detach(), "smaller level"),
    ("1.2", lambda d, x, s, sn: x + (sn - s) * (x - d(x, s)) / s, "Euler step"),
])
def test_classic_mistakes_get_a_targeted_hint(ex_id: str, answer, hint: str) -> None:  # type: ignore[no-untyped-def]
    msg = _said(ex_id, answer)
    assert "not yet right" in msg and "Hint:" in msg and hint in msg


def test_an_answer_that_calls_the_library_is_reported_also_through_an_alias_or_a_builtin() -> None:
    alias = cm_scalings
    assert "calls cmtutor's own cm_scalings" in _said("2.1", lambda s, sd, smin: alias(s, sd, smin))
    sdpa = torch.nn.functional.scaled_dot_product_attention
    assert "scaled_dot_product_attention" in _said("7.1", lambda q, k, v: sdpa(q, k, v))

    def attention(q, k, v):  # type: ignore[no-untyped-def]
        w = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
        return w @ v

    assert _said("7.1", attention) == "Exercise 7.1: correct"


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
    v = grade("3.3", lambda a, b, c: a.nonexistent)
    assert v.status == "error" and "AttributeError" in v.message
