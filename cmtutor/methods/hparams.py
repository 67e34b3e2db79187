"""Typed method hyperparameters: each method declares a frozen dataclass of its ``--hp`` settings.

A run's config keeps them as a plain dict (JSON, checkpoints); the method reads them through its dataclass, so a
name is checked once: an unknown key, a value of the wrong type or one outside its allowed set is one clear error
(:class:`HparamError`, exit code 2 on the command line). Keys a stored config lacks (a checkpoint written before
the option existed) take the field's default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from cmtutor.errors import UserError


class HparamError(UserError, ValueError):
    """A hyperparameter that the method does not have, or a value it cannot take."""


H = TypeVar("H", bound="Hparams")


def _coerce(value: Any, kind: Any, where: str) -> Any:
    """``value`` as the annotated type ``kind`` (int → float, an integral float → int), or :class:`HparamError`."""
    origin = get_origin(kind)
    if origin in (Union, types.UnionType):
        options = get_args(kind)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _coerce(value, option, where)
            except HparamError as exc:
                errors.append(str(exc))
        raise HparamError(errors[0] if len(errors) == 1 else f"{where} = {value!r} fits none of its types")
    if origin is Literal:
        allowed = get_args(kind)
        if value not in allowed:
            raise HparamError(f"{where} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise HparamError(f"{where} must be true or false; got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
            raise HparamError(f"{where} must be a whole number; got {value!r}")
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise HparamError(f"{where} must be a number; got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise HparamError(f"{where} must be a string; got {value!r}")
        return value
    raise TypeError(f"unsupported hyperparameter type {kind!r} for {where}")  # a bug in a dataclass, not input


@dataclasses.dataclass(frozen=True)
class Hparams:
    """Base of every method's hyperparameters (no fields: the diffusion-free base method takes none)."""

    @classmethod
    def parse(cls: type[H], values: Mapping[str, Any], method: str = "") -> H:
        """The typed hyperparameters from a config's dict; unknown keys and bad values raise :class:`HparamError`."""
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise HparamError(f"unknown hyperparameter(s) for {method or cls.__name__}: {', '.join(unknown)}; "
                              f"known: {', '.join(names) or 'none'}")
        return cls(**{k: _coerce(v, hints[k], f"--hp {k}") for k, v in values.items()})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


__all__ = ["HparamError", "Hparams"]
