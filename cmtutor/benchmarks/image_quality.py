"""Images on a CPU: every method's one-step and two-step quality at the same training budget, over seeds.

    python -m cmtutor.benchmarks.image_quality --data digits --seeds 0 1 2   # results/images_digits.json
    python -m cmtutor.benchmarks.image_quality --data photos --seeds 0       # merges seed 0 into images_photos.json
    python -m cmtutor.benchmarks.image_quality --data digits --steps 200 --out /tmp/quick.json
    python -m cmtutor.benchmarks.image_quality --data photos --methods cd --curve-every 250   # FD along the run
    python -m cmtutor.benchmarks.image_quality --data digits --ablations --variants "cd, uniform weights (the papers')"

Every method of ``cmtutor.methods.METHODS`` trains on a small built-in image set (``digits``: 8×8 grey;
``photos``: 16×16 colour patches of two photographs) with its shipped image defaults and the small U-Net,
for the same number of steps S at the same batch size; the CPU seconds each method used are reported beside
(methods differ in network passes per step). Teachers: the diffusion model trained for S steps (CD and
Direct CM distil it; its time is on its own row); TCM's stage 1 is iCT for S/2 steps and stage 2 runs S/2,
so TCM's total equals iCT's (docs/defaults.md#tcm-on-images).

Quality is the set's classifier Fréchet distance (``cmtutor.evaluation.classifier_fd``: FD-digits,
FD-photos; not an FID) of EMA samples against the reference images, at 1 and 2 steps for consistency
models and 18 and 40 Heun steps for the diffusion model, with the finite-sample floor. Each seed's rows are
merged into the results file under a lock, so seeds can run as separate processes; the summary over seeds
(mean ± standard deviation, ratios to the teacher, the quality bars) is :func:`summary`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cmtutor.benchmarks.common import machine, say, write_json
from cmtutor.config import TrainConfig, default_config
from cmtutor.course.images import sample_steps, teacher_of
from cmtutor.evaluation.classifier_fd import ClassifierFD
from cmtutor.evaluation.digits_fd import DIGITS
from cmtutor.evaluation.photos_fd import PHOTOS
from cmtutor.hardware.filelock import file_lock
from cmtutor.methods import METHODS
from cmtutor.training import Run, build_run, checkpoint_dict, to_floats, train_steps

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SETS: dict[str, ClassifierFD] = {"digits": DIGITS, "photos": PHOTOS}
#: samples per FD: every reference digit (359); 1000 of the 1343 reference patches
N_EVAL: dict[str, int] = {"digits": 359, "photos": 1000}
#: samples stored per method and sampler (uint8 hex) for notebook 07's grids
N_STORED = 32

#: The quality bars of issue 16: a method's mean one-step FD over seeds at most this many times the
#: teacher's (the diffusion model at 40 Heun steps); TCM no worse than its stage 1 (checked separately).
BARS: dict[str, float] = {"cd": 1.3, "ict": 1.5, "gc": 2.0, "ot": 2.0, "direct": 2.0, "ct": 3.0}


#: Each image default against the setting it replaced (docs/defaults.md): label → (method, config, hp changes).
ABLATIONS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "ict, EMA without warm-up": ("ict", {"ema_warmup": "none"}, {}),
    "gc, EMA without warm-up": ("gc", {"ema_warmup": "none"}, {}),
    # the CD rows measured before CD weighed its pairs by 1/Δσ keep the uniform weight they were measured with
    "cd, pseudo-Huber, uniform weights": ("cd", {}, {"distance": "pseudo_huber", "weighting": "uniform"}),
    "ct, θ⁻ rate as written": ("ct", {}, {"target_horizon": 0}),
    "tcm, stage 2 at stage 1's rate": ("tcm", {"lr": "stage 1"}, {}),
    "cd, uniform weights, at its teacher's rate": ("cd", {"lr": "teacher"}, {"weighting": "uniform"}),
    "cd, uniform weights (the papers')": ("cd", {}, {"weighting": "uniform"}),
}

#: Diagnoses of a missed bar (docs/defaults.md#the-bars-the-digits-benchmark-misses and the photos' section after
#: it): a method with one of another method's switches, or one setting moved, to find what its gap is made of. Not
#: candidate defaults: CT stays the paper's CT.
DIAGNOSES: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "ct with iCT's pseudo-Huber": ("ct", {}, {"distance": "pseudo_huber"}),
    "ct with iCT's lognormal pairs and 1/Δσ": ("ct", {}, {"pairs": "lognormal", "weighting": "inv_delta"}),
    # the small images' stage 1 trains at 2e-3: does a slower stage 2 keep what stage 1 reached on photos?
    "tcm, stage 2 at a quarter of stage 1's rate": ("tcm", {"lr": 5e-4}, {}),
}


def resolve_changes(changes: dict[str, Any], data: str, seed: int) -> dict[str, Any]:
    """A variant's changes with its relative learning rates made numbers: ``"stage 1"`` (TCM's stage 2 at its
    stage 1's rate, iCT's) and ``"teacher"`` (CD at its teacher's rate, the small images' setting until 2026-12-07)."""
    lr = changes.get("lr")
    if lr == "stage 1":
        return {**changes, "lr": config("ict", data, 2, 1, seed).lr}
    if lr == "teacher":
        return {**changes, "lr": config("diffusion", data, 2, 1, seed).lr}
    return changes


def results_path(data: str, steps: int | None = None) -> Path:
    """The results file of ``data``; ``steps``: a second table of the set at that budget (``images_photos_5000``)."""
    return RESULTS_DIR / (f"images_{data}.json" if steps is None else f"images_{data}_{steps}.json")


def load_results(data: str, steps: int | None = None) -> dict[str, Any] | None:
    """The committed results of ``data`` (None if the benchmark has not been run on it); ``steps`` as
    :func:`results_path`."""
    path = results_path(data, steps)
    return json.loads(path.read_text()) if path.exists() else None


def config(method: str, data: str, steps: int, batch_size: int, seed: int, **changes: Any) -> TrainConfig:
    """The benchmark's configuration of ``method``: the shipped image defaults at the budget, on the CPU."""
    return default_config(method, data, **{"steps": steps, "batch_size": batch_size, "seed": seed, "device": "cpu",
                                           "log_every": max(1, steps // 20), "checkpoint_every": 10**9, **changes})


def evaluate(run: Run, fd: ClassifierFD, n: int, seed: int, store: bool) -> dict[str, Any]:
    """FD at the run's two sampling budgets (``fd_1step``, ``fd_2step`` or ``fd_18step``, ``fd_40step``).

    A run that re-noises with a coupling (OT's ``renoise="ot"``) also gets ``fd_2step_independent``: two steps
    with Algorithm 1's independent re-noising, the setting its default replaced."""
    out: dict[str, Any] = {"samples": {}} if store else {}
    sampler = run.sampler()
    for k in sample_steps(run):
        images = sampler.sample_images(n, steps=k, seed=seed)
        out[f"fd_{k}step"] = round(fd.fd(images), 3)
        if store:
            out["samples"][str(k)] = {"shape": list(images[:N_STORED].shape),
                                      "hex": images[:N_STORED].tobytes().hex()}
    if run.cfg.renoise != "independent":
        independent = run.sampler(renoise="independent").sample_images(n, steps=2, seed=seed)
        out["fd_2step_independent"] = round(fd.fd(independent), 3)
    return out


def train_with_curve(cfg: TrainConfig, teacher: dict[str, Any] | None, fd: ClassifierFD, n: int, every: int
                     ) -> tuple[Run, list[dict[str, Any]], tuple[float, float]]:
    """Train ``cfg`` to its end, with the FD of the sampling EMA every ``every`` steps (0: none): at one and two
    steps, the teacher at 40 Heun steps only. Returns the run, the curve and the CPU and wall seconds the evaluations
    took (not training time).

    A point at step k is the run at step k, not a k-step run: the same thing only for methods whose schedule does
    not depend on the run's length (the teacher, CD, Direct CM); iCT's curriculum (GC's, OT's), CT's, TCM's split
    and sCM's warm-up do (docs/defaults.md#learning-curves)."""
    run = build_run(cfg, teacher=teacher)
    curve: list[dict[str, Any]] = []
    cpu = wall = 0.0
    for logs in train_steps(run):
        k = int(logs["step"])
        if k % max(1, cfg.log_every) == 0 or k == cfg.steps:
            run.history.append(to_floats(logs))
        if every and k % every == 0:
            c0, w0 = time.process_time(), time.perf_counter()
            point: dict[str, Any] = {"step": k}
            for m in sample_steps(run)[-1:] if run.method.ode_sampling else sample_steps(run):
                point[f"fd_{m}step"] = round(fd.fd(run.sampler().sample_images(n, steps=m, seed=cfg.seed)), 3)
            curve.append(point)
            cpu, wall = cpu + time.process_time() - c0, wall + time.perf_counter() - w0
            say(f"  {cfg.method} step {k}: " + "  ".join(f"{a}={b}" for a, b in point.items() if a != "step"))
    return run, curve, (cpu, wall)


def merge_row(path: Path, header: dict[str, Any], seed: int, method: str, entry: dict[str, Any],
              section: str = "seeds") -> None:
    """Put one method's row of one seed into the results file, under a lock (seeds may run in parallel).

    ``section="ablations"`` keeps the row of an ablation (:data:`ABLATIONS`) apart from the methods'."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path.with_name(f".{path.name}.lock")):
        res = json.loads(path.read_text()) if path.exists() else {**header, "seeds": {}}
        res.setdefault(section, {})
        if res["budget"] != header["budget"] or res["data"] != header["data"]:
            raise SystemExit(f"error: {path} holds {res['data']} at budget {res['budget']}, not {header['data']} "
                             f"at {header['budget']}; rows of different budgets are not comparable "
                             "(use another --out)")
        res[section].setdefault(str(seed), {})[method] = entry
        res[section] = {k: res[section][k] for k in sorted(res[section], key=int)}
        write_json(path, res)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cmtutor.benchmarks.image_quality", description=__doc__.split("\n")[0])
    p.add_argument("--data", choices=sorted(SETS), default="digits")
    p.add_argument("--steps", type=int, default=2000, help="the budget S: training steps of every method")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--threads", type=int, default=1, help="CPU threads (1: CPU seconds comparable across methods)")
    p.add_argument("--out", help="results file (default: cmtutor/benchmarks/results/images_DATA.json)")
    p.add_argument("--ablations", action="store_true",
                   help="instead of the methods, train each ABLATIONS variant (a default against what it replaced)")
    p.add_argument("--diagnoses", action="store_true",
                   help="instead of the methods, train each DIAGNOSES variant (what a missed bar is made of)")
    p.add_argument("--curve-every", type=int, default=0, metavar="K",
                   help="also record the FD every K steps of each run of the budget (the learning curve; 0: none)")
    p.add_argument("--variants", nargs="+", metavar="LABEL",
                   help="with --ablations or --diagnoses: only these variants (their labels, quoted)")
    args = p.parse_args(argv)
    if args.variants:
        if not (args.ablations or args.diagnoses):
            p.error("--variants needs --ablations or --diagnoses")
        known = ABLATIONS if args.ablations else DIAGNOSES
        if unknown := [v for v in args.variants if v not in known]:
            p.error(f"unknown variant(s) {unknown}; the labels are: " + "; ".join(known))
    if args.steps < 2:
        p.error("--steps must be at least 2 (TCM's two stages take half each)")
    torch.set_num_threads(args.threads)
    fd, n_eval = SETS[args.data], N_EVAL[args.data]
    out = Path(args.out) if args.out else results_path(args.data)
    command = "python -m cmtutor.benchmarks.image_quality " + shlex.join(sys.argv[1:] if argv is None else argv)
    header: dict[str, Any] = {
        "data": args.data, "budget": {"steps": args.steps, "batch_size": args.batch_size, "threads": args.threads},
        "quality": fd.protocol(n_eval), "floor": round(fd.floor(n_eval), 3),
        "teacher_fd": "the diffusion model's FD at 40 Heun steps", "bars": BARS}
    say(f"{fd.label} floor (real images, n={n_eval}): {header['floor']:.2f}")
    variants_only = args.ablations or args.diagnoses
    for seed in args.seeds:
        runs: dict[tuple[str, int], Run] = {}

        def train(m: str, steps: int, changes: dict[str, Any] | None = None) -> tuple[Run, dict[str, Any]]:
            if (m, steps) in runs and changes is None:
                return runs[(m, steps)], {}
            t = teacher_of(m)
            stage1 = m == "tcm"
            t_steps = steps // 2 if stage1 else steps
            teacher = train(t, t_steps)[0] if t is not None else None
            # a curve for the rows written (a teacher trained only for its student gets none)
            recorded = steps == args.steps and (changes is not None if variants_only else m in args.methods)
            c0, w0 = time.process_time(), time.perf_counter()
            run, curve, evaluating = train_with_curve(
                config(m, args.data, steps - t_steps if stage1 else steps, args.batch_size, seed, **(changes or {})),
                checkpoint_dict(teacher) if teacher is not None else None, fd, n_eval,
                args.curve_every if recorded else 0)
            cpu, wall = time.process_time() - c0 - evaluating[0], time.perf_counter() - w0 - evaluating[1]
            if changes is None:
                runs[(m, steps)] = run
            timing: dict[str, Any] = {"train_cpu_s": round(cpu, 1), "train_wall_s": round(wall, 1)}
            return run, {**timing, "curve": curve} if curve else timing

        if variants_only:
            variants, section = (ABLATIONS, "ablations") if args.ablations else (DIAGNOSES, "diagnoses")
            for label, (m, changes, hp) in variants.items():
                if args.variants and label not in args.variants:
                    continue
                changes = resolve_changes(changes, args.data, seed)
                run, timing = train(m, args.steps, {**changes, "hp": hp})
                entry = {"method": m, "changes": {**changes, "hp": hp}, "steps": run.cfg.steps, **timing,
                         **evaluate(run, fd, n_eval, seed, False),
                         "measured": {"command": command, "machine": machine()}}
                merge_row(out, header, seed, label, entry, section=section)
                say(f"seed {seed} {label:<32} " + "  ".join(f"{k}={v}" for k, v in entry.items() if k.startswith("fd_")))
            continue
        for m in args.methods:
            run, timing = train(m, args.steps)
            entry: dict[str, Any] = {"steps": run.cfg.steps, **timing, "teacher": teacher_of(m),
                                     "final_loss": round(run.history[-1]["loss"], 5),
                                     **evaluate(run, fd, n_eval, seed, store=seed == 0)}
            if m == "tcm":  # the iCT stage 2 starts from, and the budget split
                s1 = runs[("ict", args.steps // 2)]
                entry["stage1"] = {"method": "ict", "steps": s1.cfg.steps, **evaluate(s1, fd, n_eval, seed, False)}
            entry["measured"] = {"command": command, "machine": machine()}
            merge_row(out, header, seed, m, entry)
            say(f"seed {seed} {m:<10} {entry.get('train_cpu_s', 0):7.1f} CPU s  "
                + "  ".join(f"{k}={v}" for k, v in entry.items() if k.startswith("fd_")))
    say(f"results: {out}")
    return 0


# --- the summary over seeds ----------------------------------------------------------------------------

def _mean_sd(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), (float(statistics.stdev(values)) if len(values) > 1 else float("nan"))


def summary(res: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per method: FD at both samplers (mean, sd over seeds), ratio to the teacher, the bar and verdicts.

    The ratio is taken per seed (each seed's method against the same seed's teacher), then averaged.
    ``two_vs_one``: the mean of FD(2 steps) − FD(1 step) and its sd; two steps are "no worse beyond the
    spread" when that mean is at most its sd over seeds. TCM's bar: its one-step FD no worse than its
    stage 1's beyond the spread (same rule).
    """
    seeds = res["seeds"]
    methods = [m for m in METHODS if any(m in rows for rows in seeds.values())]
    rows = []
    for m in methods:
        per_seed = [(s, rows_[m]) for s, rows_ in seeds.items() if m in rows_]
        keys = sorted((k for k in per_seed[0][1] if k.startswith("fd_") and k.endswith("step")),
                      key=lambda k: int(k[3:-4]))
        first = per_seed[0][1]
        steps = first["steps"] + first.get("stage1", {}).get("steps", 0)  # TCM: both stages
        row: dict[str, Any] = {"method": m, "seeds": len(per_seed), "steps": steps,
                               "train_cpu_s": _mean_sd([e["train_cpu_s"] for _, e in per_seed if "train_cpu_s" in e]
                                                       or [float("nan")])[0]}
        for i, k in enumerate(keys):
            row[f"sampler_{'ab'[i]}"] = int(k[3:-4])
            row[f"fd_{'ab'[i]}"] = _mean_sd([e[k] for _, e in per_seed])
        if m != "diffusion":
            ratios = [e["fd_1step"] / seeds[s]["diffusion"]["fd_40step"] for s, e in per_seed
                      if "diffusion" in seeds[s]]
            if ratios:
                row["ratio"] = _mean_sd(ratios)
            diffs = [e["fd_2step"] - e["fd_1step"] for _, e in per_seed]
            mean, sd = _mean_sd(diffs)
            row["two_vs_one"] = (mean, sd)
            row["two_ok"] = bool(mean <= (sd if sd == sd else 0.0))
            independent = [e["fd_2step_independent"] - e["fd_1step"] for _, e in per_seed if "fd_2step_independent" in e]
            if independent:  # OT: two steps with Algorithm 1's independent re-noising instead of its coupling's
                row["two_vs_one_independent"] = _mean_sd(independent)
            if m in BARS and ratios:
                row["bar"] = f"≤ {BARS[m]}× teacher"
                row["bar_met"] = bool(row["ratio"][0] <= BARS[m])
            if m == "tcm":
                gaps = [e["fd_1step"] - e["stage1"]["fd_1step"] for _, e in per_seed if "stage1" in e]
                if gaps:
                    gmean, gsd = _mean_sd(gaps)
                    row["stage1_fd"] = _mean_sd([e["stage1"]["fd_1step"] for _, e in per_seed if "stage1" in e])
                    row["bar"] = (f"≤ its stage 1 (iCT, {per_seed[0][1]['stage1']['steps']} steps: "
                                  f"{row['stage1_fd'][0]:.1f})")
                    row["bar_met"] = bool(gmean <= (gsd if gsd == gsd else 0.0))
        rows.append(row)
    return rows


def ablation_summary(res: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per ablation: its one- and two-step FD beside the default's, mean ± sd over the seeds with both."""
    rows = []
    for label in ABLATIONS:
        pairs = [(e, res["seeds"][s][e["method"]]) for s, abl in res.get("ablations", {}).items()
                 if label in abl and (e := abl[label])["method"] in res["seeds"].get(s, {})]
        if not pairs:
            continue
        row: dict[str, Any] = {"ablation": label, "method": pairs[0][0]["method"], "seeds": len(pairs),
                               "changes": pairs[0][0]["changes"]}
        for k in ("fd_1step", "fd_2step"):
            row[f"default_{k}"] = _mean_sd([d[k] for _, d in pairs])
            row[f"variant_{k}"] = _mean_sd([v[k] for v, _ in pairs])
        rows.append(row)
    return rows


def stored_samples(res: dict[str, Any], method: str, steps: int) -> np.ndarray:
    """The samples the benchmark stored for ``method`` at ``steps`` (uint8 [N, H, W, C]; seed 0's)."""
    for rows in res["seeds"].values():
        if method in rows and "samples" in rows[method]:
            s = rows[method]["samples"][str(steps)]
            return np.frombuffer(bytes.fromhex(s["hex"]), dtype=np.uint8).reshape(s["shape"])
    raise KeyError(f"no stored samples of {method} at {steps} steps")


if __name__ == "__main__":
    raise SystemExit(main())
