"""The GPU path of the training loop: bf16 autocast, channels-last, ``torch.compile``, DDP, throughput.

All of it is switched by the run's config (``precision``, ``channels_last``, ``compile``) and by
``torchrun`` (DDP), and every switch also works on a CPU, where the tests exercise it:

* **bf16 autocast** (``precision="bf16"``, or ``"auto"`` on CUDA): matrix products and convolutions in
  bfloat16, the preconditioning, losses and optimiser in float32. No loss scaling is needed for bf16.
* **channels-last** memory format for the U-Net's convolutions (faster tensor-core kernels).
* **torch.compile** of the preconditioned model (both the online and the no-grad target passes).
  Caveat: under compilation, dropout draws its masks inside the compiled graph, so the online and
  target passes of a consistency step are not guaranteed to share the same dropout mask (the eager
  path restores the RNG state so they do). With dropout 0 (CD, CT, GC) it makes no difference.
* **DistributedDataParallel** when launched by ``torchrun`` (see :mod:`cmtutor.hardware.distributed`).
"""

from __future__ import annotations

import contextlib
import inspect
import platform
import resource
import sys
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from cmtutor.errors import UserError
from cmtutor.hardware import distributed


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA if available, else CPU; :class:`UserError` for CUDA on a machine without a GPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was requested but no CUDA GPU is available; use --device cpu or auto")
    return torch.device(name)


def effective_precision(precision: str, device: torch.device) -> str:
    """``"bf16"`` or ``"fp32"``: ``"auto"`` means bf16 on CUDA and fp32 on a CPU."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision not in ("bf16", "fp32"):
        raise UserError(f"unknown precision {precision!r}; expected 'fp32', 'bf16' or 'auto'")
    return precision


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """bf16 autocast on ``device`` when ``precision`` resolves to bf16; nothing otherwise."""
    if effective_precision(precision, device) == "bf16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside ``torch.compile`` and DDP wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod  # type: ignore[assignment]
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def wrap_for_training(model: nn.Module, device: torch.device, compile_model: bool) -> nn.Module:
    """DDP-wrap (under ``torchrun``) and compile ``model``; the parameters stay the same objects."""
    env = distributed.env()
    if env.distributed:
        ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None

        sync_off = ({"forward_sync_buffers": False} if "forward_sync_buffers" in
                    inspect.signature(nn.parallel.DistributedDataParallel).parameters else {"broadcast_buffers": False})
        model = nn.parallel.DistributedDataParallel(model, device_ids=ids, **sync_off)
    if compile_model:
        model = torch.compile(model)  # type: ignore[assignment]
    return model


def peak_memory_mb(device: torch.device) -> tuple[str, float]:
    """(name, MiB): CUDA's peak allocated memory on a GPU, the process's peak resident memory on a CPU."""
    if device.type == "cuda":
        return "peak_gpu_mem_mb", torch.cuda.max_memory_allocated(device) / 2**20
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return "peak_rss_mb", rss_kb / (2**20 if sys.platform == "darwin" else 2**10)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Throughput:
    """Images per second between calls to :meth:`lap` (global: all ranks' images)."""

    def __init__(self, device: torch.device, images_per_step: int) -> None:
        self.device = device
        self.images_per_step = images_per_step
        self.t = time.perf_counter()
        self.steps = 0

    def tick(self) -> None:
        self.steps += 1

    def lap(self) -> dict[str, float]:
        sync(self.device)
        now = time.perf_counter()
        dt, n = now - self.t, self.steps
        self.t, self.steps = now, 0
        name, mem = peak_memory_mb(self.device)
        out: dict[str, float] = {name: round(mem, 1)}
        if n and dt > 0:
            out["images_per_s"] = round(n * self.images_per_step / dt, 1)
        return out


def mfu(flops_per_image: float, images_per_s: float, peak_tflops: float) -> float:
    """Model FLOPs utilisation: achieved model FLOP/s ÷ the hardware's peak FLOP/s (peak in TFLOP/s).

    ``flops_per_image`` counts the model's own work for one training image (every forward and backward
    pass the method makes), not recomputation or elementwise overheads (Chowdhery et al. 2022, App. B).
    """
    return flops_per_image * images_per_s / (peak_tflops * 1e12)


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what :mod:`platform` knows (e.g. ``x86_64``)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> str:
    """A short description of the device(s) this process runs on (for protocols and reports)."""
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        return f"{n}× {torch.cuda.get_device_name(0)}"
    return f"CPU ({cpu_name()}, {torch.get_num_threads()} threads)"


def describe_run(cfg: Any, device: torch.device) -> dict[str, Any]:
    """The performance settings in effect (printed at the start of a run)."""
    env = distributed.env()
    return {"device": str(device), "hardware": hardware(), "precision": effective_precision(cfg.precision, device),
            "channels_last": bool(cfg.channels_last), "compile": bool(cfg.compile),
            "processes": env.world_size, "backend": env.backend or "none"}
