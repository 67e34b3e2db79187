"""A training run in memory (:class:`Run`) and how one is built from a config (:func:`build_run`).

:func:`build_run` is a few steps, each a helper that returns new values and leaves its inputs alone: read the
teacher (:class:`cmtutor.checkpoint.Teacher`), resolve the config against the teacher and the data
(:func:`resolve_config`), then make the networks, the optimiser and the method. The loop that trains a run
is :func:`cmtutor.training.loop.train_steps`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cmtutor.checkpoint import Teacher, load_checkpoint
from cmtutor.config.run import TrainConfig
from cmtutor.core.ema import make_ema
from cmtutor.data.images import image_batch, images_to_tensor
from cmtutor.data.sources import fit_scaler, flat_dim, load_data, scaler_from_dict
from cmtutor.data.vectors import VectorData
from cmtutor.errors import CheckpointError, UserError
from cmtutor.hardware import distributed
from cmtutor.hardware.accel import resolve_device
from cmtutor.methods import Method, Nets, get_method
from cmtutor.nets.build import make_model
from cmtutor.nets.unet import resolve_net_config
from cmtutor.sampler import Sampler
from cmtutor.training.lookahead import Batches, batch_source
from cmtutor.training.rng import seed_everything


@dataclass
class Run:
    """A training run in memory: config, method, networks, optimiser, data and step counter.

    ``train_x`` holds the standardised training vectors, or the uint8 training images [N, C, H, W]
    (scaled to [−1, 1] batch by batch); ``dim`` is D for vectors and (C, H, W) for images.
    """

    cfg: TrainConfig
    method: Method
    nets: Nets
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    standardizer: Any
    data: Any
    train_x: Tensor
    device: torch.device
    dim: Any
    step: int = 0
    teacher: Teacher | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    #: processes in the job (``torchrun``) and this one's rank; ``batch_size`` is split over them
    world_size: int = 1
    rank: int = 0
    #: True once ``nets.model`` is wrapped for training (compile / DDP), see :mod:`cmtutor.hardware.accel`
    prepared: bool = False
    #: where each step's batch comes from (:mod:`cmtutor.training.lookahead`)
    batches: Batches = field(default_factory=Batches)
    #: torch's CPU thread count the run trains on: chosen when it first trains, kept in its checkpoints and
    #: reused on resume (the weights depend on it in the last bits: :mod:`cmtutor.hardware.threads`)
    threads: int | None = None

    @property
    def local_batch(self) -> int:
        return self.cfg.batch_size // self.world_size

    def draw_batch(self) -> Tensor:
        """This process's next training batch in model space (uses the default RNG of the device)."""
        if self.train_x.dtype == torch.uint8:
            return image_batch(self.train_x, self.local_batch, self.cfg.xflip, self.cfg.channels_last)
        idx = torch.randint(0, self.train_x.shape[0], (self.local_batch,), device=self.device)
        return self.train_x[idx]

    def sampler(self, weights: str = "ema", ema_decay: float | None = None, renoise: str | None = None) -> Sampler:
        """A :class:`cmtutor.sampler.Sampler` of the current weights (EMA by default).

        ``ema_decay`` picks one of the run's sampling EMAs by its decay (``cfg.ema_decay`` or one of
        ``cfg.extra_ema_decays``); None is the main EMA. ``renoise`` overrides how multistep sampling
        re-noises (``TrainConfig.renoise``; None: the run's own).
        """
        model = self.nets.ema.module if weights == "ema" else self.nets.model
        if weights == "ema" and ema_decay is not None and ema_decay != self.cfg.ema_decay:
            if ema_decay not in self.nets.extra_emas:
                kept = [self.cfg.ema_decay, *self.nets.extra_emas]
                raise ValueError(f"this run keeps no EMA with decay {ema_decay}; it keeps {kept}")
            model = self.nets.extra_emas[ema_decay].module
        cfg = self.cfg if renoise is None else dataclasses.replace(self.cfg, renoise=renoise)
        return Sampler(model, cfg, self.standardizer, self.dim, teacher=self.nets.teacher)


def lr_lambda(cfg: TrainConfig) -> Any:
    """Linear warm-up over ``warmup_steps``, then constant or cosine decay to 10% at the last step."""
    warm = max(cfg.warmup_steps, 0)

    def f(k: int) -> float:
        if warm and k < warm:
            return (k + 1) / warm
        if cfg.lr_decay == "cosine":
            t = (k - warm) / max(1, cfg.steps - warm)
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
        return 1.0

    return f


def make_optimizer(cfg: TrainConfig, params: Any) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, foreach=True)
    if cfg.optimizer == "radam":
        return torch.optim.RAdam(params, lr=cfg.lr, foreach=True)
    raise UserError(f"unknown optimizer {cfg.optimizer!r}; expected 'adam' or 'radam'")


def method_from_config(cfg: TrainConfig, dim: Any) -> Method:
    """The method object of a (resolved) config; :class:`UserError` for bad hyperparameters."""
    try:
        return get_method(cfg.method)(cfg.hp, cfg.noise_config, cfg.steps, flat_dim(dim))
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"bad hyperparameters for {cfg.method}: {exc}") from None


def read_teacher(cfg: TrainConfig, teacher: dict[str, Any] | Teacher | None) -> Teacher | None:
    """The teacher of a run: given (a loaded checkpoint or a :class:`Teacher`), else read from ``cfg.teacher``.

    Checked against the method: a method that needs a teacher gets one of the kinds it accepts.
    """
    cls = get_method(cfg.method)
    if teacher is None and cfg.teacher is not None:
        teacher = load_checkpoint(cfg.teacher, cls.teacher_methods or None, role="--teacher")
    if isinstance(teacher, dict):
        teacher = Teacher.from_checkpoint(teacher)
    if cls.requires_teacher and teacher is None:
        raise UserError(f"method {cfg.method!r} needs --teacher (a checkpoint of: {', '.join(cls.teacher_methods)})")
    if teacher is not None and cls.teacher_methods and teacher.method not in cls.teacher_methods:
        raise CheckpointError(f"--teacher was trained with method {teacher.method!r}; "
                              f"{cfg.method} needs one of: {', '.join(cls.teacher_methods)}")
    return teacher


def resolve_config(cfg: TrainConfig, data: Any, teacher: Teacher | None) -> TrainConfig:
    """A new config completed from the teacher and the data (``cfg`` itself is left unchanged).

    A teacher fixes the noise levels (the student lives in exactly the teacher's coordinates), its network
    when the student starts from its weights (``init_from_teacher``), and what the method takes from it
    (:meth:`Method.adapt_to_teacher`: TCM continues stage 1's Δt). A U-Net preset is expanded for the data.
    """
    cls = get_method(cfg.method)
    noise, net, hp = dict(cfg.noise), dict(cfg.net), dict(cfg.hp)
    if teacher is not None:
        if tuple(np.atleast_1d(teacher.dim)) != tuple(np.atleast_1d(data.dim)):
            raise UserError(f"--teacher was trained on data of shape {teacher.dim}, but {cfg.data} "
                            f"has shape {data.dim}")
        noise = dict(teacher.config["noise"])
        if hp.get("init_from_teacher"):  # the student copies the teacher's weights: the same network
            net = dict(teacher.config["net"])
        if cls.adapt_to_teacher is not Method.adapt_to_teacher:
            hp = cls.adapt_to_teacher(hp, method_from_config(teacher.train_config, teacher.dim))
    if net.get("kind") == "unet":
        if not isinstance(data.dim, tuple):
            raise UserError(f"the U-Net needs image data; {cfg.data} holds vectors (use the default MLP)")
        net = resolve_net_config(net, data.dim[-1])
    return dataclasses.replace(cfg, noise=noise, net=net, hp=hp)


def make_nets(cfg: TrainConfig, method: Method, dim: Any, teacher: Teacher | None, device: torch.device) -> Nets:
    """The online model (seeded), its sampling EMAs, the target network if the method keeps one, the teacher."""
    seed_everything(cfg.seed)
    model = make_model(cfg.net, dim, cfg.noise_config, method.parameterization).to(device)
    teacher_model = teacher.build().to(device) if teacher is not None else None
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
        if teacher_model is not None:
            teacher_model = teacher_model.to(memory_format=torch.channels_last)
    if cfg.hp.get("init_from_teacher") and teacher_model is not None:
        model.net.load_state_dict(teacher_model.net.state_dict())
    nets = Nets(model=model, ema=make_ema(model, cfg.ema_decay), teacher=teacher_model,
                extra_emas={float(d): make_ema(model, float(d)).eval() for d in cfg.extra_ema_decays})
    if method.uses_target_network():
        nets.target = make_ema(model, method.target_decay(0))
    nets.ema.eval()
    return nets


def training_tensor(data: Any, standardizer: Any, device: torch.device) -> Tensor:
    """The training set in model space: standardised vectors, or the uint8 images [N, C, H, W]."""
    if isinstance(data, VectorData):
        return standardizer.encode(torch.as_tensor(data.train)).to(device)
    return images_to_tensor(data.train).to(device)


def build_run(cfg: TrainConfig, data: Any = None, teacher: dict[str, Any] | Teacher | None = None) -> Run:
    """Create a fresh run: data, standardiser, networks (seeded), optimiser and method.

    ``teacher`` is a loaded checkpoint dict (see :func:`cmtutor.checkpoint.load_checkpoint`) or a
    :class:`~cmtutor.checkpoint.Teacher`; if None and the method needs one, ``cfg.teacher`` is read. The run
    holds the resolved config (:func:`resolve_config`) in ``run.cfg``; ``cfg`` is not changed.
    """
    device = resolve_device(cfg.device)
    teacher = read_teacher(cfg, teacher)
    data = data if data is not None else load_data(cfg.data)
    cfg = resolve_config(cfg, data, teacher)
    standardizer = scaler_from_dict(teacher.standardizer) if teacher is not None else fit_scaler(data)
    env = distributed.env()
    if cfg.batch_size % env.world_size:
        raise UserError(f"--batch-size {cfg.batch_size} is the global batch; it must be divisible by the "
                        f"number of processes ({env.world_size})")
    method = method_from_config(cfg, data.dim)
    nets = make_nets(cfg, method, data.dim, teacher, device)
    optimizer = make_optimizer(cfg, nets.model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    train_x = training_tensor(data, standardizer, device)
    if env.distributed:  # the same initial weights everywhere, then a different data/noise stream per rank
        seed_everything(cfg.seed + 1_000_003 * (env.rank + 1))
    return Run(cfg, method, nets, optimizer, scheduler, standardizer, data, train_x, device, data.dim,
               teacher=teacher, world_size=env.world_size, rank=env.rank,
               batches=batch_source(method.lookahead, train_x.dtype == torch.uint8))
