"""Training with the student's own loss or hook (cmtutor.training.custom_loss, cmtutor.exercises.train_yours): a
correct CD, iCT, GC, TCM or Direct CM function reproduces the library's run bit for bit, and an open exercise
falls back to the library's cached run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from cmtutor.core.losses import pseudo_huber_constant
from cmtutor.course.cache import load_or_train
from cmtutor.course.toy2d import notebook_config
from cmtutor.exercises import train_yours
from cmtutor.methods.cd import cd_loss
from cmtutor.methods.coupling import gc_endpoint, gc_mix
from cmtutor.methods.ct import ict_loss
from cmtutor.methods.direct import direct_target
from cmtutor.methods.tcm import tcm_target
from cmtutor.training import checkpoint_dict, fit
from cmtutor.training.custom_loss import train_with_hook, train_with_loss

NET = {"hidden": 16, "depth": 1}


def _same_weights(a: Any, b: Any) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.nets.model.parameters(), b.nets.model.parameters()))


@pytest.fixture(scope="module")
def teacher() -> Any:
    return fit(notebook_config("diffusion", steps=30, net=NET, log_every=10))


def test_a_correct_cd_loss_trains_the_librarys_cd_run(teacher: Any) -> None:
    cfg = notebook_config("cd", steps=25, net=NET, log_every=5)
    mine = train_with_loss(cd_loss, cfg, teacher)
    library = fit(cfg, teacher=checkpoint_dict(teacher))
    assert _same_weights(mine, library)
    assert [h["loss"] for h in mine.history] == [h["loss"] for h in library.history]


def test_a_correct_ict_loss_trains_the_librarys_ict_run() -> None:
    cfg = notebook_config("ict", steps=25, net=NET, log_every=5)
    mine = train_with_loss(ict_loss, cfg, c=pseudo_huber_constant(2))
    assert _same_weights(mine, fit(cfg))
    assert mine.history[-1]["num_scales"] > 1  # the library still runs iCT's curriculum


def test_a_loss_without_stop_gradient_trains_something_else(teacher: Any) -> None:
    def no_sg(model, teacher, x, z, lo, hi):  # type: ignore[no-untyped-def]
        x_hi = x + hi[:, None] * z
        with torch.no_grad():
            x_lo = teacher(x_hi, hi) + (x_hi - teacher(x_hi, hi)) * (lo / hi)[:, None]
        return (model(x_hi, hi) - model(x_lo, lo)).pow(2).mean()

    cfg = notebook_config("cd", steps=10, net=NET)
    assert not _same_weights(train_with_loss(no_sg, cfg, teacher), fit(cfg, teacher=checkpoint_dict(teacher)))


def test_an_open_exercise_falls_back_to_the_librarys_cached_run(data_root: Path, teacher: Any,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    def unfinished(*args: Any) -> Any:
        raise NotImplementedError("Exercise 2.1")

    cfg = notebook_config("cd", steps=10, net=NET)
    run, yours = train_yours("2.1", unfinished, cfg, "cd-tiny", teacher=teacher)
    assert not yours and "not done yet" in capsys.readouterr().out
    assert _same_weights(run, load_or_train(cfg, "cd-tiny", teacher=teacher))  # the cache entry it made
    run, yours = train_yours("2.1", cd_loss, cfg, "cd-tiny", teacher=teacher)
    # the library's own answer is not credited either: the checker sees the call
    assert not yours and _same_weights(run, load_or_train(cfg, "cd-tiny", teacher=teacher))


def test_a_loss_that_is_not_a_differentiable_scalar_is_refused() -> None:
    cfg = notebook_config("ict", steps=2, net=NET)
    with pytest.raises(ValueError, match="scalar tensor"):
        train_with_loss(lambda model, g, x, z, lo, hi: model(x, hi).detach().mean(), cfg)
    with pytest.raises(ValueError, match="not a consistency method"):
        train_with_loss(cd_loss, notebook_config("diffusion", steps=2, net=NET))


def _gc_endpoint(generator, x, z, sigma, mu, u):  # type: ignore[no-untyped-def]
    return gc_mix(x, gc_endpoint(generator, x, z, sigma), mu, u)


def test_each_exercise_hook_trains_the_librarys_run_with_the_reference_and_another_with_a_mistake(
        teacher: Any) -> None:
    stage1 = fit(notebook_config("ict", steps=20, net=NET))
    cases = [
        (notebook_config("gc", steps=20, net=NET, hp={"mu": 0.5}), "mixed_endpoint", None, _gc_endpoint,
         lambda g, x, z, s, mu, u: _gc_endpoint(g, x, z, s, 1 - mu, u)),
        (notebook_config("tcm", steps=20, net=NET), "truncated_target", stage1, tcm_target,
         lambda f, f1, x, r, tp: tcm_target(f, f1, x, r, tp * 2)),
        (notebook_config("direct", steps=6, net=NET, hp={"ode_steps": 4}), "solve", teacher,
         lambda t, x, s, smin, k: direct_target(t, x, s, smin, k, "heun"),
         lambda t, x, s, smin, k: direct_target(t, x, s, smin, k, "euler")),
    ]
    for cfg, hook, given, right, wrong in cases:
        library = fit(cfg, teacher=checkpoint_dict(given) if given is not None else None)
        assert _same_weights(train_with_hook(right, cfg, hook, given), library), cfg.method
        assert not _same_weights(train_with_hook(wrong, cfg, hook, given), library), cfg.method


def test_an_unknown_hook_is_refused_and_an_open_hook_exercise_falls_back(data_root: Path) -> None:
    with pytest.raises(ValueError, match="no hook 'endpoint'"):
        train_with_hook(_gc_endpoint, notebook_config("gc", steps=2, net=NET), "endpoint")
    cfg = notebook_config("gc", steps=5, net=NET)
    run, yours = train_yours("4.2", lambda *a: a[1], cfg, "gc-tiny", hook="mixed_endpoint")  # x back: wrong
    assert not yours and _same_weights(run, load_or_train(cfg, "gc-tiny"))
