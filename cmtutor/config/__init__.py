"""Run configurations: :class:`TrainConfig` and the per-method defaults (:func:`default_config`)."""

from cmtutor.config.defaults import default_config
from cmtutor.config.run import TrainConfig

__all__ = ["TrainConfig", "default_config"]
