"""How an exercise is judged: values against the reference, where gradients flow, known mistakes, and whether
the answer merely calls cmtutor's own (the library holds every answer, so the judge watches for it).

An :class:`Exercise` is judged on a list of input cases; the first case that fails decides the
:class:`Verdict`. The notebook's ``check`` and the instructor's ``grade`` share this judge and differ only in
the cases: ``grade`` draws them from another seed and adds the exercise's hidden cases.
"""

from __future__ import annotations

import copy
import inspect
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

Case = tuple[tuple[Any, ...], dict[str, Any]]
Inputs = Callable[[torch.Generator], Iterable[Case]]


@dataclass(frozen=True)
class Mistake:
    """A classic wrong answer and the hint a student gets when their function matches it."""

    fn: Callable[..., Any]
    hint: str


@dataclass(frozen=True)
class Exercise:
    """One exercise: its id (``"N.M"``), what to write, the reference function and test inputs.

    ``hidden`` adds cases only the grader uses (inputs the notebook does not show). ``grad_check`` compares
    which parameterised inputs receive gradients, so a target built without its stop-gradient fails.
    ``guards`` are library functions an answer may not call (by default the reference, when it is a named
    function): calling them is reported, not credited. ``points`` is what the exercise is worth.
    ``grad_hint`` is added when the gradients differ (say which stop-gradient is missing); ``random_hint``,
    when set, makes the judge call the answer twice on the same inputs and reject one whose value changes
    (an answer that draws its own noise where it should use the noise it is given).
    """

    id: str
    title: str
    reference: Callable[..., Any]
    inputs: Inputs
    rtol: float = 1e-4
    atol: float = 1e-6
    points: int = 1
    hidden: Inputs | None = None
    grad_check: bool = False
    mistakes: tuple[Mistake, ...] = ()
    guards: tuple[Callable[..., Any], ...] | None = None
    grad_hint: str | None = None
    random_hint: str | None = None

    def guarded(self) -> tuple[Callable[..., Any], ...]:
        if self.guards is not None:
            return self.guards
        named = inspect.isfunction(self.reference) and self.reference.__name__ != "<lambda>"
        return (self.reference,) if named else ()


#: What a verdict can say; ``correct`` is the only one that earns the points.
STATUSES = ("correct", "not done", "wrong", "error", "calls the library", "missing", "timeout")


@dataclass(frozen=True)
class Verdict:
    id: str
    status: str
    message: str

    @property
    def ok(self) -> bool:
        return self.status == "correct"


def close(a: Any, b: Any, rtol: float, atol: float) -> str | None:
    """None if a ≈ b, else a short description of the first difference."""
    if isinstance(a, (tuple, list)):
        if not isinstance(b, (tuple, list)):
            return f"expected a sequence of {len(a)} values, got {type(b).__name__}"
        if len(a) != len(b):
            return f"expected {len(a)} values, got {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            msg = close(x, y, rtol, atol)
            if msg:
                return f"item {i}: {msg}"
        return None
    try:
        ta = torch.as_tensor(a.detach() if isinstance(a, Tensor) else a, dtype=torch.float64)
        tb = torch.as_tensor(b.detach() if isinstance(b, Tensor) else b, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return f"expected a number or tensor, got {type(b).__name__}"
    if ta.shape != tb.shape:
        return f"expected shape {tuple(ta.shape)}, got {tuple(tb.shape)}"
    if not torch.allclose(ta, tb, rtol=rtol, atol=atol, equal_nan=True):
        i = int((ta - tb).abs().nan_to_num(float("inf")).flatten().argmax())
        return f"expected {ta.flatten()[i].item():.6g}, got {tb.flatten()[i].item():.6g} (at index {i})"
    return None


def describe(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    def one(v: Any) -> str:
        if isinstance(v, Tensor):
            return f"tensor{tuple(v.shape)}" if v.numel() > 3 else repr([round(float(t), 4) for t in v.flatten()])
        if isinstance(v, np.ndarray):
            return f"array{v.shape}" if v.size > 3 else repr([round(float(t), 4) for t in v.flatten()])
        if isinstance(v, torch.Generator):
            return "generator"
        if callable(v):
            return getattr(v, "__name__", type(v).__name__)
        return repr(v)

    return ", ".join([one(a) for a in args] + [f"{k}={one(v)}" for k, v in kwargs.items()])


# --- gradients ------------------------------------------------------------------------------------------

Grads = dict[int, Tensor | None]


def _modules(args: tuple[Any, ...]) -> dict[int, nn.Module]:
    return {i: a for i, a in enumerate(args) if isinstance(a, nn.Module) and any(True for _ in a.parameters())}


def _tensors(out: Any) -> list[Tensor]:
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tensors(o)]
    return []


def _call(fn: Callable[..., Any], case: Case, grads: bool) -> tuple[Any, Grads]:
    """fn on a private copy of the case (an answer that edits its inputs in place cannot spoil the next call);
    with ``grads``, also the gradient of the output's sum with respect to each parameterised argument."""
    args, kwargs = copy.deepcopy(case)
    out = fn(*args, **kwargs)
    found: Grads = {}
    if grads:
        mods = _modules(args)
        live = [t for t in _tensors(out) if t.requires_grad]
        if live:
            torch.stack([t.double().sum() for t in live]).sum().backward()
        for i, m in mods.items():
            gs = [p.grad.flatten() for p in m.parameters() if p.grad is not None]
            found[i] = torch.cat(gs).detach() if gs else None
    return out, found


def _grad_problem(want: Grads, got: Grads, args: tuple[Any, ...]) -> str | None:
    for i, w in want.items():
        g = got.get(i)
        name = f"{type(args[i]).__name__} (argument {i + 1})"
        if w is None and g is not None and bool(g.abs().sum() > 0):
            return (f"gradient flows into {name}: this part must not be differentiated (a stop-gradient, sg): "
                    "compute it under torch.no_grad() or .detach() it")
        if w is not None and g is None:
            return f"no gradient reaches {name}: this part must stay differentiable (no torch.no_grad() there)"
        if w is not None and g is not None and not torch.allclose(w.double(), g.double(), rtol=1e-4, atol=1e-6):
            return f"the gradient with respect to {name} differs from the reference's"
    return None


# --- calls into the library's own answer ----------------------------------------------------------------

def _code_of(fn: Callable[..., Any]) -> CodeType | None:
    target = fn.forward if inspect.isclass(fn) and hasattr(fn, "forward") else fn
    target = inspect.unwrap(target)
    return getattr(target, "__code__", None)


@contextmanager
def watch(guards: tuple[Callable[..., Any], ...]) -> Iterator[list[str]]:
    """Record the names of guarded library functions called inside the block (a profile hook, so calls
    through any alias or wrapper count; built-in functions such as torch's attention are seen as C calls)."""
    codes = {c: getattr(g, "__qualname__", repr(g)) for g in guards if (c := _code_of(g)) is not None}
    builtins = {id(g): getattr(g, "__name__", repr(g)) for g in guards if _code_of(g) is None}
    seen: list[str] = []
    if not codes and not builtins:
        yield seen
        return

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        name = None
        if event == "call":
            name = codes.get(frame.f_code)
        elif event == "c_call":
            name = builtins.get(id(arg))
        if name is not None and name not in seen:
            seen.append(name)

    previous = sys.getprofile()
    sys.setprofile(hook)
    try:
        yield seen
    finally:
        sys.setprofile(previous)


# --- the judge ------------------------------------------------------------------------------------------

def judge(ex: Exercise, fn: Callable[..., Any], cases: Iterable[Case], guard: bool = True) -> Verdict:
    """The verdict of ``fn`` on ``cases``: the first failing case decides, with a hint when the answer matches
    a known mistake."""
    for case in cases:
        args, kwargs = case
        want, want_grads = _call(ex.reference, case, ex.grad_check)
        try:
            with watch(ex.guarded() if guard else ()) as called:
                got, got_grads = _call(fn, case, ex.grad_check)
        except NotImplementedError:
            return Verdict(ex.id, "not done", f"Exercise {ex.id}: not done yet ({ex.title})")
        except Exception as exc:  # the student's code failed: say how, briefly
            return Verdict(ex.id, "error", f"Exercise {ex.id}: your function raised {type(exc).__name__}: {exc}")
        if called:
            return Verdict(ex.id, "calls the library", f"Exercise {ex.id}: your function calls cmtutor's own "
                           f"{', '.join(called)}; write it yourself (the reference is what it is checked against)")
        diff = close(want, got, ex.rtol, ex.atol)
        if ex.random_hint is not None and _changes(fn, case, got, ex):
            diff = f"the value changes from one call to the next with the same inputs. Hint: {ex.random_hint}"
            return Verdict(ex.id, "wrong", f"Exercise {ex.id}: not yet right for ({describe(args, kwargs)}): {diff}")
        if diff is None and ex.grad_check:
            diff = _grad_problem(want_grads, got_grads, args)
            if diff and ex.grad_hint and "differs" in diff:
                diff = f"{diff}. Hint: {ex.grad_hint}"
        if diff:
            return Verdict(ex.id, "wrong", f"Exercise {ex.id}: not yet right for ({describe(args, kwargs)}): "
                           f"{diff}{_hint(ex, case, got)}")
    return Verdict(ex.id, "correct", f"Exercise {ex.id}: correct")


def _changes(fn: Callable[..., Any], case: Case, got: Any, ex: Exercise) -> bool:
    """True if a second call of ``fn`` on the same case gives another value (it draws its own randomness)."""
    try:
        again, _ = _call(fn, case, False)
    except Exception:  # a second call that fails is judged by the first call's value
        return False
    return close(got, again, ex.rtol, ex.atol) is not None


def _hint(ex: Exercise, case: Case, got: Any) -> str:
    for m in ex.mistakes:
        try:
            wrong, _ = _call(m.fn, case, False)
        except Exception:  # a mistake that cannot run on this case says nothing
            continue
        if close(wrong, got, ex.rtol, ex.atol) is None:
            return f". Hint: {m.hint}"
    return ""
