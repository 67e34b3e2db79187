"""Per-method defaults on vector (2D) data, chosen by measurement for about 3 minutes of training on 2 CPU
cores. Why each value is what it is, with its table: docs/defaults.md."""

from __future__ import annotations

from typing import Any

from cmtutor.config.run import TrainConfig

#: The MLP every 2D run uses unless its method overrides it (docs/defaults.md#2d-step-counts-and-batch-sizes).
VECTOR_NET: dict[str, Any] = {"kind": "mlp", "hidden": 256, "depth": 3, "emb_dim": 32, "max_freq": 16.0}

#: The papers' methods sample with an EMA of 0.995 on 2D (docs/defaults.md#2d-sampling-ema).
_PAPERS_RUN: dict[str, Any] = {"batch_size": 256, "ema_decay": 0.995}

#: Overrides of the TrainConfig defaults per method (docs/defaults.md#2d-step-counts-and-batch-sizes).
VECTOR_METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "diffusion": {"steps": 7000},
    "cd": {"steps": 5000, "ema_decay": 0.99},  # docs/defaults.md#cd-on-2d
    "ct": {"steps": 8000, "batch_size": 256},
    "ict": {"steps": 8000, "batch_size": 256},
    # squared L2 and μ annealed to 0, the official code's 2D setting (docs/defaults.md#gc-on-2d)
    "gc": {**_PAPERS_RUN, "steps": 6000, "net": {"hidden": 128}, "hp": {"distance": "l2", "mu_end": 0.0}},
    # re-noising with the OT pairing it trained on: docs/defaults.md#ot-on-2d
    "ot": {**_PAPERS_RUN, "steps": 12000, "net": {"hidden": 128}, "renoise": "ot"},
    # stage 2 fine-tunes at half the learning rate, as in Lee et al. (docs/defaults.md#tcm-and-direct-cm-on-2d)
    "tcm": {**_PAPERS_RUN, "steps": 2000, "lr": TrainConfig.lr / 2},
    "direct": {**_PAPERS_RUN, "steps": 1300},
    # iCT's budget; lr, warm-up and tangent_c (a near-unit tangent, iCT's pseudo-Huber's counterpart):
    # docs/defaults.md#scm-and-meanflow-on-2d
    "scm": {"steps": 8000, "batch_size": 256, "lr": 3e-4, "hp": {"tangent_warmup": 0.1, "tangent_c": 0.01}},
    # a wider time law, squared L2 and the finite-difference JVP (as good here, 1.8× faster on the CPU)
    "meanflow": {"steps": 8000, "batch_size": 256,
                 "hp": {"p_mean": 0.0, "p_std": 1.6, "ratio": 0.5, "power": 0.0, "jvp": "fd"}},
}
