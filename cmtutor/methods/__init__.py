"""The training methods, by command-line name. See each module for the paper and equations."""

from __future__ import annotations

from cmtutor.errors import UserError
from cmtutor.methods.base import Method, Nets, consistency_step
from cmtutor.methods.cd import ConsistencyDistillation
from cmtutor.methods.coupling import GeneratorCoupling, OTCoupling
from cmtutor.methods.ct import ConsistencyTraining, ConsistencyTrainingCT
from cmtutor.methods.diffusion import Diffusion
from cmtutor.methods.direct import DirectCM
from cmtutor.methods.tcm import TruncatedCM

METHODS: dict[str, type[Method]] = {
    m.name: m for m in (Diffusion, ConsistencyDistillation, ConsistencyTrainingCT, ConsistencyTraining,
                        GeneratorCoupling, OTCoupling, TruncatedCM, DirectCM)
}


def get_method(name: str) -> type[Method]:
    """The method class for a command-line name; :class:`UserError` for an unknown one."""
    if name not in METHODS:
        raise UserError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
    return METHODS[name]


__all__ = ["METHODS", "Method", "Nets", "consistency_step", "get_method"]
