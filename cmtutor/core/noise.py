"""The noise levels of the VE process x_σ = x + σ·z: one object, used end to end.

:class:`NoiseConfig` is stored in every run's config (``TrainConfig.noise``) and passed as one object to the
preconditioning, the schedules and the samplers. The two settings the course uses are defined here once:
the papers' image values, and the smaller σ_max of standardised 2D data (docs/defaults.md#2d-noise-levels).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class NoiseConfig:
    """Noise levels of the VE process x_σ = x + σ·z (Karras et al. 2022 notation).

    The papers' image values are σ_min = 0.002, σ_max = 80, σ_d = 0.5 for data in [-1, 1]. cmtutor
    standardises vector data to unit scale (σ_d = 1) and uses a much smaller σ_max there
    (:data:`VECTOR_NOISE`).
    """

    sigma_min: float = 0.002
    sigma_max: float = 80.0
    sigma_data: float = 0.5
    rho: float = 7.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NoiseConfig:
        return cls(**{k: float(v) for k, v in d.items()})


#: Standardised vector data (unit scale): σ_d = 1 and σ_max = 10 (docs/defaults.md#2d-noise-levels).
VECTOR_NOISE = NoiseConfig(sigma_min=0.002, sigma_max=10.0, sigma_data=1.0, rho=7.0)
#: Images in [-1, 1]: the papers' values (Karras et al. 2022; Song et al. 2023).
IMAGE_NOISE = NoiseConfig(sigma_min=0.002, sigma_max=80.0, sigma_data=0.5, rho=7.0)
