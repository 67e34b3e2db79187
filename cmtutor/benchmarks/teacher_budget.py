"""How long an image set's diffusion teacher must train before the image benchmark's bars can be judged.

    python -m cmtutor.benchmarks.teacher_budget --data photos --seeds 0   # results/teacher_budget_photos.json
    python -m cmtutor.benchmarks.teacher_budget --data photos --steps 5000 --seeds 0 --set lr_decay=cosine

Every consistency method's bar in :mod:`cmtutor.benchmarks.image_quality` is a ratio to the diffusion teacher
trained at the same budget. While the teacher is far from the set's floor and still falling fast, that ratio
measures how fast two methods start, not what they reach (docs/defaults.md#the-photos-budget). This trains the
teacher with the benchmark's settings (:func:`cmtutor.benchmarks.image_quality.config`, one CPU thread) and
records the FD of its sampling EMA and of its online weights at 40 Heun steps every ``--every`` steps.
``--set KEY=VALUE`` changes a setting of the teacher and ``--batch-size`` its batch (a row of its own, named after the
changes, and after any noise-level setting that differs from EDM's, so a row keeps its name when a shipped default
changes: the photos teacher's rows read ``hp.p_mean=-0.4``). Each seed's curve is merged into the results file under
a lock, so seeds and variants can run as separate processes.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

from cmtutor.benchmarks.common import machine, say
from cmtutor.benchmarks.image_quality import (
    N_EVAL,
    RESULTS_DIR,
    SETS,
    config,
    merge_row,
)
from cmtutor.errors import UserError
from cmtutor.methods import get_method
from cmtutor.training.loop import train_steps
from cmtutor.training.run import build_run

#: Heun steps of the teacher's samples (the image benchmark's teacher FD)
TEACHER_STEPS = 40


def results_path(data: str) -> Path:
    return RESULTS_DIR / f"teacher_budget_{data}.json"


#: the image benchmark's batch size; another is a variant of its own (twice the batch, twice the compute per step)
BENCHMARK_BATCH = 64


def row_name(changes: dict[str, Any], batch_size: int = BENCHMARK_BATCH) -> str:
    """The results file's name of a variant: "diffusion", "diffusion, lr_decay=cosine", "diffusion, hp.p_mean=-0.4"
    or "diffusion, batch 128"."""
    batch = [f"batch {batch_size}"] if batch_size != BENCHMARK_BATCH else []
    flat = {f"{k}.{kk}" if isinstance(v, dict) else k: vv  # hp={"p_mean": -0.4} reads hp.p_mean=-0.4
            for k, v in changes.items() for kk, vv in (v.items() if isinstance(v, dict) else [(k, v)])}
    return ", ".join(["diffusion", *(f"{k}={v}" for k, v in sorted(flat.items())), *batch])


def variant_changes(data: str, changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` with the teacher's hyperparameters that differ from EDM's (Karras et al. 2022, Table 1) put in,
    and those equal to EDM's left out: what names a row whatever the set's shipped default."""
    edm = get_method("diffusion").default_hparams("image")
    hp = {**config("diffusion", data, 2, BENCHMARK_BATCH, 0, **changes).hp}
    named = {k: v for k, v in hp.items() if edm.get(k) != v}
    return {**{k: v for k, v in changes.items() if k != "hp"}, **({"hp": named} if named else {})}


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs (VALUE as JSON where it parses, else a string) for :func:`config`."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def curve(data: str, steps: int, every: int, seed: int, batch_size: int = 64,
          changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """The teacher's FD every ``every`` steps up to ``steps`` (EMA weights), and the online weights' at the end."""
    fd, n = SETS[data], N_EVAL[data]
    run = build_run(config("diffusion", data, steps, batch_size, seed, **(changes or {})))
    points, start, evaluating = [], time.process_time(), 0.0
    for logs in train_steps(run):
        k = int(logs["step"])
        if k % every == 0 or k == steps:
            t = time.process_time()
            value = fd.fd(run.sampler().sample_images(n, steps=TEACHER_STEPS, seed=seed))
            online = fd.fd(run.sampler(weights="online").sample_images(n, steps=TEACHER_STEPS, seed=seed))
            points.append({"step": k, "fd_ema": round(value, 3), "fd_online": round(online, 3),
                           "loss": round(float(logs["loss"]), 5),
                           "train_cpu_s": round(t - start - evaluating, 1)})  # evaluation is not training time
            evaluating += time.process_time() - t
            say(f"seed {seed} step {k}: FD {value:.1f} (EMA), {online:.1f} (online)")
    return {"curve": points, "fd_online_at_end": points[-1]["fd_online"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cmtutor.benchmarks.teacher_budget", description=__doc__.split("\n")[0])
    p.add_argument("--data", choices=sorted(SETS), default="photos")
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--every", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=BENCHMARK_BATCH, help="another than 64 is a variant of its own")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--out", help="results file (default: cmtutor/benchmarks/results/teacher_budget_DATA.json)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="sets",
                   help="a teacher setting to change, e.g. --set lr_decay=cosine (repeatable; a row of its own)")
    args = p.parse_args(argv)
    try:
        changes = parse_sets(args.sets)
        config("diffusion", args.data, args.steps, args.batch_size, 0, **changes)  # a bad setting fails here
    except (ValueError, UserError) as exc:
        p.error(str(exc))
    except TypeError as exc:  # TrainConfig has no such field
        p.error(f"unknown setting in --set: {exc}")
    torch.set_num_threads(1)  # as the image benchmark: CPU seconds comparable with its table
    out = Path(args.out) if args.out else results_path(args.data)
    command = "python -m cmtutor.benchmarks.teacher_budget " + shlex.join(sys.argv[1:] if argv is None else argv)
    fd = SETS[args.data]
    # the steps are the budget; how often it is measured and the batch are the row's (variants of one file)
    header = {"data": args.data, "budget": {"steps": args.steps, "threads": 1},
              "quality": fd.protocol(N_EVAL[args.data]), "floor": round(fd.floor(N_EVAL[args.data]), 3),
              "teacher": f"the diffusion model at {TEACHER_STEPS} Heun steps, the image benchmark's settings"}
    for seed in args.seeds:
        entry = {**curve(args.data, args.steps, args.every, seed, args.batch_size, changes), "changes": changes,
                 "every": args.every, "batch_size": args.batch_size,
                 "measured": {"command": command, "machine": machine()}}
        merge_row(out, header, seed, row_name(variant_changes(args.data, changes), args.batch_size), entry)
    say(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
