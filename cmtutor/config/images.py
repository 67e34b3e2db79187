"""Default training settings on images: what we ship, and what the papers used on CIFAR-10.

:func:`image_config_defaults` is what ``cmtutor.config.default_config`` uses for image data (so
``python -m cmtutor train --method ict --data cifar10`` runs the shipped configuration). The paper
settings are kept beside them in ``cmtutor.config.papers``, so notebook 08 can show both and say where
and why they differ.

Differences that hold for every method, and why:

* **Distance.** CD and CT used LPIPS on CIFAR-10; LPIPS needs ImageNet-trained weights that cmtutor
  does not download (and the iCT paper argues it leaks ImageNet features into FID). We use iCT's
  pseudo-Huber distance (c = 0.00054·√D) for CD and CT as well.
* **Batch.** 512 for every method (iCT and TCM stage 2 used 1024) so that one GPU can run it; global
  batch under ``torchrun``.
* **Gradient clipping** at norm 1 (the papers do not clip): a guard for long unattended runs; set
  ``--set grad_clip=0`` to match the papers.
* **Warm-up** of 1,000 steps, then a constant learning rate (the CM code warms up over 10M images).
* **Precision**: bf16 autocast and channels-last on a GPU (``precision="auto"``); the papers used
  fp32 (CM, iCT) or fp16 (EDM2-based TCM on ImageNet).
"""

from __future__ import annotations

from typing import Any

from cmtutor.core.noise import IMAGE_NOISE

#: Settings every method shares on images.
IMAGE_COMMON: dict[str, Any] = {
    "data_kind": "image",
    "batch_size": 512,
    "optimizer": "radam",
    "lr": 1e-4,
    "lr_decay": "constant",
    "warmup_steps": 1000,
    "ema_decay": 0.9999,
    # the sampling EMA ramps up to ema_decay, so a 3000-step CPU run samples recent weights, not its first ones
    # (docs/defaults.md#sampling-ema-warm-up)
    "ema_warmup": "power",
    "grad_clip": 1.0,
    "checkpoint_every": 5000,
    "log_every": 100,
    "sample_every": 5000,
    "precision": "auto",
    "channels_last": True,
    "xflip": True,
    # the intermediate level of 2-step sampling: ECT/TCM's t_mid = 0.821 (methods.md, section 0)
    "two_step_sigma": 0.821,
}

#: Per-method settings on images (merged over IMAGE_COMMON). Methods not listed use IMAGE_COMMON.
IMAGE_METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "diffusion": {"optimizer": "adam", "lr": 1e-3, "net": {"dropout": 0.13}},
    # squared L2: with pseudo-Huber (λ = 1, no paper's pairing) CD lagged its teacher 3× (docs/defaults.md#cd-on-images)
    "cd": {"lr": 4e-4, "net": {"dropout": 0.0}, "hp": {"distance": "l2"}},
    # θ⁻'s time constant as the same share of the run as in the paper's 800k steps (docs/defaults.md#ct-on-images)
    "ct": {"lr": 4e-4, "net": {"dropout": 0.0}, "hp": {"distance": "pseudo_huber", "target_horizon": 800_000}},
    "ict": {"lr": 1e-4, "ema_decay": 0.99993, "net": {"dropout": 0.3}},
    "gc": {"lr": 1e-4, "net": {"dropout": 0.0}},
    # OT's second sampling step re-noises with its training's pairing (docs/defaults.md#ot-on-images)
    "ot": {"lr": 1e-4, "renoise": "ot", "net": {"dropout": 0.3}},
    # stage 2 at half stage 1's learning rate, as Lee et al. (docs/defaults.md#tcm-on-images)
    "tcm": {"lr": 5e-5, "net": {"dropout": 0.2}},
    "direct": {"lr": 4e-4, "net": {"dropout": 0.0}},
    # sCT's CIFAR-10 proposal and stabilisers are SCMHparams' defaults; its two-step time t = 1.1 (σ = σ_d·tan 1.1)
    "scm": {"lr": 1e-4, "two_step_sigma": 0.982, "net": {"dropout": 0.2}},
    # MeanFlow's CIFAR-10 setting (Geng et al. 2025, App.): lognorm(−2, 2), 75 % of pairs with r ≠ t, p = 0.75
    "meanflow": {"lr": 1e-4, "net": {"dropout": 0.2},
                 "hp": {"p_mean": -2.0, "p_std": 2.0, "ratio": 0.75, "power": 0.75}},
}

#: Settings for small images (the 8×8 digits on a CPU): a small U-Net, no flips (digits are not symmetric).
SMALL_IMAGE_OVERRIDES: dict[str, Any] = {
    "batch_size": 128, "optimizer": "adam", "lr": 2e-3, "warmup_steps": 100, "ema_decay": 0.999,
    "checkpoint_every": 1000, "log_every": 50, "sample_every": 0, "xflip": False,
}

#: CD's learning rate over its teacher's on CIFAR-10: 4e-4 (Song et al. 2023) over EDM's 1e-3
CD_TEACHER_LR_RATIO = IMAGE_METHOD_DEFAULTS["cd"]["lr"] / IMAGE_METHOD_DEFAULTS["diffusion"]["lr"]

#: Per-method changes to SMALL_IMAGE_OVERRIDES (``hp`` merged key by key): TCM's stage 2 keeps half of stage 1's
#: learning rate; CD keeps the CIFAR-10 share of its teacher's rate
#: (docs/defaults.md#cd-at-its-share-of-the-teachers-rate) and weighs its pairs by iCT's 1/Δσ, measured against the
#: papers' uniform weight (docs/defaults.md#cds-weighting-on-the-small-images); sCM and MeanFlow keep the learning
#: rates that were stable on 2D (docs/defaults.md#scm-and-meanflow-on-2d: sCM at 1e-3 was not), not measured on the
#: digits.
SMALL_IMAGE_METHOD_OVERRIDES: dict[str, dict[str, Any]] = {
    "tcm": {"lr": SMALL_IMAGE_OVERRIDES["lr"] / 2},
    "cd": {"lr": SMALL_IMAGE_OVERRIDES["lr"] * CD_TEACHER_LR_RATIO, "hp": {"weighting": "inv_delta"}},
    "scm": {"lr": 3e-4}, "meanflow": {"lr": 1e-3}}

#: Per-set changes for one small-image source, merged last (``hp`` key by key). The photos teacher draws its
#: noise levels with EDM2's P_mean = -0.4 (Karras et al. 2024), not EDM's -1.2: at 5000 steps its high levels,
#: which decide the mix of regions, were undertrained and its FD swung up to 4x between checkpoints
#: (docs/defaults.md#the-photos-teacher-trains-its-high-noise-levels-more). Neutral on the digits, so not set there.
SMALL_IMAGE_SOURCE_OVERRIDES: dict[str, dict[str, dict[str, Any]]] = {
    "photos": {"diffusion": {"hp": {"p_mean": -0.4}}},
}


def is_small_image_source(name: str) -> bool:
    return name in ("digits", "photos")


def _merge(out: dict[str, Any], changes: dict[str, Any]) -> None:
    """Apply a layer of overrides to ``out``: fields replaced, ``hp`` merged key by key."""
    out.update({k: v for k, v in changes.items() if k != "hp"})
    out["hp"].update(changes.get("hp", {}))


def image_config_defaults(method: str, data: str) -> dict[str, Any]:
    """The shipped TrainConfig fields for ``method`` on image data ``data`` (``net`` and ``hp`` partial)."""
    spec = IMAGE_METHOD_DEFAULTS.get(method, {})
    out: dict[str, Any] = {**IMAGE_COMMON, "noise": IMAGE_NOISE.to_dict()}
    out.update({k: v for k, v in spec.items() if k not in ("net", "hp")})
    net: dict[str, Any] = {"kind": "unet", "preset": "auto", **spec.get("net", {})}
    out["hp"] = dict(spec.get("hp", {}))
    if is_small_image_source(data):
        out.update(SMALL_IMAGE_OVERRIDES)
        _merge(out, SMALL_IMAGE_METHOD_OVERRIDES.get(method, {}))
        net = {"kind": "unet", "preset": "auto"}  # the small preset's own dropout (0)
    out["net"] = net
    _merge(out, SMALL_IMAGE_SOURCE_OVERRIDES.get(data, {}).get(method, {}))
    return out
