"""Why OT's two-step samples are worse than its one-step ones on the digits (issue 16's image benchmark).

Hypothesis: minibatch OT trains every level on noise *matched* to its data point (``z_π``, the nearest of the batch's
draws), while the second sampling step re-noises with *independent* noise. If the matched pairs differ from
independent ones, the OT model meets at τ inputs unlike those it trained on. The test: train OT and iCT (the same
method with the independent coupling) at the benchmark's budget and measure, on held-out digits x at the
re-noising level τ, the denoising error E‖f(x + τ·z, τ) − x‖²/D with z independent and with z re-ordered by OT
within batches of the training size::

    python -m cmtutor.benchmarks.ot_renoise --seeds 0 1

Writes ``cmtutor/benchmarks/results/ot_renoise.json`` (command, hardware, figures). The measured answer, no mismatch
(OT denoises independently re-noised digits as well as iCT), is in docs/defaults.md#the-bars-the-digits-benchmark-misses.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from cmtutor.benchmarks.common import machine, write_json
from cmtutor.benchmarks.image_quality import RESULTS_DIR, config
from cmtutor.data.images import ImageScaler, load_images
from cmtutor.methods.coupling import ot_permutation
from cmtutor.training import fit

RESULT = RESULTS_DIR / "ot_renoise.json"


@torch.no_grad()
def denoising_errors(model: torch.nn.Module, x: torch.Tensor, sigma: float, batch: int, seed: int) -> dict[str, float]:
    """E‖f(x + σz, σ) − x‖²/D for z independent and for z re-ordered by OT within batches of ``batch``."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(x.shape, generator=gen)
    matched = z.clone()
    for i in range(0, len(x), batch):
        matched[i:i + batch] = z[i:i + batch][ot_permutation(x[i:i + batch], z[i:i + batch])]
    s = torch.full((len(x),), sigma)
    out = {}
    for name, noise in (("independent", z), ("ot_matched", matched)):
        out[name] = float((model(x + sigma * noise, s) - x).flatten(1).pow(2).mean())
        out[f"{name}_noise_to_data"] = float((noise - x).flatten(1).pow(2).mean())
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cmtutor.benchmarks.ot_renoise", description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", default=str(RESULT), help="the results file (default: the committed one)")
    args = p.parse_args(argv)
    data = load_images("digits")
    x = ImageScaler().encode(torch.from_numpy(data.heldout.transpose(0, 3, 1, 2).copy()))
    rows: dict[str, Any] = {}
    t0 = time.time()
    for seed in args.seeds:
        for method in ("ot", "ict"):
            run = fit(config(method, "digits", args.steps, args.batch_size, seed))
            model = run.nets.ema.module.eval()  # the sampling EMA, as the benchmark samples it
            tau = float(run.cfg.two_step_sigma)
            row = {"tau": tau, **denoising_errors(model, x, tau, args.batch_size, seed)}
            row["sigma_max"] = denoising_errors(model, x, float(run.cfg.noise["sigma_max"]), args.batch_size, seed)
            rows.setdefault(str(seed), {})[method] = row
            print(f"seed {seed} {method}: at τ = {tau}: error with independent noise {row['independent']:.4f}, "
                  f"with OT-matched noise {row['ot_matched']:.4f}", flush=True)
    write_json(Path(args.out), {"command": "python -m cmtutor.benchmarks.ot_renoise " + " ".join(sys.argv[1:] if argv is None
                                                                                       else argv),
                        "machine": machine(), "seconds": round(time.time() - t0, 1), "budget":
                            {"steps": args.steps, "batch_size": args.batch_size, "data": "digits (held-out, 359)"},
                        "seeds": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
