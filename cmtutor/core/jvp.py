"""Jacobian-vector products for continuous-time consistency models (sCM) and MeanFlow.

Both need the total derivative of a network along the probability-flow ODE, d/dt F(x_t, t) = ∂_x F · dx/dt + ∂_t F,
which is one Jacobian-vector product (JVP) with the tangent (dx/dt, 1) (Lu & Song 2024, Eq. 8; Geng et al. 2025,
Eq. 8). :func:`jvp` computes it two ways:

* ``"exact"``: forward-mode automatic differentiation, ``torch.func.jvp``. PyTorch's flash and memory-efficient
  attention kernels have no forward-mode rule, so the call runs under ``sdpa_kernel(SDPBackend.MATH)``: attention
  falls back to its composite (matmul, softmax) form, which has one. Every network of cmtutor goes through it.
* ``"fd"``: a central finite difference (F(p + h·v) − F(p − h·v)) / 2h, two forward passes, O(h²) error; the
  fallback for a module forward mode cannot trace, and the independent check of the exact one in the tests.

``"auto"`` tries the exact JVP and falls back to the finite difference when forward mode is not implemented for
an operation (and says so once).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

JvpMode = Literal["exact", "fd", "auto"]

_warned: set[str] = set()


def exact_jvp(fn: Callable[..., Tensor], primals: Sequence[Tensor], tangents: Sequence[Tensor]
              ) -> tuple[Tensor, Tensor]:
    """(fn(*primals), J·tangents) by forward-mode AD, attention on its composite (JVP-capable) kernel."""
    with sdpa_kernel([SDPBackend.MATH]), warnings.catch_warnings():
        # torch's own forward-AD decompositions still call torch.jit.script on first use: not the user's concern
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated", category=FutureWarning)
        out, tangent = torch.func.jvp(fn, tuple(primals), tuple(tangents))
    return out, tangent


def fd_jvp(fn: Callable[..., Tensor], primals: Sequence[Tensor], tangents: Sequence[Tensor],
           step: float | None = None) -> tuple[Tensor, Tensor]:
    """(fn(*primals), J·tangents) by a central difference with step h = ``step``·(1 + max|primal|).

    The default step is the cube root of the primals' machine ε (5e-3 in float32, 6e-6 in float64), which
    balances the O(h²) truncation error against the O(ε/h) rounding error of a central difference.
    """
    if step is None:
        step = torch.finfo(primals[0].dtype).eps ** (1 / 3)
    scale = 1.0 + max(float(p.detach().abs().max()) for p in primals)
    h = step * scale
    plus = fn(*(p + h * t for p, t in zip(primals, tangents)))
    minus = fn(*(p - h * t for p, t in zip(primals, tangents)))
    return fn(*primals), (plus - minus) / (2 * h)


def jvp(fn: Callable[..., Tensor], primals: Sequence[Tensor], tangents: Sequence[Tensor],
        mode: JvpMode = "auto") -> tuple[Tensor, Tensor]:
    """(fn(*primals), the directional derivative of fn at ``primals`` along ``tangents``); see the module doc."""
    if len(primals) != len(tangents):
        raise ValueError(f"{len(primals)} primals but {len(tangents)} tangents")
    for p, t in zip(primals, tangents):
        if p.shape != t.shape:
            raise ValueError(f"a tangent must have its primal's shape: {tuple(t.shape)} vs {tuple(p.shape)}")
    if mode == "fd":
        return fd_jvp(fn, primals, tangents)
    if mode == "exact":
        return exact_jvp(fn, primals, tangents)
    try:
        return exact_jvp(fn, primals, tangents)
    except (NotImplementedError, RuntimeError) as exc:
        if "forward" not in str(exc).lower() and "jvp" not in str(exc).lower():
            raise
        key = str(exc).splitlines()[0][:200]
        if key not in _warned:
            _warned.add(key)
            warnings.warn(f"forward-mode JVP unavailable ({key}); using a finite difference", stacklevel=2)
        return fd_jvp(fn, primals, tangents)
