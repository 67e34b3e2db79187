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
from cmtutor.training import checkpoint_dict, fit

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
    figures = ex.static_figures()
    assert len(figures) == len(ex.static_settings)
    assert all(ex.ncols <= 4 and len([a for a in fig.axes if a.get_label() != "<colorbar>"]) == ex.ncols
               and fig._suptitle is not None for fig in figures)


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


def test_run_grid_static_rows_and_labels(runs: dict[str, Any]) -> None:
    grid = {("iCT", 0.0): runs["ict"].sampler("raw"), ("iCT", 0.9): runs["ict"], ("CD", 0.9): runs["cd"]}
    static = [{"model": "CD", "EMA decay": 0.9}, {"model": "iCT", "EMA decay": 0.0},
              {"model": "iCT", "EMA decay": 0.9}]
    ex = explorers.run_grid(grid, axes=("model", "EMA decay"), n=32, static=static, labels={0.0: "0 (raw)"})
    assert ex.static_settings == static
    assert [o[0] for o in ex.controls["EMA decay"].options] == ["0 (raw)", "0.9"]
    _static_has_a_row_per_setting(ex)
    _moved_changes_figure(ex, "EMA decay")


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
    """Stored-study results in the shape of ``cmtutor.benchmarks.studies.truncated.run`` (made-up numbers, 2 seeds)."""
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

    a = [png_bytes(fig, dpi=30) for fig in ex.static_figures()]
    ex.set(**{"t'": 2.0})
    assert [png_bytes(fig, dpi=30) for fig in ex.static_figures()] == a


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


# -- the discretisation explorer: CT's target against the exact ODE, in closed form ----------------------

class GaussDenoiser(torch.nn.Module):
    """D*(x, σ) = s²/(s² + σ²)·x for data N(0, s²I): the PF-ODE is x(σ) = x(σ')·√((s² + σ²)/(s² + σ'²))."""

    def __init__(self, s2: float) -> None:
        super().__init__()
        self.s2 = s2

    def forward(self, x: torch.Tensor, sigma: Any) -> torch.Tensor:
        return self.s2 / (self.s2 + torch.as_tensor(sigma, dtype=x.dtype) ** 2) * x


def test_ct_pair_errors_match_the_gaussian_closed_form_and_fall_with_n() -> None:
    from cmtutor.core.schedules import karras_sigmas
    from cmtutor.explorers.discretisation import ct_pair_errors, nearest_pair

    s2, dim = 0.7, 2
    x = torch.randn(256, dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    den = GaussDenoiser(s2)

    def variance(x_hi: torch.Tensor, s: float) -> torch.Tensor:
        return torch.full((len(x_hi),), dim * s2 * s**2 / (s2 + s**2), dtype=x_hi.dtype)

    out = {}
    for n in (11, 21, 41, 81, 161, 321):
        grid = karras_sigmas(n, 0.002, 10.0)
        i = nearest_pair(grid, 0.5)
        hi, lo = float(grid[i]), float(grid[i - 1])
        assert lo < hi and abs(np.log(hi / 0.5)) <= abs(np.log(float(grid[i + 1]) / 0.5))
        x_hi = x * (s2 + hi**2) ** 0.5
        got = ct_pair_errors(den, variance, x_hi, hi, lo, substeps=32)
        sq = float(x_hi.pow(2).sum(1).mean())
        r = ((s2 + lo**2) / (s2 + hi**2)) ** 0.5
        want = {"step": sq * (1 - r) ** 2, "bias": sq * (1 - (hi - lo) * hi / (s2 + hi**2) - r) ** 2,
                "variance": ((hi - lo) / hi) ** 2 * dim * s2 * hi**2 / (s2 + hi**2)}
        for key in want:
            assert got[key] == pytest.approx(want[key], rel=1e-3), (n, key)
        out[n] = got
    ns = list(out)
    bias = [out[n]["bias"] for n in ns]
    rel_bias = [out[n]["bias"] / out[n]["step"] for n in ns]
    noise = [out[n]["variance"] / out[n]["step"] for n in ns]
    assert all(a > 8 * b for a, b in zip(bias, bias[1:]))  # Euler's local error: ∝ Δσ⁴, 16× per halving
    assert all(a > 2 * b for a, b in zip(rel_bias, rel_bias[1:]))  # small N: biased targets
    # the noise does not vanish relative to the signal: variance/step² → s²/σ² (here 2.8) as N grows
    assert noise == sorted(noise, reverse=True) and noise[-1] == pytest.approx(s2 / hi**2, rel=0.05)


def test_expected_ct_chain_is_euler_with_the_exact_denoiser() -> None:
    from cmtutor.core.schedules import karras_sigmas
    from cmtutor.explorers.discretisation import expected_ct_chain

    s2 = 0.7
    x_max = 10.0 * torch.randn(64, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    exact = x_max * ((s2 + 0.002**2) / (s2 + 100.0)) ** 0.5
    errors = []
    for n in (2, 11, 41, 161):
        grid = karras_sigmas(n, 0.002, 10.0)
        factor = torch.prod(1 - (grid[1:] - grid[:-1]) * grid[1:] / (s2 + grid[1:] ** 2))
        chain = expected_ct_chain(GaussDenoiser(s2), x_max, grid)
        assert torch.allclose(chain, x_max * factor, rtol=1e-10)
        errors.append(float((chain - exact).pow(2).sum(1).mean()))
    assert all(a > 4 * b for a, b in zip(errors, errors[1:]))  # fewer levels: farther from the ODE


def test_one_sample_targets_scatter_around_the_euler_step() -> None:
    from cmtutor.core.posterior import IdealDenoiser, posterior_variance
    from cmtutor.explorers.discretisation import expected_ct_target, one_sample_targets

    data = torch.tensor([[-1.0, 0.0], [1.0, 0.5], [0.2, 1.5]], dtype=torch.float64)
    x_hi, hi, lo = torch.tensor([0.1, 0.4], dtype=torch.float64), 0.8, 0.5
    t = one_sample_targets(x_hi, hi, lo, data, 40_000, torch.Generator().manual_seed(2))
    mean = expected_ct_target(IdealDenoiser(data), x_hi[None], hi, lo)[0]
    var = ((hi - lo) / hi) ** 2 * float(posterior_variance(x_hi[None], hi, data)[0])
    assert torch.allclose(t.mean(0), mean, atol=0.01)
    assert float(t.var(0).sum()) == pytest.approx(var, rel=0.05)


def test_fast_posterior_mean_is_the_ideal_denoiser() -> None:
    from cmtutor.core.posterior import IdealDenoiser
    from cmtutor.explorers.discretisation import FastPosteriorMean

    g = torch.Generator().manual_seed(4)
    data, x = torch.randn(300, 2, generator=g, dtype=torch.float64), torch.randn(50, 2, generator=g, dtype=torch.float64)
    for sigma in (0.01, 0.5, 10.0):
        assert torch.allclose(FastPosteriorMean(data)(3 * x, sigma), IdealDenoiser(data)(3 * x, sigma), atol=1e-10)


def test_discretisation_explorer() -> None:
    x = torch.randn(300, 2, generator=torch.Generator().manual_seed(3))
    ex = explorers.discretisation(x, sizes=(2, 5, 11), sigmas=(0.5, 2.0), n_data=100, n_points=16, n_chain=16,
                                  n_targets=20)
    assert set(ex.controls) == {"N", "σ"}
    _moved_changes_figure(ex, "N")
    _moved_changes_figure(ex, "σ")
    _static_has_a_row_per_setting(ex)
    with pytest.raises(ValueError):
        explorers.discretisation(x, sizes=(1, 5))


def test_explorers_compute_on_one_thread_and_restore_the_setting() -> None:
    from cmtutor.explorers.base import single_threaded

    seen = []
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        single_threaded(lambda: seen.append(torch.get_num_threads()))()
        assert seen == [1] and torch.get_num_threads() == 2
        with pytest.raises(ValueError):
            single_threaded(lambda: (_ for _ in ()).throw(ValueError("boom")))()
        assert torch.get_num_threads() == 2  # restored after an error too
    finally:
        torch.set_num_threads(threads)


def test_one_colour_per_method_across_figures() -> None:
    from cmtutor.course.plots import METHOD_COLORS, method_color, series_colors

    assert method_color("CD, N = 18") == method_color("CD") == METHOD_COLORS["cd"]
    assert method_color("+pairs = iCT") == method_color("IC") == METHOD_COLORS["ict"]
    assert method_color("teacher, Heun 40 steps") == METHOD_COLORS["diffusion"] and method_color("c_skip") is None
    colors = series_colors(["CD, N = 18", "CD, N = 10", "Direct CM", "baseline"])
    assert colors["CD, N = 18"] == METHOD_COLORS["cd"] and colors["Direct CM"] == METHOD_COLORS["direct"]
    # a second run of a method and a series that names none take colours no method uses
    assert not {colors["CD, N = 10"], colors["baseline"]} & set(METHOD_COLORS.values())
    assert len(set(METHOD_COLORS.values())) == len(METHOD_COLORS)
