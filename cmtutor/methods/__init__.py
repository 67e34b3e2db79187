"""The training methods, by command-line name. See each module for the paper and equations; every
consistency method is a :class:`~cmtutor.methods.base.ConsistencyMethod` that overrides only the hooks its
paper changes (the pair of times, the endpoint, the target, the weighting)."""

from __future__ import annotations

from cmtutor.errors import UserError
from cmtutor.methods.base import ConsistencyMethod, Draw, Method, Nets, consistency_step
from cmtutor.methods.cd import ConsistencyDistillation
from cmtutor.methods.coupling import GeneratorInducedCoupling, MinibatchOTCoupling
from cmtutor.methods.ct import ConsistencyTraining, ImprovedConsistencyTraining
from cmtutor.methods.diffusion import Diffusion
from cmtutor.methods.direct import DirectConsistencyModel
from cmtutor.methods.meanflow import MeanFlow
from cmtutor.methods.scm import ContinuousConsistencyModel
from cmtutor.methods.tcm import TruncatedConsistencyModel

METHODS: dict[str, type[Method]] = {
    m.name: m for m in (Diffusion, ConsistencyDistillation, ConsistencyTraining, ImprovedConsistencyTraining,
                        GeneratorInducedCoupling, MinibatchOTCoupling, TruncatedConsistencyModel,
                        DirectConsistencyModel, ContinuousConsistencyModel, MeanFlow)
}


def get_method(name: str) -> type[Method]:
    """The method class for a command-line name; :class:`UserError` for an unknown one."""
    if name not in METHODS:
        raise UserError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
    return METHODS[name]


__all__ = ["METHODS", "ConsistencyMethod", "Draw", "Method", "Nets", "consistency_step", "get_method"]
