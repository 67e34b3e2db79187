"""The run configuration: one JSON-serialisable dataclass, written to ``DIR/config.json`` and every checkpoint."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from cmtutor.core.ema import warmed_up_decay
from cmtutor.core.noise import VECTOR_NOISE, NoiseConfig
from cmtutor.errors import UserError

#: The sampling EMA's warm-ups (``TrainConfig.ema_warmup``).
EMA_WARMUPS = ("none", "power")
#: How multistep consistency sampling pairs its fresh noise with the samples (``TrainConfig.renoise``).
RENOISES = ("independent", "ot")
#: The learning rate after the warm-up (``TrainConfig.lr_decay``; cmtutor.training.run.lr_lambda)
LR_DECAYS = ("constant", "cosine")


@dataclass
class TrainConfig:
    """Everything that defines a training run (written to ``DIR/config.json`` and every checkpoint)."""

    method: str
    data: str
    steps: int = 20_000
    batch_size: int = 512
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 2_000
    log_every: int = 100
    eval_every: int = 0
    ema_decay: float = 0.999
    #: the sampling EMA's warm-up: "none" (``ema_decay`` from step 1) or "power" (1 − (1 + k)^(−2/3), capped at
    #: ``ema_decay``; cmtutor.core.ema.warmed_up_decay). Images use "power" (docs/defaults.md#sampling-ema-warm-up)
    ema_warmup: str = "none"
    #: further sampling EMAs kept beside ``ema_decay`` (e.g. ``[0.9, 0.999]``), to compare decays in one run
    extra_ema_decays: list[float] = field(default_factory=list)
    warmup_steps: int = 200
    lr_decay: str = "cosine"
    grad_clip: float = 1.0
    optimizer: str = "adam"
    teacher: str | None = None
    data_kind: str = "vector"
    noise: dict[str, float] = field(default_factory=VECTOR_NOISE.to_dict)
    net: dict[str, Any] = field(default_factory=dict)
    hp: dict[str, Any] = field(default_factory=dict)
    two_step_sigma: float = 1.0
    #: multistep consistency sampling re-noises with "independent" fresh noise (Song et al. 2023, Algorithm 1) or
    #: with fresh noise assigned to the samples by minibatch OT in chunks of ``batch_size`` ("ot"): the pairing
    #: the OT coupling trains on. OT's default (docs/defaults.md#ot-on-2d, #ot-on-images)
    renoise: str = "independent"
    # --- images and the GPU path (cmtutor.hardware.accel); the defaults leave vector runs unchanged ---
    #: "fp32", "bf16" (autocast), or "auto" (bf16 on CUDA, fp32 on a CPU)
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    #: random horizontal flips of training images
    xflip: bool = False
    #: write a grid of EMA samples every N steps (0: never)
    sample_every: int = 0

    def __post_init__(self) -> None:
        if self.ema_warmup not in EMA_WARMUPS:
            raise UserError(f"ema_warmup must be one of {', '.join(EMA_WARMUPS)}; got {self.ema_warmup!r}")
        if self.renoise not in RENOISES:
            raise UserError(f"renoise must be one of {', '.join(RENOISES)}; got {self.renoise!r}")
        if self.lr_decay not in LR_DECAYS:  # anything else used to train at a constant rate silently
            raise UserError(f"lr_decay must be one of {', '.join(LR_DECAYS)}; got {self.lr_decay!r}")

    def sampling_decay(self, decay: float, step: int) -> float:
        """The decay of a sampling EMA (cap ``decay``) for the update after ``step`` steps, with this run's warm-up."""
        return warmed_up_decay(decay, step) if self.ema_warmup == "power" else decay

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if not d["extra_ema_decays"]:  # so runs without extra EMAs keep their config (and cache key) as before
            del d["extra_ema_decays"]
        if d["ema_warmup"] == "none":  # likewise for runs without a warm-up (every 2D default)
            del d["ema_warmup"]
        if d["renoise"] == "independent":  # likewise for Algorithm 1's re-noising (every method but OT)
            del d["renoise"]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def noise_config(self) -> NoiseConfig:
        return NoiseConfig.from_dict(self.noise)
