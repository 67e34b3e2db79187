"""Reproduce the claims tables of notebooks 04–06 and 09 (GC/OT, TCM, Direct CM, sCM/MeanFlow) from the command line.

    python -m cmtutor.benchmarks.papers                 # run all three studies, store results, print tables
    python -m cmtutor.benchmarks.papers --only tcm      # one study: couplings | truncated | direct | continuous
    python -m cmtutor.benchmarks.papers --tables        # print the tables of the stored results only
    python -m cmtutor.benchmarks.papers --quick         # a small smoke version (2 seeds, few steps; not stored)

Each study trains every configuration for 3 seeds on 2D ``moons`` at the notebooks' size and writes
``cmtutor/benchmarks/results/<study>.json`` (what the notebooks load). The printed report gives the command,
the hardware, each study's wall time and the claims tables: the paper's claim, our measurement
(mean ± standard deviation over seeds) and the verdict, decided by the fixed rule in ``cmtutor.benchmarks.studies``.
On 2 shared CPU cores the full run takes roughly 30–60 minutes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cmtutor.benchmarks.studies import (continuous, couplings, direct, hardware, load_results, save_results, table,
                                        truncated)

STUDIES = {"couplings": couplings, "truncated": truncated, "direct": direct, "continuous": continuous}
ALIASES = {"gc": "couplings", "ot": "couplings", "tcm": "truncated", "direct": "direct", "scm": "continuous",
           "meanflow": "continuous"}


def quick_study(name: str) -> Any:
    """A small version of a study (2 seeds, tiny network, few steps): checks the pipeline, proves nothing."""
    net = {"hidden": 32, "depth": 2}
    if name == "couplings":
        return couplings.Study(steps=150, seeds=(0, 1), mus=(0.5, 1.0), eval_every=50, n_eval=300, n_levels=8,
                               net=net)
    if name == "truncated":
        return truncated.Study(stage1_steps=100, stage2_steps=60, seeds=(0, 1), t_primes=(2.0,), w_bs=(0.0,),
                               eval_every=30, n_eval=300, net=net)
    if name == "continuous":
        return continuous.Study(steps=60, seeds=(0, 1), eval_every=30, n_eval=300, net=net)
    return direct.Study(steps=60, seeds=(0, 1), eval_every=30, n_eval=300, teacher_steps=200, ode_steps=8)


def report(name: str, res: dict[str, Any]) -> str:
    rows = STUDIES[name].claims(res)
    head = (f"## {name}: {res.get('seconds', float('nan')):.0f} s, measured on {res.get('hardware', '?')}\n"
            f"settings: {res['study']}\n")
    return head + table(rows, ("claim", "measurement", "verdict", "parts"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cmtutor.benchmarks.papers", description=__doc__.split("\n")[0])
    p.add_argument("--only", action="append",
                   help="couplings|truncated|direct|continuous (or gc, ot, tcm, scm, meanflow); repeatable")
    p.add_argument("--tables", action="store_true", help="print the tables of the stored results; train nothing")
    p.add_argument("--quick", action="store_true", help="tiny smoke version, written to a temporary folder")
    args = p.parse_args(argv)
    names = list(STUDIES)
    if args.only:
        try:
            names = list(dict.fromkeys(ALIASES.get(n, n) if n not in STUDIES else n for n in args.only))
            for n in names:
                STUDIES[n]  # noqa: B018
        except KeyError as exc:
            p.error(f"unknown study {exc}; choose from {', '.join(STUDIES)}")
    print("command: python -m cmtutor.benchmarks.papers " + " ".join(argv if argv is not None else sys.argv[1:]))
    print(f"hardware: {hardware()}")
    folder = Path(tempfile.mkdtemp(prefix="cmtutor-quick-")) if args.quick else None
    t0 = time.time()
    for name in names:
        if args.tables:
            res = load_results(name)
        else:
            study = quick_study(name) if args.quick else STUDIES[name].Study()
            res = STUDIES[name].run(study, progress=True)
            path = save_results(name, res, folder)
            print(f"stored {path}")
        print()
        print(report(name, res))
        print(flush=True)
    print(f"total: {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
