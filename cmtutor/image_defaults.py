"""Default training settings on images: what we ship, and what the papers used on CIFAR-10.

:func:`image_config_defaults` is what ``cmtutor.config.default_config`` uses for image data (so
``python -m cmtutor train --method ict --data cifar10`` runs the shipped configuration). The paper
settings (:data:`PAPER_CIFAR10`) are kept beside them, from ``../shared/reference/methods.md``, so
notebook 08 can show both and say where and why they differ.

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

from cmtutor.config import IMAGE_NOISE

#: Settings every method shares on images.
IMAGE_COMMON: dict[str, Any] = {
    "data_kind": "image",
    "batch_size": 512,
    "optimizer": "radam",
    "lr": 1e-4,
    "lr_decay": "constant",
    "warmup_steps": 1000,
    "ema_decay": 0.9999,
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
    "cd": {"lr": 4e-4, "net": {"dropout": 0.0}},
    "ct": {"lr": 4e-4, "net": {"dropout": 0.0}, "hp": {"distance": "pseudo_huber"}},
    "ict": {"lr": 1e-4, "ema_decay": 0.99993, "net": {"dropout": 0.3}},
    "gc": {"lr": 1e-4, "net": {"dropout": 0.0}},
    "ot": {"lr": 1e-4, "net": {"dropout": 0.3}},
    "tcm": {"lr": 1e-4, "net": {"dropout": 0.2}},
    "direct": {"lr": 4e-4, "net": {"dropout": 0.0}},
}

#: Settings for small images (the 8×8 digits on a CPU): a small U-Net, no flips (digits are not symmetric).
SMALL_IMAGE_OVERRIDES: dict[str, Any] = {
    "batch_size": 128, "optimizer": "adam", "lr": 2e-3, "warmup_steps": 100, "ema_decay": 0.999,
    "checkpoint_every": 1000, "log_every": 50, "sample_every": 0, "xflip": False,
}

#: What the papers used on CIFAR-10 (methods.md, sections 1–5 and 8), for notebook 08's comparison.
PAPER_CIFAR10: dict[str, dict[str, Any]] = {
    "diffusion": {"paper": "EDM (Karras et al. 2022), DDPM++ config", "network": "DDPM++ 55.7M, dropout 0.13",
                  "batch": 512, "steps": "≈390k (200M images)", "optimizer": "Adam lr 1e-3",
                  "distance": "denoising L2", "ema": "half-life 0.5M images", "fid": "1.97 (35 NFE, cond.-free VP)"},
    "cd": {"paper": "CM (Song et al. 2023)", "network": "NCSN++ 56M, dropout 0", "batch": 512, "steps": "800k",
           "optimizer": "RAdam lr 4e-4", "distance": "LPIPS", "ema": "0.9999 (target μ = 0)",
           "fid": "3.55 / 2.93 (1 / 2 steps)"},
    "ct": {"paper": "CM (Song et al. 2023)", "network": "NCSN++ 56M, dropout 0", "batch": 512, "steps": "800k",
           "optimizer": "RAdam lr 4e-4", "distance": "LPIPS", "ema": "0.9999 (target μ(k))",
           "fid": "8.70 / 5.83"},
    "ict": {"paper": "iCT (Song & Dhariwal 2023)", "network": "NCSN++ 56.4M, dropout 0.3", "batch": 1024,
            "steps": "400k", "optimizer": "RAdam lr 1e-4", "distance": "pseudo-Huber", "ema": "0.99993",
            "fid": "2.83 / 2.46"},
    "gc": {"paper": "GC (Issenhuth et al. 2024)", "network": "SongUNet 128ch, dropout 0", "batch": 512,
           "steps": "100k", "optimizer": "Lion lr 1e-4", "distance": "pseudo-Huber", "ema": "0.9999",
           "fid": "5.95 (1 step, secondary source)"},
    "ot": {"paper": "iCT-OT baseline (GC paper)", "network": "as GC", "batch": 512, "steps": "100k",
           "optimizer": "Lion lr 1e-4", "distance": "pseudo-Huber", "ema": "0.9999", "fid": "6.75 (secondary)"},
    "tcm": {"paper": "TCM (Lee et al. 2024)", "network": "DDPM++ 55.7M, dropout 0.2",
            "batch": "512 (stage 1) / 1024 (stage 2)", "steps": "≈250k + 230k", "optimizer": "RAdam lr 1e-4 / 5e-5",
            "distance": "L2 (Huber c = 1e-8)", "ema": "0.9999", "fid": "2.46 / 2.05"},
    "direct": {"paper": "Direct CM (Vouitsis et al. 2024)", "network": "SDXL LoRA (no CIFAR-10 run)",
               "batch": 16, "steps": "250", "optimizer": "AdamW lr 1e-4", "distance": "L2",
               "ema": "none", "fid": "n/a on CIFAR-10"},
}


def is_small_image_source(name: str) -> bool:
    return name == "digits"


def image_config_defaults(method: str, data: str) -> dict[str, Any]:
    """The shipped TrainConfig fields for ``method`` on image data ``data`` (``net`` and ``hp`` partial)."""
    spec = IMAGE_METHOD_DEFAULTS.get(method, {})
    out: dict[str, Any] = {**IMAGE_COMMON, "noise": IMAGE_NOISE.to_dict()}
    out.update({k: v for k, v in spec.items() if k not in ("net", "hp")})
    net: dict[str, Any] = {"kind": "unet", "preset": "auto", **spec.get("net", {})}
    if is_small_image_source(data):
        out.update(SMALL_IMAGE_OVERRIDES)
        net = {"kind": "unet", "preset": "auto"}  # the small preset's own dropout (0)
    out["net"] = net
    out["hp"] = dict(spec.get("hp", {}))
    return out


def auto_preset(resolution: int) -> str:
    """The U-Net preset for ``preset="auto"``: the papers' network from 32×32 up, the small one below."""
    return "cifar10" if resolution >= 32 else "small"
