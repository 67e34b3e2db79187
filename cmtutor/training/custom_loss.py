"""Training with the student's own loss: the exercises of notebooks 02 and 03 produce a model.

A consistency method is one loss with hooks (:mod:`cmtutor.methods.base`); here the *whole* loss is the
student's function, written for given draws::

    loss_fn(model, other, x, z, sigma_lo, sigma_hi, **extra) -> scalar tensor

where ``other`` is the teacher (CD) or the target network θ⁻ (CT/iCT: the online model itself when the method
keeps no EMA target). The library still draws the pairs of times and the noise (CD's grid, iCT's curriculum
and lognormal pairs), runs the optimiser and the EMAs, so a correct loss reproduces the library's run.

:func:`train_with_hook` replaces one named hook of a method instead, called with the exercise's signature:
GC's ``mixed_endpoint`` (notebook 04), TCM's ``truncated_target`` (05), Direct CM's ``solve`` (06).
:func:`cmtutor.exercises.train_yours` trains with the student's function once its checker passes and otherwise
loads the library's own run of the same configuration from the cache.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from cmtutor.config.run import TrainConfig
from cmtutor.methods.base import ConsistencyMethod, Method, Nets
from cmtutor.training.loop import train_to_end
from cmtutor.training.resume import checkpoint_dict
from cmtutor.training.run import Run, build_run

LossFn = Callable[..., Tensor]


class LossHook(Method):
    """``base``'s draws, target-network bookkeeping and sampling, with the loss replaced by ``loss_fn``."""

    def __init__(self, base: ConsistencyMethod, loss_fn: LossFn, extra: dict[str, Any]) -> None:
        self.base, self.loss_fn, self.extra = base, loss_fn, extra
        self.name, self.parameterization = base.name, base.parameterization
        self.hp, self.noise, self.total_steps, self.dim = base.hp, base.noise, base.total_steps, base.dim

    def loss(self, nets: Nets, x: Tensor, step: int, drawn: Any = None) -> tuple[Tensor, dict[str, Tensor | float]]:
        d = self.base.draw(x, step)
        other = nets.teacher if self.base.requires_teacher else self.base.target_network(nets)
        loss = self.loss_fn(nets.model, other, x, d.z, d.s_lo, d.s_hi, **self.extra)
        if not isinstance(loss, Tensor) or loss.ndim != 0 or not loss.requires_grad:
            raise ValueError("the loss function must return a scalar tensor that depends on the model's output")
        return loss, {"loss": loss.detach(), **self.base.logs(d, step)}

    def after_step(self, nets: Nets, step: int) -> None:
        self.base.after_step(nets, step)

    def uses_target_network(self) -> bool:
        return self.base.uses_target_network()

    def target_decay(self, step: int) -> float:
        return self.base.target_decay(step)


def train_with_loss(loss_fn: LossFn, cfg: TrainConfig, teacher: Run | None = None, **extra: Any) -> Run:
    """Train ``cfg`` (a consistency method) with ``loss_fn`` in place of the method's loss; losses in ``history``."""
    run = build_run(cfg, teacher=checkpoint_dict(teacher) if teacher is not None else None)
    if not isinstance(run.method, ConsistencyMethod):
        raise ValueError(f"{cfg.method} is not a consistency method; its loss has no (σ_lo, σ_hi) pair")
    run.method = LossHook(run.method, loss_fn, extra)
    return train_to_end(run)


#: The hooks a notebook exercise may replace, by method: each is a method attribute called with the
#: exercise's signature (see the methods' docstrings).
HOOKS: dict[str, tuple[str, ...]] = {"gc": ("mixed_endpoint",), "tcm": ("truncated_target",), "direct": ("solve",)}


def train_with_hook(fn: Callable[..., Tensor], cfg: TrainConfig, hook: str, teacher: Run | None = None) -> Run:
    """Train ``cfg`` with the method's ``hook`` replaced by ``fn`` (same arguments); losses in ``history``."""
    if hook not in HOOKS.get(cfg.method, ()):
        known = ", ".join(f"{m}: {', '.join(h)}" for m, h in HOOKS.items())
        raise ValueError(f"{cfg.method} has no hook {hook!r} for an exercise; the hooks are {known}")
    run = build_run(cfg, teacher=checkpoint_dict(teacher) if teacher is not None else None)
    setattr(run.method, hook, fn)  # an instance attribute: called as fn(...), without self
    return train_to_end(run)
