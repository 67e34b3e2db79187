"""The explorers, without a browser: each builds from tiny trained runs, a moved control re-draws a
different figure, the static figure has one row per fixed setting, and the text nbval compares is fixed.
The coupling functions are checked in closed form (OT is the optimal assignment; GC's μ and σ)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import torch

from cmtutor import explorers
from cmtutor.config import default_config
from cmtutor.explorers.base import Explorer
from cmtutor.train import checkpoint_dict, fit

TINY = {"hidden": 16, "depth": 2, "emb_dim": 8}


def _cfg(method: str, steps: int = 4, **kw: Any) -> Any:
    return default_config(method, "moons", steps=steps, batch_size=64, device="cpu", net=TINY, log_every=10**9,
                          checkpoint_every=10**9, warmup_steps=1, **kw)


@pytest.fixture(scope="module")
def runs() -> dict[str, Any]:
    teacher = fit(_cfg("diffusion", steps=20))
    cd = fit(_cfg("cd"), teacher=checkpoint_dict(teacher))
    ict = fit(_cfg("ict"))
    ict2 = fit(_cfg("ict", seed=1))
    return {"teacher": teacher, "cd": cd, "ict": ict, "ict2": ict2}


def _moved_changes_figure(ex: Explorer, control: str) -> None:
    before, renders = ex.image.value, ex.renders
    widget = ex.controls[control]
    options = [o[1] if isinstance(o, tuple) else o for o in widget.options]
    widget.value = next(v for v in reversed(options) if v != widget.value)
    assert ex.renders == renders + 1
    assert ex.image.value[:8] == b"\x89PNG\r\n\x1a\n" and ex.image.value != before
    mime = ex._repr_mimebundle_()
    assert mime["text/plain"] == repr(ex) and "interactive explorer" in repr(ex)
    assert "model_id" in mime["application/vnd.jupyter.widget-view+json"]


def _static_has_a_row_per_setting(ex: Explorer) -> None:
    assert len(ex.static_figure().axes) == len(ex.static_settings) * ex.ncols


def test_ode_paths(runs: dict[str, Any]) -> None:
    ex = explorers.ode_paths(runs["teacher"], n=32, steps=(1, 2, 4), ref_steps=16, n_paths=8)
    for control in ("steps", "solver", "σ", "point"):
        _moved_changes_figure(ex, control)
    _static_has_a_row_per_setting(ex)
    with pytest.raises(ValueError):
        explorers.ode_paths(runs["ict"])  # not a diffusion teacher


def test_consistency_sampling(runs: dict[str, Any]) -> None:
    ex = explorers.consistency_sampling({"CD": runs["cd"], "iCT": runs["ict"]}, max_steps=3, n=64)
    for control in ("steps", "left", "right"):
        _moved_changes_figure(ex, control)
    _static_has_a_row_per_setting(ex)


def test_run_grid_two_axes_with_a_missing_run(runs: dict[str, Any]) -> None:
    grid = {(10, 0.99): runs["ict"], (10, 0.999): runs["ict2"], (40, 0.99): runs["cd"]}
    ex = explorers.run_grid(grid, axes=("N", "EMA decay"), teacher=runs["teacher"], mark_sigma="N", n=64)
    assert set(ex.controls) == {"N", "EMA decay", "steps"}
    _moved_changes_figure(ex, "N")
    _moved_changes_figure(ex, "EMA decay")  # (40, 0.999) was never trained: drawn as such, no error
    _static_has_a_row_per_setting(ex)
    with pytest.raises(ValueError):
        explorers.run_grid({(1, 2): runs["ict"]}, axes=("one axis",))


def test_run_grid_one_axis(runs: dict[str, Any]) -> None:
    ex = explorers.run_grid({0.5: runs["ict"], 2.0: runs["ict2"]}, axes=("t'",), steps=(1,), n=64)
    assert set(ex.controls) == {"t'"}
    _moved_changes_figure(ex, "t'")


def test_ode_error(runs: dict[str, Any]) -> None:
    ex = explorers.ode_error({"CD": runs["cd"], "Direct CM": runs["ict"]}, teacher=runs["teacher"], n=64)
    _moved_changes_figure(ex, "model")
    _moved_changes_figure(ex, "steps")
    _static_has_a_row_per_setting(ex)


def test_couplings(runs: dict[str, Any]) -> None:
    ex = explorers.couplings(runs["ict"], n=32)
    for control in ("coupling", "μ", "σ_i"):
        ex.set(coupling="GC")
        _moved_changes_figure(ex, control)


def _truncated_results() -> dict[str, Any]:
    """Stored-study results in the shape of ``cmtutor.studies.truncated.run`` (made-up numbers, 2 seeds)."""
    names = ["stage1", "ict_same_budget", "tcm", "no_anchor", "t_prime=0.5", "w_b=0"]
    runs = {k: {"final_1step": [1.5 + 0.1 * i, 1.6 + 0.1 * i], "final_2step": [1.4 + 0.1 * i, 1.45 + 0.1 * i]}
            for i, k in enumerate(names)}
    return {"study": {"t_prime": 1.0, "w_b": 0.1, "t_primes": [0.5], "w_bs": [0.0], "n_eval": 64},
            "runs": runs, "curves": {"tcm": {"steps": [0, 10], "w2": [[1.6, 1.5], [1.7, 1.6]]}}}


def test_truncation_grid_and_controls(runs: dict[str, Any]) -> None:
    res = _truncated_results()
    grid = explorers.truncated.study_grid(res)
    assert grid == {(1.0, 0.1): "tcm", (1.0, "none"): "no_anchor", (0.5, 0.1): "t_prime=0.5", (1.0, 0.0): "w_b=0"}
    ex = explorers.truncation(res, {"tcm": runs["ict"], "no_anchor": runs["ict2"]}, n=64)
    assert ex.values() == {"t'": 1.0, "w_b": 0.1, "steps": 1}
    for control in ("w_b", "t'", "steps"):  # t' = 0.5 with w_b = 0: not in the study, drawn as such
        _moved_changes_figure(ex, control)
    _static_has_a_row_per_setting(ex)
    with pytest.raises(ValueError, match="not in the study"):
        explorers.truncation(res, {"w_b=1": runs["ict"]})
    del res["runs"]["w_b=0"]
    with pytest.raises(ValueError, match="lack the runs"):
        explorers.truncation(res)


def test_static_figure_ignores_moved_controls(runs: dict[str, Any]) -> None:
    ex = explorers.run_grid({0.5: runs["ict"], 2.0: runs["ict2"]}, axes=("t'",), steps=(1,), n=32)
    from cmtutor.explorers.base import png_bytes

    a = png_bytes(ex.static_figure(), dpi=30)
    ex.set(**{"t'": 2.0})
    assert png_bytes(ex.static_figure(), dpi=30) == a


def test_minibatch_ot_is_the_optimal_assignment() -> None:
    g = torch.Generator().manual_seed(0)
    x, z = torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g)
    x0, zp = explorers.minibatch_ot(x, z)
    assert torch.equal(x0, x) and sorted(map(tuple, zp.tolist())) == sorted(map(tuple, z.tolist()))
    best = min(float(((x - z[list(p)]) ** 2).sum()) for p in itertools.permutations(range(6)))
    assert float(((x - zp) ** 2).sum()) == pytest.approx(best, rel=1e-6)
    assert float(((x - zp) ** 2).sum()) <= float(((x - z) ** 2).sum())


def test_generator_coupling_mixes_a_share_mu_and_keeps_the_noise() -> None:
    class Shift(torch.nn.Module):
        def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            return x + sigma[:, None]  # f(x_σ, σ) = x_σ + σ, easy to predict

    g = torch.Generator().manual_seed(1)
    x, z = torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g)
    u = torch.rand(200, generator=g)
    x0, zz = explorers.generator_coupling(Shift(), x, z, 0.5, 0.0, u)
    assert torch.equal(x0, x) and torch.equal(zz, z)  # μ = 0: the independent coupling
    x1, _ = explorers.generator_coupling(Shift(), x, z, 0.5, 1.0, u)
    assert torch.allclose(x1, x + 0.5 * z + 0.5)  # μ = 1: every endpoint is f(x + σ z, σ)
    xm, _ = explorers.generator_coupling(Shift(), x, z, 0.5, 0.3, u)
    replaced = (xm != x).any(1)
    assert torch.equal(replaced, u < 0.3)
    assert 0.2 < float(replaced.float().mean()) < 0.4
    costs = {mu: float(((explorers.generator_coupling(Shift(), x, z, 0.5, mu, u)[0] - z) ** 2).sum(1).mean())
             for mu in (0.0, 1.0)}
    assert np.isfinite(list(costs.values())).all()
