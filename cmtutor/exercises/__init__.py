"""Exercise checkers: compare a student's function with cmtutor's reference on random inputs.

In a notebook::

    check("3.3", pseudo_huber)   # prints "Exercise 3.3: correct", "... not done yet", or what differs

Each exercise names the reference function in the library (the student writes a piece that cmtutor also
has) and a generator of test inputs. Later cells use the library's reference, so a notebook runs green
while its exercises are still open. The judge (``_judge.py``) also compares where gradients flow, hints at
classic mistakes, and reports an answer that only calls the library's own; :func:`grade` is the instructor's
version, on inputs the notebook does not show (``python -m cmtutor.nbtools grade``, docs/instructors.md).

The exercises live in one module per part of the course (``basics``: notebooks 01–03, and so on); each
module registers its exercises with :func:`register` when imported, and :func:`check` imports them all.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

import cmtutor.exercises as pkg
from cmtutor.config.run import TrainConfig
from cmtutor.course.cache import load_or_train
from cmtutor.exercises._judge import STATUSES, Exercise, Inputs, Mistake, Verdict, judge
from cmtutor.training.custom_loss import train_with_hook, train_with_loss
from cmtutor.training.run import Run

#: The seed of the notebook's cases; the grader draws its own from :data:`GRADE_SEED` and adds hidden ones.
CHECK_SEED = 1234
GRADE_SEED = 20261205

EXERCISES: dict[str, Exercise] = {}


def register(ex: Exercise) -> Exercise:
    EXERCISES[ex.id] = ex
    return ex


def _load_all() -> None:
    for mod in pkgutil.iter_modules(pkg.__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"cmtutor.exercises.{mod.name}")


def exercise(exercise_id: str) -> Exercise:
    """The registered exercise ``exercise_id`` (every exercise module imported first)."""
    _load_all()
    if exercise_id not in EXERCISES:
        raise KeyError(f"no exercise {exercise_id!r}; known: {', '.join(sorted(EXERCISES))}")
    return EXERCISES[exercise_id]


def check(exercise_id: str, fn: Callable[..., Any], verbose: bool = True, guard: bool = True) -> bool:
    """Run the checker of ``exercise_id`` on ``fn``; print one line and return True when correct.

    ``guard=False`` lets ``fn`` call the library's own answer (for tests of the checker itself).
    """
    ex = exercise(exercise_id)
    verdict = judge(ex, fn, ex.inputs(torch.Generator().manual_seed(CHECK_SEED)), guard=guard)
    if verbose:
        print(verdict.message)
    return verdict.ok


def use(exercise_id: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` if it passes the checker of ``exercise_id``, else the library's reference (with a line saying so).

    The notebooks compute their results with the student's function once it is right, and keep running on
    the reference while it is not.
    """
    if check(exercise_id, fn, verbose=False):
        print(f"Exercise {exercise_id} is correct: the cells below use your {getattr(fn, '__name__', 'function')}")
        return fn
    print(f"Exercise {exercise_id} is not done yet: the cells below use cmtutor's reference instead")
    return exercise(exercise_id).reference


def train_yours(exercise_id: str, fn: Callable[..., Tensor], cfg: TrainConfig, name: str, hook: str = "loss",
                teacher: Run | None = None, **extra: Any) -> tuple[Run, bool]:
    """(run, yours): ``cfg`` trained with the student's ``fn`` once exercise ``exercise_id`` is correct, else the
    library's run of ``cfg`` from the cache (cache entry ``name``).

    ``hook="loss"``: ``fn`` is the whole consistency loss (:func:`cmtutor.training.custom_loss.train_with_loss`;
    ``extra`` goes to it, e.g. iCT's c); otherwise the method hook it replaces
    (:func:`cmtutor.training.custom_loss.train_with_hook`). The library's run computes what the exercise's reference
    computes (tests/course/test_student.py), so the fallback is what a correct answer trains, up to rounding.
    """
    if check(exercise_id, fn, verbose=False):
        print(f"Exercise {exercise_id} is correct: training {cfg.method} with your {getattr(fn, '__name__', hook)}")
        if hook == "loss":
            return train_with_loss(fn, cfg, teacher, **extra), True
        return train_with_hook(fn, cfg, hook, teacher), True
    print(f"Exercise {exercise_id} is not done yet: loading cmtutor's own {cfg.method} run of the same "
          "configuration instead")
    return load_or_train(cfg, name, teacher=teacher), False


def grade(exercise_id: str, fn: Callable[..., Any]) -> Verdict:
    """The grader's verdict: the notebook's checks on inputs drawn from another seed, plus the hidden cases."""
    ex = exercise(exercise_id)

    def cases(gen: torch.Generator) -> Any:
        yield from ex.inputs(gen)
        if ex.hidden is not None:
            yield from ex.hidden(gen)

    return judge(ex, fn, cases(torch.Generator().manual_seed(GRADE_SEED)))


# --- shared test fixtures ----------------------------------------------------------------------------

class _ToyNet(nn.Module):
    """A fixed smooth function of (x, σ) times a gain parameter equal to 1: the gain changes no value, but
    it lets a checker see where gradients flow (a target must not reach a network through its stop-gradient)."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones((), dtype=torch.float64))

    def forward(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        s = torch.as_tensor(sigma, dtype=x.dtype)
        return self.gain * self.value(x, s.reshape(-1, *([1] * (x.ndim - 1))) if s.ndim else s)

    def value(self, x: Tensor, s: Tensor) -> Tensor:
        raise NotImplementedError


class ToyDenoiser(_ToyNet):
    """A fixed smooth nonlinear 'denoiser' D(x, σ) = tanh(x)/(σ² + 1) used by the checkers."""

    def value(self, x: Tensor, s: Tensor) -> Tensor:
        return torch.tanh(x) / (s**2 + 1.0)


class ToyConsistency(_ToyNet):
    """A fixed smooth function of (x, σ) standing in for a consistency model in the checkers."""

    def value(self, x: Tensor, s: Tensor) -> Tensor:
        return x / (1 + s) + 0.1 * torch.sin(x * s)


def sigmas_for_tests(gen: torch.Generator, n: int) -> Tensor:
    """n positive noise levels spread over about [0.05, 20] (lognormal), float64."""
    return torch.exp(torch.randn(n, generator=gen, dtype=torch.float64) * 1.5 - 0.5)


__all__ = ["CHECK_SEED", "EXERCISES", "GRADE_SEED", "STATUSES", "Exercise", "Inputs", "Mistake", "ToyConsistency",
           "ToyDenoiser", "Verdict", "check", "exercise", "grade", "register", "sigmas_for_tests", "train_yours", "use"]
