"""The default configuration of a method on a data source: :func:`default_config`.

Vector data get ``cmtutor.config.vectors``; image data ``cmtutor.config.images``; each method adds its
hyperparameters (``Method.default_hparams``). Why each default is what it is: docs/defaults.md.
"""

from __future__ import annotations

from typing import Any

from cmtutor.config.images import image_config_defaults
from cmtutor.config.run import TrainConfig
from cmtutor.config.vectors import VECTOR_METHOD_DEFAULTS, VECTOR_NET
from cmtutor.data.images import is_image_source
from cmtutor.data.vectors import is_vector_source
from cmtutor.methods import get_method


def default_config(method: str, data: str, **overrides: Any) -> TrainConfig:
    """The default configuration of ``method`` on data ``data``, with keyword overrides.

    Image data (see ``cmtutor.data.images``) get the image defaults of ``cmtutor.config.images``.
    ``hp`` and ``net`` overrides are merged into the defaults rather than replacing them.
    """
    cls = get_method(method)
    image = not is_vector_source(data) and is_image_source(data)
    if image:
        base: dict[str, Any] = {"method": method, "data": data, **image_config_defaults(method, data)}
    else:
        base = {"method": method, "data": data, **VECTOR_METHOD_DEFAULTS.get(method, {})}
    defaults = {**cls.default_hparams("image" if image else "vector"), **base.pop("hp", {})}
    hp = {**defaults, **overrides.pop("hp", {})}
    cls.hparams_type.parse(hp, method)  # an unknown key or a bad value: one clear error, before anything runs
    if image:
        net = {**base.pop("net"), **overrides.pop("net", {})}
        return TrainConfig(**{**base, **overrides, "hp": hp, "net": net})
    net = {**VECTOR_NET, **base.pop("net", {}), **overrides.pop("net", {})}
    return TrainConfig(**{**base, **overrides, "hp": hp, "net": net})
