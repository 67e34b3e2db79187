"""2D quality benchmark through the command line, with its default settings.

    python -m cmtutor.benchmarks.toy2d                      # every built-in set + two .npy sets, all methods
    python -m cmtutor.benchmarks.toy2d --data moons --methods diffusion ict
    python -m cmtutor.benchmarks.toy2d --quick              # a smoke run (few steps; numbers meaningless)
    python -m cmtutor.benchmarks.toy2d --jobs 7 --threads 2 # 7 trainings at a time, 2 CPU threads each
    python -m cmtutor.benchmarks.toy2d --data rings --methods diffusion cd --seeds 0 1 2   # mean and spread

For each data set it runs ``python -m cmtutor train`` (default settings: nothing but --method, --data and
--teacher), ``sample`` (1 and 2 steps for consistency models; the teacher's Heun ODE for diffusion) and
``evaluate --json``, and reports the wall time of training and W2 / floor, where W2 is measured between
1000 generated and 1000 held-out points and the floor is the W2 between two independent 1000-point data
samples, each averaged over ``evaluate``'s 20 draws (``cmtutor.core.metrics.EVAL_REPEATS``; the standard error
of every ratio is printed beside it).

Every finished row is merged into ``--results`` (default: the committed
``cmtutor/benchmarks/results/toy2d.json``; a ``--quick`` run writes only ``OUT/results.json``): a row replaces
the stored row of the same (set, method, seed) and keeps the others, so a partial rerun updates its rows only.
``python -m cmtutor.benchmarks.report`` turns the file into docs/results.md. The bars come from the project's issues:

* diffusion (Heun PF-ODE) ≤ 1.15× floor; CD one-step ≤ 1.5×; iCT one-step ≤ 1.5×, two-step ≤ 1.3×;
* sCM and MeanFlow one-step ≤ 1.5×, two-step ≤ 1.4× (issue 18);
* every other consistency method one-step ≤ 1.6×; every training run ≤ 180 s on 2 CPU cores.

Besides the built-in sets it writes two ``.npy`` files: ``rings.npy`` (scale about 1) and
``moons-far.npy`` (moons ×40 shifted by (300, −50): another scale and offset); ``--data rings moons-far``
selects them by name.

With ``--jobs N`` several trainings run at once (a method waits for its teacher's run on the same set);
each command-line process gets ``--threads`` CPU threads (``OMP_NUM_THREADS``), so on a machine with
``N × threads`` free cores each training still sees the 2 cores of the runtime bar. ``results.json`` is
rewritten after every finished row, so an interrupted benchmark keeps what it measured.

One run says little on thin sets: CD's one-step ratio on ``rings.npy`` moved over 1.1–1.8 between seeds
while the ± of each run was 0.05–0.07. With ``--seeds`` every (set, method) is trained once per seed (a
student learns from its teacher of the same seed, in ``OUT/seed<k>/``) and a last table gives the mean and
the range over the seeds; its verdict applies the bars to the means.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cmtutor.benchmarks.common import write_json
from cmtutor.benchmarks.studies import RESULTS_DIR
from cmtutor.data.vectors import TOY_SETS, make_toy
from cmtutor.hardware.accel import hardware as device
from cmtutor.methods import METHODS, get_method

#: (one-step bar, two-step bar or None) per method; methods not listed use DEFAULT_BAR.
BARS: dict[str, tuple[float, float | None]] = {"diffusion": (1.15, None), "cd": (1.5, None), "ict": (1.5, 1.3),
                                               "scm": (1.5, 1.4), "meanflow": (1.5, 1.4)}
DEFAULT_BAR: tuple[float, float | None] = (1.6, None)
TIME_BAR_S = 180.0


def extra_sets(folder: Path) -> list[str]:
    """Write the two .npy test sets and return their paths."""
    rng = np.random.default_rng(7)
    n = 20_000
    r = np.where(rng.uniform(size=n) < 0.5, 1.0, 2.0)
    t = rng.uniform(0, 2 * np.pi, n)
    rings = (np.stack([r * np.cos(t), r * np.sin(t)], 1) + 0.08 * rng.standard_normal((n, 2))) / 1.6
    far = make_toy("moons", n, seed=11).astype(np.float64) * 40 + np.array([300.0, -50.0])
    paths = []
    for name, arr in (("rings.npy", rings), ("moons-far.npy", far)):
        p = folder / name
        np.save(p, arr.astype(np.float32))
        paths.append(str(p))
    return paths


def hardware() -> str:
    """One line: the device, the logical CPUs visible and torch (the runtime bar is for 2 CPU cores)."""
    return f"{device()}; {os.cpu_count()} logical CPUs visible; torch {torch.__version__}"


@dataclass
class Row:
    data: str
    method: str
    train_s: float
    r1: float
    r2: float | None
    #: standard errors of r1 and r2 over the evaluation draws
    se1: float = 0.0
    se2: float | None = None
    #: the training seed (``train --seed``)
    seed: int = 0
    #: where and when it was measured (:func:`hardware`, the date, the command's parallelism)
    hardware: str = ""
    date: str = ""
    parallel: str = ""
    #: whether ``train_s`` is held to the 2-core time bar (False on a GPU, or with the cores shared or one thread)
    timed: bool = True

    def missed(self) -> list[str]:
        """The bars this row misses: ``"quality"`` (W2 ratio) and/or ``"time"`` (training wall time)."""
        b1, b2 = BARS.get(self.method, DEFAULT_BAR)
        quality = self.r1 <= b1 and (b2 is None or self.r2 is None or self.r2 <= b2)
        return [name for name, ok in (("quality", quality), ("time", self.train_s <= TIME_BAR_S or not self.timed))
                if not ok]

    def verdict(self) -> str:
        return "FAIL" if self.missed() else "pass"

    def verdict_text(self) -> str:
        """The verdict with the bars missed, e.g. ``FAIL (time)``: times are only the 2-core time when the
        training ran alone on 2 cores (``--jobs 1 --threads 2``)."""
        missed = self.missed()
        return f"FAIL ({', '.join(missed)})" if missed else "pass"


def is_timed(jobs: int, threads: int | None, cuda: bool, cpus: int) -> bool:
    """Whether a run's training time is held to the bar, which is for 2 CPU cores: each training on 2 threads (torch's
    default is one per core), with a core for each thread, and not on a GPU (``train --device auto`` uses one)."""
    per_job = threads or cpus
    return not cuda and per_job == 2 and jobs * per_job <= cpus


#: CPU threads of each command-line process (None: torch's default); set by ``--threads``.
THREADS: int | None = None
#: Where and when rows are measured (:class:`Row`'s hardware, date, parallel and timed fields); set by ``main``.
MEASURED: dict[str, Any] = {}


def _cli(args: list[str], extra: list[str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "cmtutor", *args, *extra]
    env = dict(os.environ)
    if THREADS is not None:
        env.update(OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    return proc


def _ratio(ckpt: Path, data: str, out: Path, steps: int | None) -> tuple[float, float]:
    """W2 / floor of 3000 samples of ``ckpt`` (``steps`` sampling steps) and its standard error."""
    args = ["sample", "--ckpt", str(ckpt), "--n", "3000", "--seed", "1", "--out", str(out)]
    if steps is not None:
        args += ["--steps", str(steps)]
    _cli(args, [])
    res = json.loads(_cli(["evaluate", "--samples", str(out), "--data", data, "--json"], []).stdout)
    return float(res["w2_ratio"]), float(res["w2_ratio_se"])


def run_one(data: str, method: str, work: Path, train_extra: list[str], teacher: Path | None) -> Row:
    """Train one method on one set through the command line, then measure W2 / floor (1 and 2 steps)."""
    cls = get_method(method)
    out = work / f"{Path(data).stem}-{method}"
    args = ["train", "--method", method, "--data", data, "--out", str(out), "--quiet"]
    if teacher is not None:
        args += ["--teacher", str(teacher)]
    t0 = time.time()
    _cli(args, train_extra)
    train_s = time.time() - t0
    ckpt = out / "checkpoint.pt"
    if cls.ode_sampling:
        (r1, se1), (r2, se2) = _ratio(ckpt, data, out / "samples.npy", None), (None, None)
    else:
        r1, se1 = _ratio(ckpt, data, out / "samples1.npy", 1)
        r2, se2 = _ratio(ckpt, data, out / "samples2.npy", 2)
    return Row(Path(data).name, method, train_s, r1, r2, se1, se2, **MEASURED)


def _print_row(row: Row) -> None:
    two = f"{row.r2:.2f} ± {row.se2 or 0.0:.2f}" if row.r2 is not None else "     -     "
    print(f"  {row.data:<14} {row.method:<10} seed {row.seed}  train {row.train_s:6.1f} s   W2/floor 1-step {row.r1:.2f} ± "
          f"{row.se1:.2f}  2-step {two}   {row.verdict_text()}", flush=True)


def run_all(data: list[str], methods: list[str], work: Path, train_extra: list[str], jobs: int = 1,
            on_row: Any = None, seeds: list[int] | None = None) -> list[Row]:
    """Every (set, method) pair, once per seed in ``seeds``; teachers first, at most ``jobs`` trainings at a time.

    A method that learns from a teacher (CD, Direct CM: the diffusion run; TCM: the iCT/CT run) waits for
    that run on the same set (and seed); without one among ``methods`` it is skipped with a message. With
    ``seeds`` (None: one run, the default seed, in ``work``) seed k runs in ``work/seed<k>`` with ``--seed k``."""
    order = sorted(methods, key=lambda m: (get_method(m).requires_teacher, m != "diffusion"))
    rows: list[Row] = []
    lock = threading.Lock()
    futures: dict[tuple[str, str, int], Future[Row]] = {}

    def folder(seed: int) -> Path:
        return work if seeds is None else work / f"seed{seed}"

    def task(d: str, method: str, seed: int) -> Row:
        cls = get_method(method)
        teacher = None
        if cls.requires_teacher:
            source = next(m for m in cls.teacher_methods if (d, m, seed) in futures)
            futures[(d, source, seed)].result()  # raises if the teacher's run failed
            teacher = folder(seed) / f"{Path(d).stem}-{source}" / "checkpoint.pt"
        extra = train_extra if seeds is None else [*train_extra, "--seed", str(seed)]
        folder(seed).mkdir(parents=True, exist_ok=True)
        row = run_one(d, method, folder(seed), extra, teacher)
        row.seed = seed
        with lock:
            rows.append(row)
            _print_row(row)
            if on_row is not None:
                on_row(rows)
        return row

    # Teachers are submitted before their students, so a waiting student never blocks its own teacher.
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for seed in seeds if seeds is not None else [0]:
            for method in order:
                cls = get_method(method)
                for d in data:
                    if cls.requires_teacher and not any((d, m, seed) in futures for m in cls.teacher_methods):
                        print(f"  skip {method} on {Path(d).name}: needs a {'/'.join(cls.teacher_methods)} "
                              "run first", flush=True)
                        continue
                    futures[(d, method, seed)] = pool.submit(task, d, method, seed)
        for f in futures.values():
            f.result()
    return rows


@dataclass
class Summary:
    """One (set, method) over several seeds: means and ranges (min, max) of the rows."""

    data: str
    method: str
    seeds: list[int]
    r1: float
    r1_range: tuple[float, float]
    r2: float | None
    r2_range: tuple[float, float] | None
    train_s: float
    train_range: tuple[float, float]
    timed: bool = True

    def verdict(self) -> str:
        return self._row().verdict()

    def verdict_text(self) -> str:
        return self._row().verdict_text()

    def _row(self) -> Row:
        return Row(self.data, self.method, self.train_s, self.r1, self.r2, timed=self.timed)


def merge_rows(stored: list[dict[str, Any]], new: list[Row]) -> list[dict[str, Any]]:
    """The stored rows with every (set, method, seed) of ``new`` replaced by the new row (or added)."""
    key = lambda r: (r["data"], r["method"], r["seed"])  # noqa: E731
    merged = {key(r): r for r in stored}
    for r in new:
        merged[(r.data, r.method, r.seed)] = {**r.__dict__, "verdict": r.verdict()}
    return sorted(merged.values(), key=lambda r: (r["data"], r["method"], r["seed"]))


def results_document(rows: list[dict[str, Any]], commands: list[str]) -> dict[str, Any]:
    """The results file: the bars, the commands that wrote it, every row, and the means over seeds."""
    objs = [Row(**{k: v for k, v in r.items() if k != "verdict"}) for r in rows]
    return {"benchmark": "toy2d", "bars": {"one_two_step": BARS, "default": DEFAULT_BAR, "train_s": TIME_BAR_S},
            "commands": commands, "rows": rows,
            "summary": [{**s.__dict__, "verdict": s.verdict()} for s in summarize(objs)]}


def summarize(rows: list[Row]) -> list[Summary]:
    """Mean and range over the seeds of every (set, method), in the order of first appearance."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.data, r.method), []).append(r)
    out = []
    for (d, m), rs in groups.items():
        rs = sorted(rs, key=lambda r: r.seed)
        r1 = [r.r1 for r in rs]
        r2 = [r.r2 for r in rs if r.r2 is not None]
        ts = [r.train_s for r in rs]
        out.append(Summary(d, m, [r.seed for r in rs], float(np.mean(r1)), (min(r1), max(r1)),
                           float(np.mean(r2)) if r2 else None, (min(r2), max(r2)) if r2 else None,
                           float(np.mean(ts)), (min(ts), max(ts)), all(r.timed for r in rs)))
    return out


def _print_summary(s: Summary) -> None:
    two = f"{s.r2:.2f} ({s.r2_range[0]:.2f}–{s.r2_range[1]:.2f})" if s.r2 is not None and s.r2_range else "-"
    print(f"  {s.data:<14} {s.method:<10} seeds {','.join(map(str, s.seeds)):<7} train {s.train_s:6.1f} s "
          f"({s.train_range[0]:.0f}–{s.train_range[1]:.0f})   1-step {s.r1:.2f} ({s.r1_range[0]:.2f}–"
          f"{s.r1_range[1]:.2f})  2-step {two}   {s.verdict_text()}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cmtutor.benchmarks.toy2d", description=__doc__.split("\n")[0])
    p.add_argument("--data", nargs="*", help="data sets (default: every built-in set and two .npy files)")
    p.add_argument("--methods", nargs="*", default=list(METHODS), help="methods (default: all)")
    p.add_argument("--out", default="runs/toy2d", help="work folder (checkpoints, samples, results.json)")
    p.add_argument("--results", default=None,
                   help=f"results file the rows are merged into (default {RESULTS_DIR / 'toy2d.json'}; "
                        "--quick: OUT/results.json only)")
    p.add_argument("--quick", action="store_true", help="smoke run: 30 steps and a tiny network")
    p.add_argument("--jobs", type=int, default=1, help="trainings at a time (default 1)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads of each training process (OMP_NUM_THREADS; default: torch's choice)")
    p.add_argument("--seeds", type=int, nargs="+", metavar="K",
                   help="train every (set, method) once per seed and report means and ranges (default: one run)")
    args = p.parse_args(argv)
    global THREADS
    THREADS = args.threads

    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    extras = dict(zip(("rings", "moons-far"), extra_sets(work)))
    data = [extras.get(d, d) for d in args.data] if args.data else [*TOY_SETS, *extras.values()]
    extra = ["--steps", "30", "--set", 'net={"hidden": 32, "depth": 2}'] if args.quick else []
    print("command:  python -m cmtutor.benchmarks.toy2d " + " ".join(argv if argv is not None else sys.argv[1:]))
    print(f"hardware: {hardware()}")
    print(f"date:     {time.strftime('%Y-%m-%d %H:%M')}")
    bars = ", ".join(f"{m} 1-step <= {b1}" + (f" and 2-step <= {b2}" if b2 else "") for m, (b1, b2) in BARS.items())
    print(f"bars:     {bars}, others 1-step <= {DEFAULT_BAR[0]}; training <= {TIME_BAR_S:.0f} s\n", flush=True)
    print(f"parallel: {args.jobs} training(s) at a time, {args.threads or 'default'} thread(s) each\n", flush=True)

    command = "python -m cmtutor.benchmarks.toy2d " + " ".join(argv if argv is not None else sys.argv[1:])
    results = Path(args.results) if args.results else (None if args.quick else RESULTS_DIR / "toy2d.json")
    stored = json.loads(results.read_text()) if results is not None and results.exists() else {}
    commands = [*stored.get("commands", []), command]
    MEASURED.clear()
    MEASURED.update({"hardware": hardware(), "date": time.strftime("%Y-%m-%d"),
                "parallel": f"{args.jobs} job(s), {args.threads or 'default'} thread(s) each",
                "timed": is_timed(args.jobs, args.threads, torch.cuda.is_available(), os.cpu_count() or 1)})

    def save(rows: list[Row]) -> None:
        write_json(work / "results.json", results_document(merge_rows([], rows), [command]))
        if results is not None:
            write_json(results, results_document(merge_rows(stored.get("rows", []), rows), commands))

    rows = run_all(data, args.methods, work, extra, args.jobs, on_row=save, seeds=args.seeds)
    save(rows)
    if args.seeds is not None and len(args.seeds) > 1:
        summaries = summarize(rows)
        print("\nmean (range) over the seeds; the verdict applies the bars to the means:")
        for s in summaries:
            _print_summary(s)
        failed_n = sum(s.verdict() != "pass" for s in summaries)
        print(f"\n{len(summaries) - failed_n} passed, {failed_n} failed (means over {len(args.seeds)} seeds)")
        return 0
    failed = [r for r in rows if r.verdict() != "pass"]
    print(f"\n{len(rows) - len(failed)} passed, {len(failed)} failed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
