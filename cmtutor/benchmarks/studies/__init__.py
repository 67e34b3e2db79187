"""Multi-seed studies behind the claims tables of notebooks 04–06 and 09 (GC/OT, TCM, Direct CM, sCM/MeanFlow).

Each study module (``couplings``, ``truncated``, ``direct``, ``continuous``) has a ``Study`` dataclass (its settings), a
``run(study)`` function that trains every configuration for every seed and returns a JSON-ready dict, and
a ``claims(results)`` function that turns that dict into the rows of the notebook's claims table.

Results are small JSON files in ``cmtutor/benchmarks/results/`` (committed): the notebooks load and plot
them by default, ``python -m cmtutor.benchmarks.papers`` regenerates them (and prints the tables), and a
notebook reruns its study when ``CMTUTOR_RERUN_STUDIES`` names it (or is ``all``).

Verdicts are mechanical, fixed before looking at the numbers: a claimed ordering "holds" when it holds for
*every* seed (paired by seed), "fails" when the reverse holds for every seed, and is "unclear" otherwise.
A claim is *reproduced* when all its parts hold, *not reproduced* when none does, *partly* otherwise.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cmtutor.core.metrics import subsample, w2_exact, w2_floor
from cmtutor.hardware.accel import hardware as device

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"


# --- storage -----------------------------------------------------------------------------------------

def _rounded(obj: Any, digits: int = 5) -> Any:
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}")
    if isinstance(obj, dict):
        return {k: _rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded(v, digits) for v in obj]
    if isinstance(obj, np.generic):
        return _rounded(obj.item(), digits)
    return obj


def results_path(name: str, folder: Path | None = None) -> Path:
    return (folder or RESULTS_DIR) / f"{name}.json"


def save_results(name: str, results: dict[str, Any], folder: Path | None = None) -> Path:
    """Write a study's results as (rounded) JSON; returns the path."""
    path = results_path(name, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(_rounded(results), separators=(",", ":"), sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def load_results(name: str, folder: Path | None = None) -> dict[str, Any]:
    return json.loads(results_path(name, folder).read_text())


def rerun_requested(name: str) -> bool:
    """True when ``CMTUTOR_RERUN_STUDIES`` is ``all`` or lists ``name`` (comma-separated)."""
    value = os.environ.get("CMTUTOR_RERUN_STUDIES", "")
    names = {v.strip() for v in value.split(",") if v.strip()}
    return "all" in names or name in names


def load_or_run(name: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The stored results of study ``name``, or a fresh run (stored) if requested or missing."""
    if rerun_requested(name) or not results_path(name).exists():
        results = run()
        save_results(name, results)
    return load_results(name)


def hardware() -> str:
    """One line describing where the numbers were measured."""
    return f"{device()}; {platform.system()}; torch {torch.__version__}; {os.cpu_count()} logical CPUs"


# --- quality -----------------------------------------------------------------------------------------

@dataclass
class Evaluator:
    """One-step (or K-step) W2 ratio against held-out data: W2(n generated, n held-out) / floor.

    The floor is the W2 between two independent n-point samples of the held-out data, so a perfect
    model scores about 1. ``repeats`` averages over independent noise and held-out subsamples.
    """

    heldout: np.ndarray
    n: int = 1000
    repeats: int = 1

    def __post_init__(self) -> None:
        self.floor = w2_floor(self.heldout, self.n, repeats=3, seed=1000)

    def w2_ratio(self, sampler: Any, steps: int = 1, seed: int = 0) -> float:
        vals = []
        for r in range(self.repeats):
            x = sampler.sample(self.n, steps=steps, seed=10_000 + seed + 7 * r).numpy()
            vals.append(w2_exact(x, subsample(self.heldout, self.n, seed + r)))
        return float(np.mean(vals)) / self.floor


def standardized_heldout(run: Any, n: int, seed: int = 0) -> torch.Tensor:
    """n held-out points of a run's data set, in the run's standardised coordinates."""
    x = torch.as_tensor(subsample(run.data.heldout, n, seed), dtype=torch.float32)
    return run.standardizer.encode(x)


# --- claims ------------------------------------------------------------------------------------------

def mean_std(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def fmt(values: Sequence[float], digits: int = 3) -> str:
    """``mean ± std`` over seeds."""
    m, s = mean_std(values)
    return f"{m:.{digits}g} ± {s:.2g}"


def ordering(better: Sequence[float], worse: Sequence[float], lower_is_better: bool = True) -> str:
    """'holds' if ``better`` beats ``worse`` in every seed (paired), 'fails' if it loses in every seed, else 'unclear'."""
    b, w = np.asarray(better, dtype=float), np.asarray(worse, dtype=float)
    d = (b - w) if lower_is_better else (w - b)
    if np.all(d < 0):
        return "holds"
    if np.all(d > 0):
        return "fails"
    return "unclear"


def verdict(parts: Sequence[str]) -> str:
    """'reproduced' if every part holds, 'not reproduced' if none does, 'partly' otherwise."""
    if all(p == "holds" for p in parts):
        return "reproduced"
    if not any(p == "holds" for p in parts):
        return "not reproduced"
    return "partly"


def table(rows: Sequence[dict[str, str]], columns: Sequence[str] = ("claim", "measurement", "verdict")) -> str:
    """A plain-text (Markdown) table of claim rows."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(" --- " for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(row[c]) for c in columns) + " |")
    return "\n".join(lines)


__all__ = ["Evaluator", "RESULTS_DIR", "fmt", "hardware", "load_or_run", "load_results", "mean_std", "ordering",
           "rerun_requested", "save_results", "standardized_heldout", "table", "verdict"]
