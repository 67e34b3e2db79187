"""What every training method shares: the networks it holds and the shared consistency step.

A method (``cmtutor.methods.*``) is a small class with:

* ``loss(nets, x, step, drawn=None)``: the training loss on a standardised data batch x at optimisation step k;
* ``after_step(nets, step)``: bookkeeping after the optimiser step (the target-network EMA);
* optionally ``draw(x, step)`` and ``lookahead = True``: the step's random draws, made one step early by
  the training loop so that work on them (OT's assignment) overlaps the previous step;
* class attributes saying which parameterisation it trains (EDM or CM boundary) and which kind of
  ``--teacher`` checkpoint it needs, if any.

Every consistency method is a :class:`ConsistencyMethod`: its loss is written once,

    λ(σ_i, σ_{i+1}) · d( f_θ(x₀ + σ_{i+1}·z, σ_{i+1}),  sg target(x₀, z, σ_i) ),

and a method overrides only the axes its paper changes, each a hook:

1. :meth:`ConsistencyMethod.times`: the pair of times (σ_i, σ_{i+1}) (CD's grid, CT's curriculum, TCM's [t', T]);
2. :meth:`ConsistencyMethod.endpoint`: the clean endpoint and its noise, the coupling (GC, OT);
3. :meth:`ConsistencyMethod.target`: which network gives the target (θ⁻, the teacher's ODE step (CD), its full
   solve (Direct CM), the frozen stage-1 model below t' (TCM));
4. :meth:`ConsistencyMethod.weight` and the distance ``hp.distance``.

:func:`consistency_step` runs one step: the target is computed first without gradients, then the RNG state is
restored so that the online forward pass draws the *same dropout mask* as the target pass (as the official
CM/iCT/ECT code does).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from cmtutor.core.ema import ema_update
from cmtutor.core.losses import Distance, DistanceName, consistency_loss, get_distance
from cmtutor.core.noise import NoiseConfig
from cmtutor.core.precond import Parameterization
from cmtutor.methods.hparams import Hparams


@dataclass
class Nets:
    """The networks of a run. ``model`` is trained; the others are derived or frozen.

    model: the online network (a :class:`cmtutor.core.precond.Preconditioned`).
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


def rng_state(device: torch.device) -> tuple[Tensor, Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def restore_rng_state(state: tuple[Tensor, Tensor | None], device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


TargetFn = Callable[[], Tensor]


def consistency_step(model: nn.Module, x_hi: Tensor, sigma_hi: Tensor, target_fn: TargetFn, weight: Tensor,
                     distance: Distance) -> tuple[Tensor, Tensor]:
    """One consistency step: λ·d(f_θ(x_hi, σ_hi), sg(target)), averaged over the batch.

    ``target_fn`` computes the target (it runs under ``torch.no_grad``). Returns (loss, target).
    """
    state = rng_state(x_hi.device)
    with torch.no_grad():
        target = target_fn()
    restore_rng_state(state, x_hi.device)  # same dropout mask for the online pass
    return consistency_loss(model, x_hi, sigma_hi, target, weight, distance), target


def pair_weight(weighting: str, s_lo: Tensor, s_hi: Tensor) -> Tensor:
    """λ of a pair of levels: ``"uniform"`` λ = 1 (Song et al. 2023) or ``"inv_delta"`` λ = 1/(σ_hi − σ_lo), iCT's
    weighting (Song & Dhariwal 2023); the switch CT and CD share."""
    return 1.0 / (s_hi - s_lo) if weighting == "inv_delta" else torch.ones_like(s_hi)


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
    #: multistep sampling: "consistency" re-noises between levels (Song et al. 2023, Algorithm 1); "flow_map"
    #: jumps deterministically between them (MeanFlow; :func:`cmtutor.core.solvers.flow_map_sample`)
    multistep: ClassVar[Literal["consistency", "flow_map"]] = "consistency"
    #: True if the method has a ``draw(x, step)`` whose result ``loss(nets, x, step, drawn)`` accepts, and
    #: gains from making the draws of step k + 1 while step k trains (OT: its assignment is solved in a
    #: background thread). The training loop then draws one step ahead, in the same order on the RNG.
    lookahead: ClassVar[bool] = False
    #: the dataclass of the method's hyperparameters (``--hp``; :mod:`cmtutor.methods.hparams`)
    hparams_type: ClassVar[type[Hparams]] = Hparams

    def __init__(self, hp: dict[str, Any], noise: NoiseConfig, total_steps: int, dim: int) -> None:
        self.hp: Any = self.hparams_type.parse(hp, self.name)  # typed: ``self.hp.<name>``
        self.noise = noise
        self.total_steps = total_steps
        self.dim = dim

    @classmethod
    def default_hparams(cls, data_kind: str) -> dict[str, Any]:
        """Method hyperparameters for ``"vector"`` or ``"image"`` data: the dataclass defaults unless overridden."""
        return cls.hparams_type().to_dict()

    @classmethod
    def adapt_to_teacher(cls, hp: dict[str, Any], teacher: Method) -> dict[str, Any]:
        """Hyperparameters completed from the method of the ``--teacher`` run (default: unchanged)."""
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

    def loss(self, nets: Nets, x: Tensor, step: int, drawn: Any = None) -> tuple[Tensor, dict[str, Tensor | float]]:
        """(loss, logs): logs hold detached tensors or floats, converted only when a step is logged.

        ``drawn`` is what :meth:`draw` returned for this step, when the training loop drew it ahead.
        """
        raise NotImplementedError

    def draw(self, x: Tensor, step: int) -> Any:
        """The random draws of step k for the batch x, for methods with :attr:`lookahead`."""
        raise NotImplementedError

    def after_step(self, nets: Nets, step: int) -> None:
        """Called after the optimiser step for step ``step`` (0-based). Updates θ⁻ if there is one."""
        if nets.target is not None:
            ema_update(nets.target, nets.model, self.target_decay(step))


@dataclass(frozen=True)
class ConsistencyHparams(Hparams):
    """What every consistency method has: the distance d of its loss."""

    distance: DistanceName = "pseudo_huber"


@dataclass
class Draw:
    """The random draws of one consistency step: the pair of times, the loss weight and the noise.

    ``boundary`` marks samples at TCM's t = t'; ``pairing`` is set by methods that start work on the draws
    ahead of time (OT's assignment, solved in a background thread while the previous step trains).
    """

    s_lo: Tensor
    s_hi: Tensor
    weight: Tensor
    z: Tensor
    boundary: Tensor | None = None
    pairing: Future[Tensor] | None = None


class ConsistencyMethod(Method):
    """The consistency loss written once; subclasses override the hooks their paper changes (module doc)."""

    hparams_type: ClassVar[type[Hparams]] = ConsistencyHparams

    def __init__(self, hp: dict[str, Any], noise: NoiseConfig, total_steps: int, dim: int) -> None:
        super().__init__(hp, noise, total_steps, dim)
        self.distance = get_distance(self.hp.distance, dim)

    # -- axis 1: the pair of times ------------------------------------------------------------------
    def times(self, batch: int, device: torch.device, step: int) -> tuple[Tensor, Tensor, Tensor | None]:
        """(σ_lo, σ_hi, boundary) for a batch: σ_lo < σ_hi; ``boundary`` marks TCM's t = t' samples (else None)."""
        raise NotImplementedError

    # -- axis 4: the weighting (the distance is ``self.distance``) ------------------------------------
    def weight(self, s_lo: Tensor, s_hi: Tensor, boundary: Tensor | None) -> Tensor:
        """The per-sample loss weight λ (default 1)."""
        return torch.ones_like(s_hi)

    def draw(self, x: Tensor, step: int) -> Draw:
        """Every random draw of step k for the batch x: the pair of times (with its weight), then the noise.

        The draws do not depend on the weights, so the training loop may make them one step early
        (:attr:`Method.lookahead`); the order of the draws on the RNG is the same either way.
        """
        s_lo, s_hi, boundary = self.times(x.shape[0], x.device, step)
        return Draw(s_lo, s_hi, self.weight(s_lo, s_hi, boundary), torch.randn_like(x), boundary)

    # -- axis 2: the clean endpoint (the coupling) ------------------------------------------------------
    def endpoint(self, nets: Nets, x: Tensor, d: Draw, step: int) -> tuple[Tensor, Tensor]:
        """The (clean endpoint, noise) pair. Independent coupling: (x, z) unchanged."""
        return x, d.z

    # -- axis 3: the target ---------------------------------------------------------------------------
    def target_network(self, nets: Nets) -> nn.Module:
        """θ⁻: the target EMA when the method keeps one, else the online model under stop-gradient."""
        return nets.target if nets.target is not None else nets.model

    def target(self, nets: Nets, x0: Tensor, z: Tensor, d: Draw, x_hi: Tensor) -> Tensor:
        """The target at the smaller time (run under ``no_grad``): f_θ⁻(x₀ + σ_lo·z, σ_lo), the same z."""
        return self.target_network(nets)(x0 + expand(d.s_lo, x0) * z, d.s_lo)

    def logs(self, d: Draw, step: int) -> dict[str, Tensor | float]:
        """Extra per-step logs (detached tensors or floats)."""
        return {}

    def loss(self, nets: Nets, x: Tensor, step: int,
             drawn: Draw | None = None) -> tuple[Tensor, dict[str, Tensor | float]]:
        d = drawn if drawn is not None else self.draw(x, step)
        x0, z = self.endpoint(nets, x, d, step)
        x_hi = x0 + expand(d.s_hi, x0) * z
        loss, _ = consistency_step(nets.model, x_hi, d.s_hi, lambda: self.target(nets, x0, z, d, x_hi), d.weight,
                                   self.distance)
        return loss, {"loss": loss.detach(), **self.logs(d, step)}
