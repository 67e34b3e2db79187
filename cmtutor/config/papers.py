"""What the papers used on CIFAR-10 (the digest in the course's reference notes, sections 1-5 and 8), for
notebook 08's comparison with what cmtutor ships (``cmtutor.config.images``)."""

from __future__ import annotations

from typing import Any

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
    # the paper has no CIFAR-10 run: its only setting (an SDXL LoRA: AdamW 1e-4, batch 16, 250 steps, L2, no EMA)
    # is not a CIFAR-10 one, so no cell of this row pretends to be
    "direct": {"paper": "Direct CM (Vouitsis et al. 2024): no CIFAR-10 run (SDXL LoRA only)", "network": "–",
               "batch": "–", "steps": "–", "optimizer": "–", "distance": "–", "ema": "–", "fid": "–"},
    # beyond the seed papers (issue 18); cells the course has not checked against the paper say so
    "scm": {"paper": "sCT (Lu & Song 2024)", "network": "DDPM++-style U-Net (their modifications: App. G)",
            "batch": "see paper", "steps": "see paper", "optimizer": "see paper",
            "distance": "continuous-time (tangent, c = 0.1, adaptive w)", "ema": "see paper",
            "fid": "2.85 (1 step; FastGen reproduction: 3.23)"},
    "meanflow": {"paper": "MeanFlow (Geng et al. 2025)", "network": "U-Net", "batch": 1024, "steps": "800k",
                 "optimizer": "see paper", "distance": "adaptive L2, p = 0.75 (lognorm(−2, 2), 75 % r ≠ t)",
                 "ema": "see paper", "fid": "2.92 (1 step; FastGen reproduction: 2.82)"},
}
