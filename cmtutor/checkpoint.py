"""Checkpoints: atomic writes, validated reads, and rebuilding networks from a checkpoint.

A checkpoint is a ``torch.save`` dict with ``format == FORMAT`` holding the run's config, the method
name, the step, the model / EMA / target / optimiser / scheduler states, every RNG state, the data
standardiser and, for methods that learn from a teacher, the teacher's config and weights (so a
checkpoint is self-contained: it samples and resumes without the teacher file).

Checkpoints are data: they are read with ``torch.load(weights_only=True)``, which builds tensors, containers
and plain values only and refuses any other Python object, so a crafted ``.pt`` file given as ``--ckpt``,
``--teacher`` or ``--resume`` runs nothing (PyTorch's own default since 2.6; :func:`read_torch_file`). The
only objects allowed besides are NumPy arrays (:data:`LEGACY_GLOBALS`), which checkpoints written before the
RNG states became tensors hold.

Writes go to a temporary file in the same folder, are flushed and fsynced, then renamed over the old
file (``os.replace`` is atomic on POSIX), so ``kill -9`` at any moment leaves either the old or the new
checkpoint, never a torn one.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cmtutor.config.run import TrainConfig
from cmtutor.core.precond import Preconditioned
from cmtutor.errors import CheckpointError
from cmtutor.methods import get_method
from cmtutor.nets.build import make_model

FORMAT = "cmtutor-checkpoint-v1"
#: NumPy's array reconstruction, its array and dtype classes: what checkpoints written before the NumPy RNG state
#: was stored as a tensor hold (``np.random.get_state()``'s key array). Nothing else but tensors and plain data.
LEGACY_GLOBALS: list[Any] = [np.zeros(1).__reduce__()[0], np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def read_torch_file(path: Path, role: str) -> Any:
    """``torch.load`` of a file that may come from anyone: tensors and plain data only, never code.

    :class:`CheckpointError` (one line) for a file that asks for any other Python object (nothing in it is
    run), and for a truncated or corrupt file.
    """
    try:
        with torch.serialization.safe_globals(LEGACY_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        what = found.group(1) if found else "an object that is not data"
        raise CheckpointError(f"{role} {path} was not loaded: it asks to build the Python object {what}, which a "
                              "cmtutor checkpoint never holds (nothing in the file was run)") from None
    except Exception as exc:
        raise CheckpointError(f"{role} {path} is not a readable checkpoint (truncated or corrupt: "
                              f"{exc.__class__.__name__})") from None


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` to ``path`` atomically (temporary file + fsync + rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path: str | os.PathLike[str], methods: tuple[str, ...] | None = None,
                    role: str = "checkpoint") -> dict[str, Any]:
    """Read a cmtutor checkpoint; :class:`CheckpointError` if missing, unreadable or of the wrong method.

    ``methods`` lists the acceptable training methods (None accepts any); ``role`` names the
    checkpoint in messages (e.g. "--teacher").
    """
    p = Path(path)
    if p.is_dir():
        p = p / "checkpoint.pt"
    if not p.exists():
        raise CheckpointError(f"{role} not found: {path}")
    ckpt = read_torch_file(p, role)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{role} {p} is not a cmtutor checkpoint")
    if methods is not None and ckpt["config"]["method"] not in methods:
        raise CheckpointError(f"{role} {p} was trained with method {ckpt['config']['method']!r}; "
                              f"expected one of: {', '.join(methods)}")
    return ckpt


def state_dict_of(module: nn.Module) -> dict[str, Any]:
    """A state dict without a ``torch.compile`` or DDP wrapper's prefixes."""
    inner = getattr(module, "_orig_mod", module)
    inner = getattr(inner, "module", inner) if isinstance(inner, nn.parallel.DistributedDataParallel) else inner
    return inner.state_dict()


def ema_state(ckpt: dict[str, Any]) -> dict[str, Tensor]:
    """The sampling EMA's weights of a checkpoint, without the ``AveragedModel`` prefix."""
    return {k.removeprefix("module."): v for k, v in ckpt["ema"].items() if k.startswith("module.")}


def _frozen(model: Preconditioned) -> Preconditioned:
    model.eval().requires_grad_(False)
    return model


def model_from_checkpoint(ckpt: dict[str, Any], weights: str = "ema") -> Preconditioned:
    """Rebuild the trained network of a checkpoint, with its EMA (default) or raw online weights."""
    cfg = TrainConfig.from_dict(ckpt["config"])
    model = make_model(cfg.net, ckpt["dim"], cfg.noise_config, get_method(cfg.method).parameterization)
    if weights == "ema":
        state = ema_state(ckpt)
    elif weights == "raw":
        state = ckpt["model"]
    else:
        raise ValueError(f"weights must be 'ema' or 'raw', got {weights!r}")
    model.load_state_dict(state)
    return _frozen(model)


@dataclass(frozen=True)
class Teacher:
    """The frozen network a run learns from (``--teacher``): the diffusion denoiser of CD and Direct CM, the
    stage-1 consistency model of TCM. One description from the ``--teacher`` file to the student's checkpoint,
    which embeds it (:meth:`to_dict`), so a student samples and resumes without the teacher file.

    config: the teacher run's config; dim: its data shape; state: its EMA weights; standardizer: the map from
    raw data to the teacher's coordinates, which the student shares.
    """

    config: dict[str, Any]
    dim: Any
    state: dict[str, Tensor]
    standardizer: dict[str, Any]

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any]) -> Teacher:
        """The teacher a checkpoint *is* (a ``--teacher`` file): its config and EMA weights."""
        return cls(ckpt["config"], ckpt["dim"], ema_state(ckpt), ckpt["standardizer"])

    @classmethod
    def embedded_in(cls, ckpt: dict[str, Any]) -> Teacher | None:
        """The teacher a student's checkpoint embeds, or None."""
        t = ckpt.get("teacher")
        if t is None:
            return None
        return cls(t["config"], t["dim"], t["state"], ckpt["standardizer"])

    @property
    def method(self) -> str:
        return str(self.config["method"])

    @property
    def train_config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.config)

    def to_dict(self) -> dict[str, Any]:
        """What a student's checkpoint stores under ``"teacher"`` (the standardiser is the student's own)."""
        return {"config": self.config, "dim": self.dim, "state": self.state}

    def build(self) -> Preconditioned:
        """The frozen network, on the CPU."""
        cfg = self.train_config
        model = make_model(cfg.net, self.dim, cfg.noise_config, get_method(cfg.method).parameterization)
        model.load_state_dict(self.state)
        return _frozen(model)


def teacher_from_checkpoint(ckpt: dict[str, Any]) -> Preconditioned | None:
    """The frozen teacher embedded in a checkpoint (or None)."""
    teacher = Teacher.embedded_in(ckpt)
    return teacher.build() if teacher is not None else None
