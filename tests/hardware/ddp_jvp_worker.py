"""Run under ``torchrun --nproc_per_node=2`` by tests/hardware/test_distributed.py (Gloo, CPU).

sCM and MeanFlow take their JVP on the plain module inside DistributedDataParallel, where a gradient computed
through it would skip DDP's all-reduce silently. For each method, on a tiny U-Net and different data per rank:
one loss through the DDP-wrapped model gives the same gradient on both ranks (and not the zero gradient), while
the same loss through the plain module does not; prints "ddp-jvp-worker ok" on rank 0.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from cmtutor.config import default_config
from cmtutor.hardware import distributed
from cmtutor.hardware.accel import wrap_for_training
from cmtutor.training.run import build_run


def gradients(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel())
                      for p in model.parameters()])


def agree_across_ranks(g: torch.Tensor) -> bool:
    other = [torch.zeros_like(g) for _ in range(dist.get_world_size())]
    dist.all_gather(other, g)
    return all(torch.allclose(other[0], o, rtol=1e-5, atol=1e-7) for o in other)


def check(method: str) -> None:
    cfg = default_config(method, "digits", steps=4, batch_size=16, device="cpu", net={"kind": "unet", "preset": "tiny"})
    run = build_run(cfg)  # the same initial weights on every rank, then a different stream per rank
    plain = run.nets.model
    x = run.train_x[torch.randint(0, len(run.train_x), (8,))].float() / 127.5 - 1
    for wrapped in (True, False):
        plain.zero_grad(set_to_none=True)
        model = wrap_for_training(plain, run.device, compile_model=False) if wrapped else plain
        run.nets.model = model
        torch.manual_seed(1234 + distributed.env().rank)
        loss, _ = run.method.loss(run.nets, x, step=100)
        loss.backward()
        g = gradients(plain)
        assert float(g.abs().max()) > 0, f"{method}: no gradient"
        same = agree_across_ranks(g)
        assert same == wrapped, f"{method}: gradients {'differ' if wrapped else 'agree'} across ranks " \
                                f"{'with' if wrapped else 'without'} DDP"


def main() -> None:
    distributed.init()
    env = distributed.env()
    assert env.world_size == 2 and env.backend == "gloo"
    for method in ("scm", "meanflow"):
        check(method)
    distributed.barrier()
    if env.is_main:
        print("ddp-jvp-worker ok", flush=True)
    distributed.shutdown()


if __name__ == "__main__":
    main()
