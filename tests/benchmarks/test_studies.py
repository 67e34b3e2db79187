"""The multi-seed studies of notebooks 04–06 and 09: a small regeneration (2 seeds, tiny runs) and the stored
results."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from cmtutor.benchmarks.studies import (RESULTS_DIR, continuous, couplings, direct, load_results, ordering, truncated,
                                        verdict)

NET = {"hidden": 16, "depth": 1}
VERDICTS = {"reproduced", "partly", "not reproduced"}


@pytest.fixture(autouse=True)
def _data_root(data_root: Path) -> None:
    """Every test here: caches go to tmp, not to datasets/."""


def _finite(values: object) -> bool:
    return bool(np.all(np.isfinite(np.asarray(values, dtype=float))))


def test_verdict_rule() -> None:
    assert ordering([1, 2, 3], [2, 3, 4]) == "holds" and ordering([3, 4, 5], [2, 3, 4]) == "fails"
    assert ordering([1, 4], [2, 3]) == "unclear" and ordering([2, 3], [1, 4], lower_is_better=False) == "unclear"
    assert verdict(["holds", "holds"]) == "reproduced" and verdict(["holds", "fails"]) == "partly"
    assert verdict(["unclear", "fails"]) == "not reproduced"


def test_couplings_study_trains_the_papers_gc_not_the_command_line_default() -> None:
    """Notebook 04 tests the paper's GC (μ constant, iCT's pseudo-Huber); the command line's 2D default
    anneals μ to 0 with squared L2. The study pins its setting, so its stored results stay valid."""
    from cmtutor.config import default_config

    cli = default_config("gc", "moons").hp
    assert cli["distance"] == "l2" and cli["mu_end"] == 0.0 and cli["mu"] == 0.5
    for mu in (0.25, 1.0):
        hp = couplings.config("gc", couplings.Study(), mu=mu).hp
        assert hp["mu"] == mu and hp["mu_end"] is None and hp["distance"] == "pseudo_huber"
        assert hp == {**default_config("ict", "moons").hp, **{k: hp[k] for k in ("mu", "mu_end", "gc_model",
                                                                                  "gc_start")}}


def test_couplings_study_small_regeneration() -> None:
    s = couplings.Study(steps=30, seeds=(0, 1), mus=(0.5, 1.0), eval_every=15, n_eval=150, n_levels=5, net=NET,
                        batch_size=64)
    res = couplings.run(s)
    assert set(res["runs"]) == {"ic", "ot", "gc_0.5", "gc_1"}
    for rec in res["runs"].values():
        assert rec["steps"] == [15, 30] and len(rec["curves"]) == 2 and _finite(rec["curves"])
        assert all(0.5 < v < 50 for v in rec["final_1step"])
    t = {k: np.array(v) for k, v in res["transport"].items()}
    assert t["ic"].shape == t["gc"].shape == (2, 4)
    assert np.allclose(t["ic"], 4.0, rtol=0.25)  # E‖x‖² + E‖z‖² = 2 + 2 for standardised 2D data
    assert np.all(t["ot"] < 0.5 * t["ic"])  # OT pairs are much cheaper in 2D
    assert np.allclose(t["gc"][:, 0], t["ic"][:, 0], rtol=0.02)  # at σ_min, f(x + σz, σ) = x + σz ≈ x: IC pairs
    assert math.isclose(sum(res["training_weights"]), 1.0, rel_tol=1e-4)
    assert len(res["samples"]["gc_1"]) == 500
    rows = couplings.claims(res)
    assert len(rows) == 2 and all(r["verdict"] in VERDICTS for r in rows)


def test_truncated_study_small_regeneration() -> None:
    s = truncated.Study(stage1_steps=30, stage2_steps=20, seeds=(0, 1), t_primes=(2.0,), w_bs=(0.0,),
                        eval_every=10, n_eval=150, net=NET, batch_size=64, small_net={"hidden": 8, "depth": 1})
    res = truncated.run(s)
    assert set(res["runs"]) == {"stage1", "ict_same_budget", "tcm", "no_anchor", "t_prime=2", "w_b=0"}
    assert res["runs"]["ict_same_budget"]["config"]["steps"] == 50
    assert all(_finite(r["final_1step"]) and _finite(r["final_2step"]) for r in res["runs"].values())
    c = res["curves"]
    assert c["tcm"]["steps"] == [0, 10, 20]
    for k in ("tcm", "no_anchor", "w_b=0"):  # stage 2 starts as exactly the stage-1 function
        assert [w[0] for w in c[k]["w2"]] == [w[0] for w in c["tcm"]["w2"]]
    assert set(res["capacity"]["runs"]) == {"stage1", "ict_same_budget", "tcm"}
    assert res["capacity"]["net"] == s.small_net and len(res["capacity"]["runs"]["tcm"]["final_1step"]) == 2
    rows = truncated.claims(res)
    assert len(rows) == 2 and all(r["verdict"] in VERDICTS for r in rows)


def test_direct_study_small_regeneration() -> None:
    s = direct.Study(steps=10, seeds=(0, 1), eval_every=5, n_eval=150, teacher_steps=20, ode_steps=4, batch_size=64)
    res = direct.run(s)
    assert direct.matched_steps(s) == 3  # 10 CD steps × 2 teacher calls ≤ 3 Direct steps × (2 × 4)
    for m in ("cd", "direct", "cd_n10"):
        rec = res["runs"][m]
        assert rec["steps"] == ([3, 5, 10] if m == "direct" else [5, 10]) and len(rec["ode_error"]) == 2
        assert np.all(np.array(rec["ode_error"]) > 0) and _finite(rec["w2"]) and _finite(rec["final_w2"])
        assert rec["config"]["teacher"] is None and rec["config"]["net"] == res["teacher"]["config"]["net"]
        assert rec["teacher_calls_per_step"] == (8 if m == "direct" else 2)
    assert res["runs"]["cd"]["config"]["hp"]["num_scales"] == 18
    assert res["runs"]["cd_n10"]["config"]["hp"]["num_scales"] == 10
    assert len(res["samples"]["teacher"]) == 150 and res["teacher"]["w2_ratio"] > 0
    rows = direct.claims(res)
    assert len(rows) == 3 and all(r["verdict"] in VERDICTS for r in rows)
    assert "Direct@3" in rows[2]["measurement"]


def test_continuous_study_small_regeneration() -> None:
    s = continuous.Study(steps=10, seeds=(0, 1), eval_every=5, n_eval=150, batch_size=64, net=NET)
    res = continuous.run(s)
    assert set(res["runs"]) == set(continuous.CONFIGS)
    for name, rec in res["runs"].items():
        assert rec["steps"] == [5, 10] and len(rec["w2"]) == 2 and _finite(rec["one_step"]) and _finite(rec["two_step"])
        assert rec["config"]["method"] == continuous.CONFIGS[name][0] and rec["config"]["steps"] == 10
    assert res["runs"]["scm-no-warmup"]["config"]["hp"]["tangent_warmup"] == 0.0
    assert res["runs"]["scm-uniform"]["config"]["hp"]["weighting"] == "uniform"
    assert len(res["samples"]["meanflow"]["2"]) == 500
    rows = continuous.claims(res)
    assert len(rows) == 5 and all(r["verdict"] in VERDICTS for r in rows)


@pytest.mark.parametrize("name", ["couplings", "truncated", "direct", "continuous"])
def test_stored_results_give_the_claims_tables(name: str) -> None:
    """The committed results (what the notebooks plot) have every field the claims need, for >= 3 seeds."""
    assert (RESULTS_DIR / f"{name}.json").exists(), "run `python -m cmtutor.benchmarks.papers`"
    res = load_results(name)
    module = {"couplings": couplings, "truncated": truncated, "direct": direct, "continuous": continuous}[name]
    assert len(res["study"]["seeds"]) >= 3
    rows = module.claims(res)
    assert rows and all(r["verdict"] in VERDICTS and "±" in r["measurement"] for r in rows)
