"""The training loop: build a run from a config, step it, checkpoint it, resume it exactly.

The loop itself is :func:`train_steps`, a generator that performs one optimisation step per iteration
and yields that step's logs, so a notebook can watch (and plot) training as it happens::

    run = build_run(default_config("ict", "moons", steps=2000))
    for log in train_steps(run):
        ...

:func:`fit` runs it to the end with an optional progress bar; the command line (``cmtutor.cli``) adds
metrics logging and periodic atomic checkpoints. A checkpoint holds every RNG state, so a resumed run
ends with the same weights as one that was never interrupted.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cmtutor.checkpoint import FORMAT, build_network, load_checkpoint, state_dict_of
from cmtutor.config import TrainConfig
from cmtutor.data import VectorData, fit_scaler, flat_dim, load_data, scaler_from_dict
from cmtutor.ema import ema_update, make_ema
from cmtutor.methods import Method, Nets, get_method
from cmtutor.precond import NoiseConfig, Preconditioned


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA if available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        from cmtutor.errors import UserError

        raise UserError("--device cuda was requested but no CUDA GPU is available; use --device cpu or auto")
    return torch.device(name)


def make_model(net_cfg: dict[str, Any], dim: int, noise: NoiseConfig, kind: str) -> Preconditioned:
    """F_θ from ``net_cfg`` wrapped in EDM (``kind="edm"``) or CM-boundary (``"cm"``) preconditioning."""
    return Preconditioned(build_network(net_cfg, dim), noise, kind)  # type: ignore[arg-type]


def model_from_checkpoint(ckpt: dict[str, Any], weights: str = "ema") -> Preconditioned:
    """Rebuild the trained network of a checkpoint, with its EMA (default) or raw online weights."""
    cfg = TrainConfig.from_dict(ckpt["config"])
    kind = get_method(cfg.method).parameterization
    model = make_model(cfg.net, ckpt["dim"], cfg.noise_config, kind)
    if weights == "ema":
        state = {k.removeprefix("module."): v for k, v in ckpt["ema"].items() if k.startswith("module.")}
    elif weights == "raw":
        state = ckpt["model"]
    else:
        raise ValueError(f"weights must be 'ema' or 'raw', got {weights!r}")
    model.load_state_dict(state)
    model.eval().requires_grad_(False)
    return model


def teacher_from_checkpoint(ckpt: dict[str, Any]) -> Preconditioned | None:
    """The frozen teacher embedded in a checkpoint (or None)."""
    if ckpt.get("teacher") is None:
        return None
    t = ckpt["teacher"]
    cfg = TrainConfig.from_dict(t["config"])
    model = make_model(cfg.net, t["dim"], cfg.noise_config, get_method(cfg.method).parameterization)
    model.load_state_dict(t["state"])
    return model.eval().requires_grad_(False)


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
    teacher_info: dict[str, Any] | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    #: processes in the job (``torchrun``) and this one's rank; ``batch_size`` is split over them
    world_size: int = 1
    rank: int = 0
    #: True once ``nets.model`` is wrapped for training (compile / DDP), see :mod:`cmtutor.accel`
    prepared: bool = False
    #: the next step's (step, batch, draws), made early by :func:`train_steps` for ``Method.lookahead``
    pending: tuple[int, Tensor, Any] | None = None
    #: the RNG states from before ``pending`` was drawn: what a checkpoint saves, so a resume redraws it
    rng_before_pending: dict[str, Any] | None = None

    @property
    def local_batch(self) -> int:
        return self.cfg.batch_size // self.world_size

    def draw_batch(self) -> Tensor:
        """This process's next training batch in model space (uses the default RNG of the device)."""
        if self.train_x.dtype == torch.uint8:
            from cmtutor.imagedata import image_batch

            return image_batch(self.train_x, self.local_batch, self.cfg.xflip, self.cfg.channels_last)
        idx = torch.randint(0, self.train_x.shape[0], (self.local_batch,), device=self.device)
        return self.train_x[idx]

    def sampler(self, weights: str = "ema", ema_decay: float | None = None) -> Any:
        """A :class:`cmtutor.sampling.Sampler` of the current weights (EMA by default).

        ``ema_decay`` picks one of the run's sampling EMAs by its decay (``cfg.ema_decay`` or one of
        ``cfg.extra_ema_decays``); None is the main EMA.
        """
        from cmtutor.sampling import Sampler

        model = self.nets.ema.module if weights == "ema" else self.nets.model
        if weights == "ema" and ema_decay is not None and ema_decay != self.cfg.ema_decay:
            if ema_decay not in self.nets.extra_emas:
                kept = [self.cfg.ema_decay, *self.nets.extra_emas]
                raise ValueError(f"this run keeps no EMA with decay {ema_decay}; it keeps {kept}")
            model = self.nets.extra_emas[ema_decay].module
        return Sampler(model, self.cfg, self.standardizer, self.dim, teacher=self.nets.teacher)


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
    from cmtutor.errors import UserError

    raise UserError(f"unknown optimizer {cfg.optimizer!r}; expected 'adam' or 'radam'")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_run(cfg: TrainConfig, data: Any = None, teacher: dict[str, Any] | None = None) -> Run:
    """Create a fresh run: data, standardiser, networks (seeded), optimiser and method.

    ``teacher`` is a loaded checkpoint dict (see :func:`cmtutor.checkpoint.load_checkpoint`); if None and
    the method needs one, ``cfg.teacher`` is loaded. A teacher fixes the standardiser and noise levels,
    so the student lives in exactly the teacher's coordinates.
    """
    method_cls = get_method(cfg.method)
    device = resolve_device(cfg.device)
    if teacher is None and cfg.teacher is not None:
        teacher = load_checkpoint(cfg.teacher, method_cls.teacher_methods or None, role="--teacher")
    if method_cls.requires_teacher and teacher is None:
        from cmtutor.errors import UserError

        raise UserError(f"method {cfg.method!r} needs --teacher (a checkpoint of: "
                        f"{', '.join(method_cls.teacher_methods)})")
    if teacher is not None and method_cls.teacher_methods and teacher["config"]["method"] not in method_cls.teacher_methods:
        from cmtutor.errors import CheckpointError

        raise CheckpointError(f"--teacher was trained with method {teacher['config']['method']!r}; "
                              f"{cfg.method} needs one of: {', '.join(method_cls.teacher_methods)}")
    data = data if data is not None else load_data(cfg.data)
    if teacher is not None:
        standardizer = scaler_from_dict(teacher["standardizer"])
        cfg.noise = dict(teacher["config"]["noise"])
        if cfg.hp.get("init_from_teacher"):  # the student copies the teacher's weights: same network
            cfg.net = dict(teacher["config"]["net"])
        cfg.hp = method_cls.adapt_to_teacher(dict(cfg.hp), teacher["config"], flat_dim(teacher["dim"]))
        if tuple(np.atleast_1d(teacher["dim"])) != tuple(np.atleast_1d(data.dim)):
            from cmtutor.errors import UserError

            raise UserError(f"--teacher was trained on data of shape {teacher['dim']}, but {cfg.data} "
                            f"has shape {data.dim}")
    else:
        standardizer = fit_scaler(data)
    noise = cfg.noise_config
    if cfg.net.get("kind") == "unet":
        from cmtutor.unet import resolve_net_config

        if not isinstance(data.dim, tuple):
            from cmtutor.errors import UserError

            raise UserError(f"the U-Net needs image data; {cfg.data} holds vectors (use the default MLP)")
        cfg.net = resolve_net_config(cfg.net, data.dim[-1])
    from cmtutor import distributed

    env = distributed.env()
    if cfg.batch_size % env.world_size:
        from cmtutor.errors import UserError

        raise UserError(f"--batch-size {cfg.batch_size} is the global batch; it must be divisible by the "
                        f"number of processes ({env.world_size})")

    seed_everything(cfg.seed)
    model = make_model(cfg.net, data.dim, noise, method_cls.parameterization).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    teacher_model = None
    teacher_info = None
    if teacher is not None:
        teacher_model = teacher_from_checkpoint({"teacher": {"config": teacher["config"], "dim": teacher["dim"],
                                                             "state": _ema_state(teacher)}}).to(device)
        teacher_info = {"config": teacher["config"], "dim": teacher["dim"], "state": _ema_state(teacher)}
        if cfg.channels_last:
            teacher_model = teacher_model.to(memory_format=torch.channels_last)
    try:
        method = method_cls(cfg.hp, noise, cfg.steps, flat_dim(data.dim))
    except (ValueError, KeyError, TypeError) as exc:
        from cmtutor.errors import UserError

        raise UserError(f"bad hyperparameters for {cfg.method}: {exc}") from None
    if cfg.hp.get("init_from_teacher") and teacher_model is not None:
        model.net.load_state_dict(teacher_model.net.state_dict())
    nets = Nets(model=model, ema=make_ema(model, cfg.ema_decay), teacher=teacher_model,
                extra_emas={float(d): make_ema(model, float(d)).eval() for d in cfg.extra_ema_decays})
    if method.uses_target_network():
        nets.target = make_ema(model, method.target_decay(0))
    nets.ema.eval()
    optimizer = make_optimizer(cfg, model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    if isinstance(data, VectorData):
        train_x = standardizer.encode(torch.as_tensor(data.train)).to(device)
    else:
        from cmtutor.imagedata import images_to_tensor

        train_x = images_to_tensor(data.train).to(device)
    if env.distributed:  # the same initial weights everywhere, then a different data/noise stream per rank
        seed_everything(cfg.seed + 1_000_003 * (env.rank + 1))
    return Run(cfg, method, nets, optimizer, scheduler, standardizer, data, train_x, device, data.dim,
               teacher_info=teacher_info, world_size=env.world_size, rank=env.rank)


def _ema_state(ckpt: dict[str, Any]) -> dict[str, Tensor]:
    return {k.removeprefix("module."): v for k, v in ckpt["ema"].items() if k.startswith("module.")}


def train_steps(run: Run, until: int | None = None) -> Iterator[dict[str, Any]]:
    """Step the run until ``until`` (default ``cfg.steps``), yielding each step's logs.

    Each yielded dict has ``step`` (steps done so far), ``lr`` and the method's logs (tensors are
    converted lazily by :func:`to_floats`, so a GPU never waits for a host sync on unlogged steps).
    """
    from cmtutor.accel import wrap_for_training

    until = run.cfg.steps if until is None else until
    if not run.prepared:  # compile / DDP wrappers (the parameters stay the same objects)
        run.nets.model = wrap_for_training(run.nets.model, run.device, run.cfg.compile)
        run.prepared = True
    model, nets, opt = run.nets.model, run.nets, run.optimizer
    model.train()
    if nets.target is not None:
        nets.target.train()
    # Lookahead (OT on vector data): the batch and draws of step k + 1 are made right after those of step k,
    # so the method can work on them (OT's assignment, in a thread) while step k trains. Nothing draws from
    # the RNG in between, so the random stream, and the trained weights, are those of the plain loop.
    # Image networks use dropout inside the step, which would move their masks on the stream: no lookahead.
    lookahead = run.method.lookahead and run.train_x.dtype != torch.uint8
    threads = torch.get_num_threads()
    if lookahead and run.device.type == "cpu" and threads > 1:
        torch.set_num_threads(threads - 1)  # a core for the method's thread (2D OT: 20.9 → 9.0 ms a step)
    try:
        yield from _steps(run, until, model, nets, opt, lookahead)
    finally:
        torch.set_num_threads(threads)


def _steps(run: Run, until: int, model: nn.Module, nets: Nets, opt: torch.optim.Optimizer,
           lookahead: bool) -> Iterator[dict[str, Any]]:
    from cmtutor.accel import autocast

    while run.step < until:
        drawn = None
        if run.pending is not None and run.pending[0] == run.step:
            _, x, drawn = run.pending
        else:
            if run.pending is not None:  # made for another step: rewind to before it
                set_rng_states(run.rng_before_pending, run.device)
            x = run.draw_batch()
            if lookahead:
                drawn = run.method.draw(x, run.step)
        run.pending = run.rng_before_pending = None
        if lookahead and run.step + 1 < until:
            run.rng_before_pending = rng_states(run.device)
            x_next = run.draw_batch()
            run.pending = (run.step + 1, x_next, run.method.draw(x_next, run.step + 1))
        with autocast(run.device, run.cfg.precision):
            loss, logs = (run.method.loss(nets, x, run.step) if drawn is None
                          else run.method.loss(nets, x, run.step, drawn))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if run.cfg.grad_clip and run.cfg.grad_clip > 0:
            logs["grad_norm"] = nn.utils.clip_grad_norm_(model.parameters(), run.cfg.grad_clip).detach()
        lr = opt.param_groups[0]["lr"]
        opt.step()
        run.scheduler.step()
        ema_update(nets.ema, model)
        for extra in nets.extra_emas.values():
            ema_update(extra, model)
        run.method.after_step(nets, run.step)
        run.step += 1
        yield {"step": run.step, "lr": lr, **logs}


def to_floats(logs: dict[str, Any]) -> dict[str, float]:
    """Convert a step's logs (tensors, numbers) to plain floats for JSON."""
    out = {k: (float(v.item()) if isinstance(v, Tensor) else float(v)) for k, v in logs.items()}
    if "step" in out:
        out["step"] = int(out["step"])  # type: ignore[assignment]
    return out


def fit(cfg: TrainConfig, progress: bool = False, data: Any = None,
        teacher: dict[str, Any] | None = None, log_every: int | None = None) -> Run:
    """Build and train a run to ``cfg.steps`` in memory; the loss curve is kept in ``run.history``."""
    run = build_run(cfg, data=data, teacher=teacher)
    every = log_every or cfg.log_every
    steps = train_steps(run)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, total=cfg.steps, desc=f"{cfg.method} on {cfg.data}")
    for logs in steps:
        if logs["step"] % every == 0 or logs["step"] == cfg.steps:
            run.history.append(to_floats(logs))
    return run


# --- checkpoints ----------------------------------------------------------------------------------

def rng_states(device: torch.device) -> dict[str, Any]:
    states: dict[str, Any] = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                              "python": random.getstate()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def set_rng_states(states: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)


def checkpoint_dict(run: Run) -> dict[str, Any]:
    """Everything needed to sample from the run and to resume it exactly."""
    nets = run.nets
    return {
        "format": FORMAT,
        "config": run.cfg.to_dict(),
        "dim": run.dim,
        "step": run.step,
        "model": state_dict_of(nets.model),
        "ema": nets.ema.state_dict(),
        "extra_emas": {repr(d): e.state_dict() for d, e in nets.extra_emas.items()},
        "target": nets.target.state_dict() if nets.target is not None else None,
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "rng": run.rng_before_pending or rng_states(run.device),
        "standardizer": run.standardizer.to_dict(),
        "teacher": run.teacher_info,
    }


def save_checkpoint(run: Run, path: Any) -> None:
    """Write the run's checkpoint atomically (under ``torchrun``: call on every rank; rank 0 writes).

    Under ``torchrun`` the checkpoint also holds every rank's RNG states (``rng_ranks``), so a resume
    with the same number of processes continues exactly.
    """
    from cmtutor import distributed
    from cmtutor.checkpoint import atomic_torch_save

    ranks = (distributed.all_gather_object(run.rng_before_pending or rng_states(run.device))
             if run.world_size > 1 else None)
    if run.rank == 0:
        ckpt = checkpoint_dict(run)
        if ranks is not None:
            ckpt["rng_ranks"] = ranks
        atomic_torch_save(ckpt, path)
    distributed.barrier()


def resume_run(ckpt: dict[str, Any], device: str | None = None) -> Run:
    """Rebuild a run from its checkpoint, at the saved step with every state restored."""
    cfg = TrainConfig.from_dict(ckpt["config"])
    if device is not None:
        cfg.device = device
    teacher = None
    if ckpt.get("teacher") is not None:
        t = ckpt["teacher"]
        teacher = {"config": t["config"], "dim": t["dim"], "standardizer": ckpt["standardizer"],
                   "ema": {f"module.{k}": v for k, v in t["state"].items()}}
    run = build_run(cfg, teacher=teacher)
    from cmtutor.accel import unwrap

    unwrap(run.nets.model).load_state_dict(ckpt["model"])
    run.nets.ema.load_state_dict(ckpt["ema"])
    for d, state in ckpt.get("extra_emas", {}).items():
        run.nets.extra_emas[float(d)].load_state_dict(state)
    if run.nets.target is not None and ckpt["target"] is not None:
        run.nets.target.load_state_dict(ckpt["target"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.scheduler.load_state_dict(ckpt["scheduler"])
    run.standardizer = scaler_from_dict(ckpt["standardizer"])
    run.step = int(ckpt["step"])
    ranks = ckpt.get("rng_ranks")
    if run.world_size > 1 or ranks is not None:
        if ranks is not None and len(ranks) == run.world_size:
            set_rng_states(ranks[run.rank], run.device)
        else:
            import sys

            if run.rank == 0:
                print(f"warning: the checkpoint was written by {len(ranks) if ranks else 1} process(es), this job "
                      f"has {run.world_size}: training continues, but not exactly as it would have",
                      file=sys.stderr)
            seed_everything(run.cfg.seed + 1_000_003 * (run.rank + 1) + run.step)
    else:
        set_rng_states(ckpt["rng"], run.device)
    return run
