"""Checkpoints: atomic writes, validated reads, and rebuilding networks from a checkpoint.

A checkpoint is a ``torch.save`` dict with ``format == FORMAT`` holding the run's config, the method
name, the step, the model / EMA / target / optimiser / scheduler states, every RNG state, the data
standardiser and, for methods that learn from a teacher, the teacher's config and weights (so a
checkpoint is self-contained: it samples and resumes without the teacher file).

Writes go to a temporary file in the same folder, are flushed and fsynced, then renamed over the old
file (``os.replace`` is atomic on POSIX), so ``kill -9`` at any moment leaves either the old or the new
checkpoint, never a torn one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cmtutor.errors import CheckpointError

FORMAT = "cmtutor-checkpoint-v1"


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
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"{role} {p} is not a readable checkpoint ({exc.__class__.__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{role} {p} is not a cmtutor checkpoint")
    if methods is not None and ckpt["config"]["method"] not in methods:
        raise CheckpointError(f"{role} {p} was trained with method {ckpt['config']['method']!r}; "
                              f"expected one of: {', '.join(methods)}")
    return ckpt


def build_network(net_cfg: dict[str, Any], dim: int | tuple[int, ...]) -> nn.Module:
    """The raw network F_θ described by a config's ``net`` entry (``kind`` selects the architecture)."""
    kind = net_cfg.get("kind", "mlp")
    args = {k: v for k, v in net_cfg.items() if k != "kind"}
    if kind == "mlp":
        from cmtutor.nets import MLP, MLPConfig

        return MLP(MLPConfig(dim=int(dim if isinstance(dim, int) else dim[0]), **args))
    if kind == "unet":
        from cmtutor.unet import build_unet  # type: ignore[import-not-found]

        return build_unet(args, dim)
    raise CheckpointError(f"unknown network kind {kind!r} in config")


def state_dict_of(module: nn.Module) -> dict[str, Any]:
    """A state dict without a ``torch.compile`` or DDP wrapper's prefixes."""
    inner = getattr(module, "_orig_mod", module)
    inner = getattr(inner, "module", inner) if isinstance(inner, nn.parallel.DistributedDataParallel) else inner
    return inner.state_dict()
