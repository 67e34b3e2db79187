"""Networks from a config's ``net`` entry, wrapped in their preconditioning."""

from __future__ import annotations

from typing import Any

from torch import nn

from cmtutor.core.noise import NoiseConfig
from cmtutor.core.precond import Parameterization, Preconditioned
from cmtutor.errors import CheckpointError
from cmtutor.nets.flow_models import MeanFlowModel, TrigFlowModel
from cmtutor.nets.mlp import MLP, MLPConfig
from cmtutor.nets.unet import build_unet


def build_network(net_cfg: dict[str, Any], dim: int | tuple[int, ...]) -> nn.Module:
    """The raw network F_θ described by a config's ``net`` entry (``kind`` selects the architecture)."""
    kind = net_cfg.get("kind", "mlp")
    args = {k: v for k, v in net_cfg.items() if k != "kind"}
    if kind == "mlp":
        return MLP(MLPConfig(dim=int(dim if isinstance(dim, int) else dim[0]), **args))
    if kind == "unet":
        return build_unet(args, dim)
    raise CheckpointError(f"unknown network kind {kind!r} in config")


def make_model(net_cfg: dict[str, Any], dim: int | tuple[int, ...], noise: NoiseConfig,
               kind: Parameterization) -> nn.Module:
    """F_θ from ``net_cfg`` wrapped in EDM (``kind="edm"``) or CM-boundary (``"cm"``) preconditioning, sCM's
    TrigFlow function (``"trig"``) or MeanFlow's average velocity (``"meanflow"``, a network with two conditions)."""
    if kind == "trig":
        return TrigFlowModel(build_network(net_cfg, dim), noise)
    if kind == "meanflow":
        return MeanFlowModel(build_network({**net_cfg, "cond2": True}, dim), noise)
    return Preconditioned(build_network(net_cfg, dim), noise, kind)
