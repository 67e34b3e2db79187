"""Exercise checkers: compare a student's function with cmtutor's reference on random inputs.

In a notebook::

    check("3.3", pseudo_huber)   # prints "Exercise 3.3: correct", "... not done yet", or what differs

Each exercise names the reference function in the library (the student writes a piece that cmtutor also
has) and a generator of test inputs. Later cells use the library's reference, so a notebook runs green
while its exercises are still open.

The exercises live in one module per part of the course (``basics``: notebooks 01–03, and so on); each
module registers its exercises with :func:`register` when imported, and :func:`check` imports them all.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

import cmtutor.exercises as pkg

Inputs = Callable[[torch.Generator], Iterable[tuple[tuple[Any, ...], dict[str, Any]]]]


@dataclass(frozen=True)
class Exercise:
    """One exercise: its id (``"N.M"``), what to write, the reference function and test inputs."""

    id: str
    title: str
    reference: Callable[..., Any]
    inputs: Inputs
    rtol: float = 1e-4
    atol: float = 1e-6


EXERCISES: dict[str, Exercise] = {}


def register(ex: Exercise) -> Exercise:
    EXERCISES[ex.id] = ex
    return ex


def _close(a: Any, b: Any, rtol: float, atol: float) -> str | None:
    """None if a ≈ b, else a short description of the first difference."""
    if isinstance(a, (tuple, list)):
        if not isinstance(b, (tuple, list)):
            return f"expected a sequence of {len(a)} values, got {type(b).__name__}"
        if len(a) != len(b):
            return f"expected {len(a)} values, got {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            msg = _close(x, y, rtol, atol)
            if msg:
                return f"item {i}: {msg}"
        return None
    try:
        ta = torch.as_tensor(a, dtype=torch.float64)
        tb = torch.as_tensor(b.detach() if isinstance(b, Tensor) else b, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return f"expected a number or tensor, got {type(b).__name__}"
    if ta.shape != tb.shape:
        return f"expected shape {tuple(ta.shape)}, got {tuple(tb.shape)}"
    if not torch.allclose(ta, tb, rtol=rtol, atol=atol, equal_nan=True):
        i = int((ta - tb).abs().flatten().argmax())
        return f"expected {ta.flatten()[i].item():.6g}, got {tb.flatten()[i].item():.6g} (at index {i})"
    return None


def _describe(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    def one(v: Any) -> str:
        if isinstance(v, Tensor):
            return f"tensor{tuple(v.shape)}" if v.numel() > 3 else repr([round(float(t), 4) for t in v.flatten()])
        if callable(v):
            return getattr(v, "__name__", type(v).__name__)
        return repr(v)

    parts = [one(a) for a in args] + [f"{k}={one(v)}" for k, v in kwargs.items()]
    return ", ".join(parts)


def _load_all() -> None:
    for mod in pkgutil.iter_modules(pkg.__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"cmtutor.exercises.{mod.name}")


def check(exercise_id: str, fn: Callable[..., Any], verbose: bool = True) -> bool:
    """Run the checker of ``exercise_id`` on ``fn``; print one line and return True when correct."""
    _load_all()
    if exercise_id not in EXERCISES:
        raise KeyError(f"no exercise {exercise_id!r}; known: {', '.join(sorted(EXERCISES))}")
    ex = EXERCISES[exercise_id]
    gen = torch.Generator().manual_seed(1234)
    for args, kwargs in ex.inputs(gen):
        try:
            got = fn(*args, **kwargs)
        except NotImplementedError:
            return _say(verbose, f"Exercise {ex.id}: not done yet ({ex.title})", False)
        except Exception as exc:  # the student's code failed: say how, briefly
            return _say(verbose, f"Exercise {ex.id}: your function raised {type(exc).__name__}: {exc}", False)
        want = ex.reference(*args, **kwargs)
        diff = _close(want, got, ex.rtol, ex.atol)
        if diff:
            return _say(verbose, f"Exercise {ex.id}: not yet right for ({_describe(args, kwargs)}): {diff}", False)
    return _say(verbose, f"Exercise {ex.id}: correct", True)


def _say(verbose: bool, msg: str, ok: bool) -> bool:
    if verbose:
        print(msg)
    return ok


# --- shared test fixtures ----------------------------------------------------------------------------

class ToyDenoiser(nn.Module):
    """A fixed smooth nonlinear 'denoiser' D(x, σ) = tanh(x)·σ_d²/(σ² + σ_d²) used by the checkers."""

    def forward(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        s = torch.as_tensor(sigma, dtype=x.dtype)
        s = s.reshape(-1, *([1] * (x.ndim - 1))) if s.ndim else s
        return torch.tanh(x) / (s**2 + 1.0)


class ToyConsistency(nn.Module):
    """A fixed smooth function of (x, σ) standing in for a consistency model in the checkers."""

    def forward(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        s = torch.as_tensor(sigma, dtype=x.dtype)
        s = s.reshape(-1, *([1] * (x.ndim - 1))) if s.ndim else s
        return x / (1 + s) + 0.1 * torch.sin(x * s)


def sigmas_for_tests(gen: torch.Generator, n: int) -> Tensor:
    """n positive noise levels spread over about [0.05, 20] (lognormal), float64."""
    return torch.exp(torch.randn(n, generator=gen, dtype=torch.float64) * 1.5 - 0.5)


__all__ = ["EXERCISES", "Exercise", "ToyConsistency", "ToyDenoiser", "check", "register", "sigmas_for_tests"]
