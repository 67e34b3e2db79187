"""Why OT's two-step samples were worse than its one-step ones on the digits (issue 16's image benchmark).

Minibatch OT trains every level on x + σ·z with z *assigned* to x within the batch (``z_π``, 15 % closer to the
data than independent draws), while Algorithm 1's second sampling step re-noises with *independent* noise. This
diagnostic trains OT and iCT (the same method with the independent coupling) at the benchmark's budget and
measures, at the re-noising level τ and on held-out digits x:

* the denoising error E‖f(x + τ·z, τ) − x‖²/D with z independent and OT-matched (in batches of the training size);
* the classifier FD (FD-digits) of the outputs f(x + τ·z, τ) against the held-out digits themselves: what the
  τ-step does to *real* images, with independent and with matched noise;
* two-step sampling from the same one-step samples with independent and with OT-matched re-noising
  (``TrainConfig.renoise``), and OT's τ-step applied to iCT's one-step samples (whose denoiser is at fault)::

    python -m cmtutor.benchmarks.ot_renoise --seeds 0 1 2

Writes ``cmtutor/benchmarks/results/ot_renoise.json`` (command, hardware, figures); the reading is in
docs/defaults.md#ot-on-images.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cmtutor.benchmarks.common import machine, write_json
from cmtutor.benchmarks.image_quality import RESULTS_DIR, config
from cmtutor.data.images import ImageScaler, image_noise, load_images, to_uint8
from cmtutor.evaluation.digits_fd import DIGITS
from cmtutor.methods.coupling import ot_renoise
from cmtutor.training import fit

RESULT = RESULTS_DIR / "ot_renoise.json"


@torch.no_grad()
def denoising_errors(model: nn.Module, x: Tensor, sigma: float, batch: int, seed: int) -> dict[str, float]:
    """E‖f(x + σz, σ) − x‖²/D for z independent and for z re-ordered by OT within batches of ``batch``."""
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    matched = ot_renoise(x, z, batch)
    s = torch.full((len(x),), sigma)
    out = {}
    for name, noise in (("independent", z), ("ot_matched", matched)):
        out[name] = float((model(x + sigma * noise, s) - x).flatten(1).pow(2).mean())
        out[f"{name}_noise_to_data"] = float((noise - x).flatten(1).pow(2).mean())
    return out


def tau_step_fds(model: nn.Module, x: Tensor, tau: float, sigma_min: float, batch: int, seed: int,
                 fd: Any = DIGITS) -> dict[str, float]:
    """FD of f(x + √(τ² − σ_min²)·z, τ) against the real images x, with z independent and OT-matched."""
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    r, s = (tau**2 - sigma_min**2) ** 0.5, torch.full((len(x),), tau)
    with torch.no_grad():
        outs = {name: model(x + r * noise, s) for name, noise in (("independent", z),
                                                                  ("ot_matched", ot_renoise(x, z, batch)))}
    reference = to_uint8(ImageScaler().decode(x))  # the classifier may train on first use: outside no_grad
    return {name: round(fd.fd(to_uint8(ImageScaler().decode(out)), reference), 3) for name, out in outs.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cmtutor.benchmarks.ot_renoise", description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", default=str(RESULT), help="the results file (default: the committed one)")
    args = p.parse_args(argv)
    data = load_images("digits")
    scaler = ImageScaler()
    x = scaler.encode(torch.from_numpy(data.heldout.transpose(0, 3, 1, 2).copy()))
    n = len(x)
    rows: dict[str, Any] = {}
    t0 = time.time()
    for seed in args.seeds:
        models, one_step = {}, {}
        for method in ("ot", "ict"):
            run = fit(config(method, "digits", args.steps, args.batch_size, seed))
            models[method] = model = run.nets.ema.module.eval()  # the sampling EMA, as the benchmark samples it
            noise = run.cfg.noise_config
            tau, smin, smax = float(run.cfg.two_step_sigma), noise.sigma_min, noise.sigma_max
            with torch.no_grad():
                one_step[method] = model(image_noise(0, n, tuple(x.shape[1:]), seed) * smax, torch.full((n,), smax))
            row = {"tau": tau, **denoising_errors(model, x, tau, args.batch_size, seed)}
            row["sigma_max"] = denoising_errors(model, x, smax, args.batch_size, seed)
            row["fd_tau_step_on_real"] = tau_step_fds(model, x, tau, smin, args.batch_size, seed)
            rows.setdefault(str(seed), {})[method] = row
        for method, model in models.items():  # two steps from each model's one-step samples, both re-noisings
            row = rows[str(seed)][method]

            def two_step(start: Tensor, pair: Any, net: nn.Module = model) -> float:
                """FD of f(start + √(τ² − σ_min²)·z', τ): Algorithm 1's second step from given one-step samples."""
                fresh = torch.randn(start.shape, generator=torch.Generator().manual_seed(seed + 1))
                fresh = pair(start, fresh) if pair is not None else fresh
                with torch.no_grad():
                    out = net(start + (tau**2 - smin**2) ** 0.5 * fresh, torch.full((n,), tau))
                return round(DIGITS.fd(to_uint8(scaler.decode(out))), 3)

            row["fd_1step"] = round(DIGITS.fd(to_uint8(scaler.decode(one_step[method]))), 3)
            row["fd_2step_independent"] = two_step(one_step[method], None)
            row["fd_2step_ot_matched"] = two_step(one_step[method], partial(ot_renoise, batch=args.batch_size))
            other = "ict" if method == "ot" else "ot"
            row[f"fd_2step_on_{other}_samples"] = two_step(one_step[other], None)
            print(f"seed {seed} {method}: τ-step FD on real digits {row['fd_tau_step_on_real']}; MSE independent "
                  f"{row['independent']:.4f} matched {row['ot_matched']:.4f}; FD 1 step {row['fd_1step']}, 2 steps "
                  f"independent {row['fd_2step_independent']}, OT-matched {row['fd_2step_ot_matched']}, on "
                  f"{other}'s samples {row[f'fd_2step_on_{other}_samples']}", flush=True)
    write_json(Path(args.out), {"command": "python -m cmtutor.benchmarks.ot_renoise " + " ".join(sys.argv[1:] if argv is None
                                                                                       else argv),
                        "machine": machine(), "seconds": round(time.time() - t0, 1), "budget":
                            {"steps": args.steps, "batch_size": args.batch_size, "data": f"digits (held-out, {n})"},
                        "seeds": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
