"""The README's figure: one-step samples of every method on 2D moons, beside the teacher's ODE samples.

    python -m cmtutor.course.readme_figure          # writes docs/figures/one_step_samples.png

Every model is the notebook-sized configuration of :func:`cmtutor.course.toy2d.notebook_config` (2000 steps of
the small MLP; the teacher is the course's), trained once and cached like the notebooks' models, so a rerun
only redraws. On 2 CPU cores with an empty cache it trains 8 models in a few minutes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cmtutor.course import plots, toy2d
from cmtutor.course.cache import load_or_train
from cmtutor.data.vectors import load_vectors
from cmtutor.training import Run

FIGURE = Path(__file__).resolve().parents[2] / "docs" / "figures" / "one_step_samples.png"
#: Panel titles of the consistency methods, in the course's order.
TITLES = {"cd": "CD", "ct": "CT", "ict": "iCT", "gc": "GC", "ot": "OT", "tcm": "TCM", "direct": "Direct CM"}
STEPS = 2000


def trained_runs() -> dict[str, Run]:
    """The teacher and one run of every consistency method on moons (cached)."""
    teacher = toy2d.teacher()
    runs: dict[str, Run] = {}
    for method in TITLES:
        source = runs["ict"] if method == "tcm" else teacher if method in ("cd", "direct") else None
        cfg = toy2d.notebook_config(method, steps=STEPS)
        runs[method] = load_or_train(cfg, f"readme-{method}", teacher=source)
    return {"diffusion": teacher, **runs}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cmtutor.course.readme_figure", description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(FIGURE))
    args = p.parse_args(argv)
    runs = trained_runs()
    data = load_vectors(toy2d.TOY).heldout[:2000]
    panels = {"teacher, Heun 40 steps": runs.pop("diffusion").sampler().sample(2000, steps=40, seed=0)}
    panels.update({f"{TITLES[m]}, 1 step": run.sampler().sample(2000, steps=1, seed=0) for m, run in runs.items()})
    fig = plots.clouds(panels, data=data, ncols=4, size=2.4)
    fig.suptitle(f"moons, notebook-sized runs ({STEPS} steps each): one network evaluation per sample, grey: held-out "
                 "data.\nCT is far from converged at this budget; notebook 03 shows why and what iCT changes.")
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
