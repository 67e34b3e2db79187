"""Study behind notebook 06: consistency distillation (CD) vs Direct CM from the same diffusion teacher.

Both students start from the course's cached 2D teacher (``cmtutor.course.teacher``) and see the same noisy
points; they differ only in the target (one teacher ODE step + the student's own prediction, vs the teacher's
full ODE solution). Along training we record, from the same unit noise z, the one-step sample's

* ODE-solving error: mean ‖f(σ_max·z) − Φ_teacher(σ_max·z)‖²/D in raw data units, where Φ is the teacher's
  40-step Heun solution (Vouitsis et al. 2024; ``python -m cmtutor evaluate --teacher`` reports the same);
* sample quality: W2 to held-out data divided by the data floor.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cmtutor.benchmarks.studies import Evaluator, fmt, hardware, ordering, verdict
from cmtutor.config import TrainConfig
from cmtutor.core.metrics import ode_error
from cmtutor.course.cache import load_or_train
from cmtutor.course.toy2d import notebook_config
from cmtutor.course.toy2d import teacher as course_teacher
from cmtutor.sampler import DEFAULT_ODE_STEPS
from cmtutor.training import Run, build_run, checkpoint_dict, train_steps

NAME = "direct"


@dataclass
class Study:
    """Settings of the CD vs Direct CM study (defaults: the stored results)."""

    data: str = "moons"
    steps: int = 1500
    seeds: tuple[int, ...] = (0, 1, 2)
    eval_every: int = 150
    n_eval: int = 1000
    batch_size: int = 256
    #: sampling EMA decay. With 0.999 a 2000-step run still carries 0.999^2000 ≈ 14 % of its random initial
    #: weights and the one-step W2/floor of iCT was 1.96 at step 2000 instead of 1.31 with 0.995 (measured).
    ema_decay: float = 0.995
    ode_steps: int = 16
    #: ``cd`` and ``direct`` on the same N = 18 grid; ``cd_n10``: CD at the course's 2D default N = 10
    arms: tuple[str, ...] = ("cd", "direct", "cd_n10")
    #: None: the course's cached teacher (``cmtutor.course.teacher``); an int trains a smaller one (tests)
    teacher_steps: int | None = None


def get_teacher(study: Study) -> Run:
    """The diffusion teacher both students learn from (cached)."""
    if study.teacher_steps is None:
        return course_teacher(study.data)

    cfg = notebook_config("diffusion", study.data, steps=study.teacher_steps, batch_size=study.batch_size)
    return load_or_train(cfg, f"teacher-{study.data}-{study.teacher_steps}")


def student_config(arm: str, study: Study, seed: int = 0) -> TrainConfig:
    """An arm of the study at the notebook size (the student copies the teacher's network): ``"cd"`` and
    ``"direct"`` on the same N = 18 grid (Direct CM's default), so they compare the targets, not the grids;
    ``"cd_n10"`` is CD at the course's 2D default N = 10 (docs/defaults.md#cd-on-2d)."""
    hp = {"direct": {"ode_steps": study.ode_steps}, "cd": {"num_scales": 18}, "cd_n10": {}}[arm]
    method = "direct" if arm == "direct" else "cd"
    return notebook_config(method, study.data, steps=study.steps, seed=seed, batch_size=study.batch_size,
                           ema_decay=study.ema_decay, hp=hp)


def teacher_calls_per_step(arm: str, study: Study) -> int:
    """Teacher evaluations per sample and training step: a Heun step costs two (its last level is above 0)."""
    return 2 * study.ode_steps if arm == "direct" else 2


class OdeErrorMeter:
    """ODE-solving error and W2 ratio of one-step samples from fixed noise (seed ``noise_seed``)."""

    def __init__(self, teacher: Run, evaluator: Evaluator, noise_seed: int = 0) -> None:
        self.n = evaluator.n
        self.seed = noise_seed
        self.evaluator = evaluator
        self.reference = teacher.sampler().sample(self.n, steps=DEFAULT_ODE_STEPS, seed=noise_seed).numpy()

    def __call__(self, run: Run) -> tuple[float, float]:
        x = run.sampler().sample(self.n, steps=1, seed=self.seed).numpy()
        return ode_error(x, self.reference), self.evaluator.w2_ratio(run.sampler(), steps=1, seed=self.seed)


def train_with_curves(cfg: TrainConfig, teacher: Run, meter: OdeErrorMeter, every: int, also: tuple[int, ...] = ()
                      ) -> tuple[Run, list[int], list[float], list[float]]:
    """Train, measuring every ``every`` steps, at the steps in ``also`` and at the end."""
    run = build_run(cfg, teacher=checkpoint_dict(teacher))
    steps, err, w2 = [], [], []
    for logs in train_steps(run):
        k = logs["step"]
        if k % every == 0 or k == cfg.steps or k in also:
            e, q = meter(run)
            steps.append(k)
            err.append(e)
            w2.append(q)
    return run, steps, err, w2


def matched_steps(study: Study) -> int:
    """Direct CM's step at which its teacher evaluations first reach those of a whole CD run."""
    cd_calls = study.steps * teacher_calls_per_step("cd", study)
    return -(-cd_calls // teacher_calls_per_step("direct", study))


def run(study: Study | None = None, progress: bool = False) -> dict[str, Any]:
    """Train every arm (CD at N = 18 and N = 10, Direct CM) for every seed from the same teacher; return the
    JSON-ready results."""
    study = study or Study()
    t0 = time.time()
    teacher = get_teacher(study)
    final = evaluator = Evaluator(teacher.data.heldout, study.n_eval, repeats=3)
    meter = OdeErrorMeter(teacher, evaluator)
    out: dict[str, Any] = {"study": asdict(study), "hardware": hardware(), "floor": evaluator.floor,
                           "teacher": {"config": teacher.cfg.to_dict(), "ode_steps": DEFAULT_ODE_STEPS,
                                       "w2_ratio": final.w2_ratio(teacher.sampler(), steps=DEFAULT_ODE_STEPS)},
                           "runs": {}, "samples": {}, "matched_steps": matched_steps(study)}
    out["samples"]["teacher"] = np.round(meter.reference[:500], 2).tolist()
    for seed in study.seeds:
        for method in study.arms:
            also = (matched_steps(study),) if method == "direct" else ()
            r, steps, err, w2 = train_with_curves(student_config(method, study, seed), teacher, meter,
                                                  study.eval_every, also)
            rec = out["runs"].setdefault(method, {"steps": steps, "ode_error": [], "w2": [], "final_w2": [],
                                                  "teacher_calls_per_step": teacher_calls_per_step(method, study),
                                                  "config": r.cfg.to_dict()})
            rec["ode_error"].append(err)
            rec["w2"].append(w2)
            rec["final_w2"].append(w2[-1])  # the curve's last point (3 held-out subsamples)
            if seed == study.seeds[0]:
                out["samples"][method] = np.round(
                    r.sampler().sample(study.n_eval, steps=1, seed=0).numpy()[:500], 2).tolist()
            if progress:
                print(f"[direct] seed {seed} {method}: ODE error {err[-1]:.4g}, W2/floor {w2[-1]:.3f} "
                      f"({time.time() - t0:.0f} s)", flush=True)
    out["seconds"] = time.time() - t0
    return out


def _at(rec: dict[str, Any], key: str, step: int) -> list[float]:
    i = rec["steps"].index(step)
    return [curve[i] for curve in rec[key]]


def claims(res: dict[str, Any]) -> list[dict[str, str]]:
    """Rows of notebook 06's claims table: (d) Direct CM solves the ODE better than CD, yet samples worse; on the
    same N = 18 grid and the same number of steps (the paper's comparison), against CD at the course's N = 10,
    and at equal teacher evaluations (Direct CM stopped when it has used as many as a whole CD run)."""
    runs = res["runs"]
    dr = runs["direct"]
    err_dr, w2_dr = [e[-1] for e in dr["ode_error"]], dr["final_w2"]
    rows = []
    arms = [("cd", "(d) Direct CM solves the ODE more accurately than CD, yet its samples are worse",
             err_dr, w2_dr, "Direct")]
    if "cd_n10" in runs:
        arms.append(("cd_n10", "(d, CD at the course's N = 10) the same, against CD on its tuned grid",
                     err_dr, w2_dr, "Direct"))
        k = res["matched_steps"]
        if k in dr["steps"]:
            arms.append(("cd_n10", f"(d, equal teacher evaluations) the same, Direct CM stopped at step {k}",
                         _at(dr, "ode_error", k), _at(dr, "w2", k), f"Direct@{k}"))
    for arm, claim, err_d, w2_d, label in arms:
        cd = runs[arm]
        err_cd, w2_cd = [e[-1] for e in cd["ode_error"]], cd["final_w2"]
        parts = [ordering(err_d, err_cd), ordering(w2_cd, w2_d)]
        rows.append({"claim": claim,
                     "measurement": f"ODE error: {label} {fmt(err_d)}, CD {fmt(err_cd)}; "
                                    f"one-step W2/floor: {label} {fmt(w2_d)}, CD {fmt(w2_cd)}",
                     "verdict": verdict(parts), "parts": f"lower ODE error {parts[0]}, worse samples {parts[1]}"})
    return rows
