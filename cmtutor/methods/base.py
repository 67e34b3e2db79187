"""What every training method shares: the networks it holds and the shared consistency step.

A method (``cmtutor.methods.*``) is a small class with:

* ``loss(nets, x, step)``: the training loss on a standardised data batch x at optimisation step k;
* ``after_step(nets, step)``: bookkeeping after the optimiser step (the target-network EMA);
* optionally ``draw(x, step)`` and ``lookahead = True``: the step's random draws, made one step early by
  the training loop so that work on them (OT's assignment) overlaps the previous step;
* class attributes saying which parameterisation it trains (EDM or CM boundary) and which kind of
  ``--teacher`` checkpoint it needs, if any.

:func:`consistency_step` is the one step shared by every consistency method. The target is computed
first without gradients, then the RNG state is restored so that the online forward pass draws the
*same dropout mask* as the target pass (as the official CM/iCT/ECT code does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from cmtutor.losses import Distance, consistency_loss
from cmtutor.precond import NoiseConfig, Parameterization


@dataclass
class Nets:
    """The networks of a run. ``model`` is trained; the others are derived or frozen.

    model: the online network (a :class:`cmtutor.precond.Preconditioned`).
    ema: the sampling EMA of ``model``.
    target: the target network θ⁻ (CD/CT with μ > 0), or None when the target is sg(model).
    teacher: a frozen network the method learns from (a diffusion denoiser for CD and Direct CM,
        the stage-1 consistency model for TCM), or None.
    extra_emas: further sampling EMAs of ``model``, decay → EMA (``TrainConfig.extra_ema_decays``).
    """

    model: nn.Module
    ema: AveragedModel
    target: AveragedModel | None = None
    teacher: nn.Module | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    extra_emas: dict[float, AveragedModel] = field(default_factory=dict)


def _rng_state(device: torch.device) -> tuple[Tensor, Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng_state(state: tuple[Tensor, Tensor | None], device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


TargetFn = Callable[[], Tensor]


def consistency_step(model: nn.Module, x_hi: Tensor, sigma_hi: Tensor, target_fn: TargetFn, weight: Tensor,
                     distance: Distance) -> tuple[Tensor, Tensor]:
    """One consistency step: λ·d(f_θ(x_hi, σ_hi), sg(target)), averaged over the batch.

    ``target_fn`` computes the target (it runs under ``torch.no_grad``). Returns (loss, target).
    """
    state = _rng_state(x_hi.device)
    with torch.no_grad():
        target = target_fn()
    _set_rng_state(state, x_hi.device)  # same dropout mask for the online pass
    return consistency_loss(model, x_hi, sigma_hi, target, weight, distance), target


def expand(sigma: Tensor, x: Tensor) -> Tensor:
    """Per-sample σ [B] → [B, 1, …] to broadcast against x."""
    return sigma.reshape(-1, *([1] * (x.ndim - 1)))


class Method:
    """Base class of the training methods. Subclasses set the class attributes and ``loss``."""

    name: ClassVar[str] = ""
    #: "edm" (denoiser) or "cm" (consistency function with the exact boundary).
    parameterization: ClassVar[Parameterization] = "cm"
    #: which methods a ``--teacher`` checkpoint may come from; empty if the method takes none.
    teacher_methods: ClassVar[tuple[str, ...]] = ()
    #: True if the method needs a teacher (the command line then requires ``--teacher``).
    requires_teacher: ClassVar[bool] = False
    #: True if samples are drawn with the PF-ODE (diffusion), False for consistency sampling.
    ode_sampling: ClassVar[bool] = False
    #: True if the method has a ``draw(x, step)`` whose result ``loss(nets, x, step, drawn)`` accepts, and
    #: gains from making the draws of step k + 1 while step k trains (OT: its assignment is solved in a
    #: background thread). The training loop then draws one step ahead, in the same order on the RNG.
    lookahead: ClassVar[bool] = False

    def __init__(self, hp: dict[str, Any], noise: NoiseConfig, total_steps: int, dim: int) -> None:
        self.hp = dict(hp)
        self.noise = noise
        self.total_steps = total_steps
        self.dim = dim

    @classmethod
    def default_hparams(cls, data_kind: str) -> dict[str, Any]:
        """Method hyperparameters for ``"vector"`` or ``"image"`` data (overridable)."""
        return {}

    @classmethod
    def adapt_to_teacher(cls, hp: dict[str, Any], teacher_cfg: dict[str, Any], dim: int) -> dict[str, Any]:
        """Hyperparameters completed from the ``--teacher`` run's config (default: unchanged)."""
        return hp

    @classmethod
    def sampling_network(cls, model: nn.Module, teacher: nn.Module | None, hp: dict[str, Any]) -> nn.Module:
        """The network to sample with (default: the model itself; TCM: student above t', stage 1 below)."""
        return model

    def uses_target_network(self) -> bool:
        return False

    def target_decay(self, step: int) -> float:
        """The target EMA rate μ(k) (only when :meth:`uses_target_network`)."""
        raise NotImplementedError

    def loss(self, nets: Nets, x: Tensor, step: int) -> tuple[Tensor, dict[str, Tensor | float]]:
        """(loss, logs): logs hold detached tensors or floats, converted only when a step is logged."""
        raise NotImplementedError

    def after_step(self, nets: Nets, step: int) -> None:
        """Called after the optimiser step for step ``step`` (0-based). Updates θ⁻ if there is one."""
        if nets.target is not None:
            from cmtutor.ema import ema_update

            ema_update(nets.target, nets.model, self.target_decay(step))
