"""Run under ``torchrun --nproc_per_node=2`` by tests/hardware/test_distributed.py (Gloo, CPU).

Trains a tiny U-Net with DDP through the command line three times in one job: 4 steps straight,
then 2 steps (``--stop-at 2``) and a ``--resume`` to 4; checks that sampling from a DDP-wrapped
model gives the same images as from the plain model; prints "ddp-worker ok" on rank 0.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from cmtutor.cli import main
from cmtutor.hardware import distributed


def run(out: str) -> None:
    tiny = ["--method", "ict", "--data", "digits", "--steps", "4", "--batch-size", "16", "--set",
            'net={"preset":"tiny"}', "--checkpoint-every", "2", "--quiet", "--device", "cpu"]
    assert main(["train", *tiny, "--out", f"{out}/full"]) == 0
    assert main(["train", *tiny, "--out", f"{out}/cut", "--stop-at", "2"]) == 0
    assert main(["train", "--method", "ict", "--data", "digits", "--out", f"{out}/cut", "--resume", "--quiet",
                 "--device", "cpu"]) == 0
    env = distributed.env()
    assert env.world_size == 2 and env.backend == "gloo"

    # sampling works on a DDP-wrapped model (the Sampler uses the module inside)
    from cmtutor.checkpoint import load_checkpoint
    from cmtutor.hardware.accel import wrap_for_training
    from cmtutor.training import resume_run

    r = resume_run(load_checkpoint(f"{out}/full/checkpoint.pt"))
    plain = r.sampler("raw").sample_images(6, steps=2, seed=3)
    r.nets.model = wrap_for_training(r.nets.model, r.device, compile_model=False)
    assert isinstance(r.nets.model, torch.nn.parallel.DistributedDataParallel)
    wrapped = r.sampler("raw").sample_images(6, steps=2, seed=3)
    assert np.array_equal(plain, wrapped)
    distributed.barrier()
    if env.is_main:
        print("ddp-worker ok", flush=True)


if __name__ == "__main__":
    run(sys.argv[1])
