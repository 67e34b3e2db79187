"""Settings of the image notebooks (07: digits on a CPU, 08: CIFAR-10) and the digits benchmark.

Every method trains on the 8×8 digits with the small U-Net through the same code path as the command
line; models are trained once and cached (:func:`cmtutor.course.cache.load_or_train`). Methods that learn from
another model (``requires_teacher`` / ``teacher_methods`` of the method class) get it trained first, so
methods added to ``cmtutor.methods.METHODS`` are picked up without changes here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cmtutor.config import TrainConfig, default_config
from cmtutor.config.papers import PAPER_CIFAR10
from cmtutor.course.cache import load_or_train
from cmtutor.course.toy2d import scale
from cmtutor.data import cifar10
from cmtutor.data.images import digits_uint8
from cmtutor.data.root import data_root, relative_to_root
from cmtutor.errors import DataError
from cmtutor.evaluation.digits_fd import fd_digits
from cmtutor.methods import METHODS
from cmtutor.training import Run

#: Where the benchmarks store their results (the image benchmark: ``cmtutor.benchmarks.image_quality``).
RESULTS_DIR = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def digits_config(method: str, steps: int, batch_size: int = 64, **overrides: Any) -> TrainConfig:
    """The digits configuration of ``method``: small U-Net, image noise (σ_max 80, σ_d 0.5), CPU unless a GPU."""
    kw: dict[str, Any] = {"batch_size": batch_size, "log_every": max(1, steps // 20), "checkpoint_every": 10**9,
                          "device": "cuda" if scale(0, 1) else "cpu"}
    kw.update(overrides)
    return default_config(method, "digits", steps=steps, **kw)


def live_steps() -> dict[str, int]:
    """Steps per method for notebook 07's live training: about 30 CPU seconds in all; more on a GPU.

    The CPU budget is shared by however many methods ``METHODS`` holds, so adding methods keeps the
    notebook's runtime about the same (each then trains less).
    """
    return {"default": scale(max(30, 240 // len(METHODS)), 4000), "diffusion": scale(150, 4000)}


def live_batch() -> int:
    """Batch size of notebook 07's live training (32 on a CPU, 128 with a GPU)."""
    return scale(32, 128)


def teacher_of(method: str) -> str | None:
    """The method whose model ``method`` learns from (the first of its ``teacher_methods`` that exists); None for
    a method that trains from data alone (sCM takes a teacher only for its optional distillation, sCD)."""
    cls = METHODS[method]
    if not cls.teacher_methods or not cls.requires_teacher:
        return None
    name = next((m for m in cls.teacher_methods if m in METHODS), None)
    if name is None:
        raise ValueError(f"{method} needs a teacher from {cls.teacher_methods}, none of which is available")
    return name


def train_digits(methods: list[str], steps: dict[str, int] | int, batch_size: int = 64, progress: bool = False,
                 prefix: str = "digits") -> dict[str, Run]:
    """Train (or load from the cache) every method in ``methods`` on the digits, teachers first.

    ``steps`` is one count for all, or per method (missing methods use the ``"default"`` entry).
    """
    def n_steps(m: str) -> int:
        return steps if isinstance(steps, int) else int(steps.get(m, steps["default"]))

    runs: dict[str, Run] = {}

    def get(m: str) -> Run:
        if m not in runs:
            t = teacher_of(m)
            teacher = get(t) if t is not None else None
            cfg = digits_config(m, n_steps(m), batch_size)
            runs[m] = load_or_train(cfg, f"{prefix}-{m}", teacher=teacher, progress=progress)
        return runs[m]

    for m in methods:
        get(m)
    return {m: runs[m] for m in methods}


def sample_steps(run: Run) -> tuple[int, int]:
    """(few-step, its comparison): CMs compare 1 and 2 steps; diffusion uses its ODE (18 and 40 Heun steps)."""
    return (18, 40) if run.method.ode_sampling else (1, 2)


def digits_quality(run: Run, n: int = 359, seed: int = 0) -> dict[str, Any]:
    """FD-digits of the run's EMA samples at its two sampling budgets (see :func:`sample_steps`)."""
    out: dict[str, Any] = {}
    for k in sample_steps(run):
        images = run.sampler().sample_images(n, steps=k, seed=seed)
        out[f"fd_{k}step"] = fd_digits(images)
    return out


# --- notebook 08: CIFAR-10 -------------------------------------------------------------------------

STANDIN_NOTE = ("NOT CIFAR-10: a stand-in written by notebook 08 in the CIFAR-10 python format (scikit-learn's "
                "8x8 digits, enlarged to 32x32 and tinted), so the notebook runs without the real data")


def standin_images(n_train: int = 500, n_test: int = 100, seed: int = 0) -> tuple[np.ndarray, np.ndarray,
                                                                                  np.ndarray, np.ndarray]:
    """Digits enlarged to 32×32 (nearest neighbour ×4) and tinted with a random colour: uint8 [N, 32, 32, 3]."""
    images, labels = digits_uint8()
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(images))[: n_train + n_test]
    big = images[idx].repeat(4, axis=1).repeat(4, axis=2).astype(np.float32) / 255.0  # [N, 32, 32, 1]
    tint = rng.uniform(0.3, 1.0, (len(idx), 1, 1, 3)).astype(np.float32)
    background = rng.uniform(0.0, 0.3, (len(idx), 1, 1, 3)).astype(np.float32)
    rgb = np.clip(255.0 * (background + (tint - background) * big), 0, 255).astype(np.uint8)
    return rgb[:n_train], labels[idx[:n_train]], rgb[n_train:], labels[idx[n_train:]]


def cifar10_source(allow_download: bool = True) -> tuple[str, str]:
    """(``--data`` value, what it is): real CIFAR-10 if present (or downloadable), else a stand-in written here.

    The stand-in lives in ``<data root>/cifar10-standin/`` and carries a manifest saying what it is;
    the returned message says plainly which of the two is used and, for the stand-in, how to get CIFAR-10.
    """
    try:
        cifar10.load_cifar10(allow_download=allow_download)
        return "cifar10", "using CIFAR-10 from <data root>/cifar10 (checksums verified)"
    except DataError as exc:
        folder = data_root() / "cifar10-standin"
        if not (folder / cifar10.FOLDER / cifar10.STANDIN_MANIFEST).exists():
            tr, ytr, te, yte = standin_images()
            cifar10.write_cifar10_format(folder, tr, ytr, te, yte, note=STANDIN_NOTE)
        msg = (f"{relative_to_root(str(exc))}.\n(<data root> is datasets/ in the repository, or $CMTUTOR_DATA if set.)\n"
               f"USING A STAND-IN: {STANDIN_NOTE}.")
        return str(folder), msg


def config_table(methods: list[str]) -> list[dict[str, Any]]:
    """Rows comparing the papers' CIFAR-10 settings with the ones ``cmtutor`` ships for ``--data cifar10``."""
    rows = []
    for m in methods:
        cfg = default_config(m, "cifar10")
        paper = PAPER_CIFAR10.get(m, {})
        rows.append({"method": m, "paper": paper.get("paper", "?"),
                     "paper batch/steps": f"{paper.get('batch', '?')} / {paper.get('steps', '?')}",
                     "paper distance": paper.get("distance", "?"),
                     "ours batch": cfg.batch_size, "ours lr": f"{cfg.optimizer} {cfg.lr:g}",
                     "ours distance": cfg.hp.get("distance", "denoising L2"),
                     "ours dropout": str(cfg.net.get("dropout", "preset")), "ours EMA": f"{cfg.ema_decay}" + (" (warm-up)" if cfg.ema_warmup != "none" else "")})
    return rows
