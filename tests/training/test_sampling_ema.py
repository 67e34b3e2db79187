"""The sampling EMA's warm-up (``TrainConfig.ema_warmup``, ``cmtutor.core.ema.warmed_up_decay``).

A constant decay from step 1 kept 37 % of the step-1 weights after 1000 steps at 0.999, so short image runs
sampled an average dominated by their first, untrained weights (and GC's generator, the EMA, was one).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from cmtutor.config import TrainConfig, default_config
from cmtutor.core.ema import warmed_up_decay
from cmtutor.errors import UserError
from cmtutor.methods import METHODS
from cmtutor.training import build_run, checkpoint_dict, resume_run, train_steps

TINY = {"hidden": 16, "depth": 2, "emb_dim": 8}


def _cfg(**kw: Any) -> TrainConfig:
    return default_config("ict", "moons", steps=12, batch_size=32, device="cpu", net=TINY, log_every=10**9,
                          checkpoint_every=10**9, warmup_steps=1, ema_decay=0.99, **kw)


def first_weights_share(cfg: TrainConfig, steps: int) -> float:
    """How much of the weights after the first step the sampling EMA still holds after ``steps`` steps."""
    return math.prod(cfg.sampling_decay(cfg.ema_decay, k) for k in range(1, steps))


def test_warmed_up_decay_in_closed_form() -> None:
    assert warmed_up_decay(0.999, 0) == 0.0  # the first update copies the weights
    assert warmed_up_decay(0.999, 999) == pytest.approx(0.99)  # 1 − 1000^(−2/3)
    assert warmed_up_decay(0.999, 7) == pytest.approx(0.75)  # 1 − 8^(−2/3)
    assert warmed_up_decay(0.999, 10**6) == 0.999  # capped
    k = round(0.001 ** -1.5) - 1  # the step where the ramp reaches 0.999
    assert warmed_up_decay(0.999, k - 10) < 0.999 <= warmed_up_decay(0.999, k + 10)


@pytest.mark.parametrize("data", ["digits", "cifar10"])
@pytest.mark.parametrize("method", sorted(METHODS))
def test_image_runs_forget_their_first_weights(method: str, data: str) -> None:
    cfg = default_config(method, data, steps=3000)
    assert cfg.ema_warmup == "power"
    assert first_weights_share(cfg, 1000) < 1e-6  # a constant 0.999 keeps 0.37, 0.9999 keeps 0.90
    assert cfg.sampling_decay(cfg.ema_decay, 10**7) == cfg.ema_decay  # long runs reach the configured decay


def test_the_ema_averages_with_the_ramped_decay() -> None:
    run = build_run(_cfg(ema_warmup="power"))
    expected = None
    for log in train_steps(run):
        k = log["step"] - 1  # the update after k steps
        w = [p.detach().clone() for p in run.nets.model.parameters()]
        d = warmed_up_decay(0.99, k)
        expected = w if expected is None else [d * e + (1 - d) * x for e, x in zip(expected, w)]
    assert expected is not None
    for e, p in zip(expected, run.nets.ema.module.parameters()):
        torch.testing.assert_close(p, e)
    plain = build_run(_cfg())
    for _ in train_steps(plain):
        pass
    assert all(torch.equal(a, b) for a, b in zip(plain.nets.model.parameters(), run.nets.model.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(plain.nets.ema.parameters(), run.nets.ema.parameters()))


def test_a_resumed_run_averages_as_an_unbroken_one() -> None:
    whole = build_run(_cfg(ema_warmup="power", extra_ema_decays=[0.9]))
    for _ in train_steps(whole):
        pass
    run = build_run(_cfg(ema_warmup="power", extra_ema_decays=[0.9]))
    for _ in train_steps(run, until=5):
        pass
    resumed = resume_run(checkpoint_dict(run))
    for _ in train_steps(resumed):
        pass
    for a, b in zip([whole.nets.ema, whole.nets.extra_emas[0.9]], [resumed.nets.ema, resumed.nets.extra_emas[0.9]]):
        assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_config_without_warm_up_is_unchanged_and_a_bad_name_is_one_error() -> None:
    assert "ema_warmup" not in _cfg().to_dict()  # 2D configs and their cache keys are as before
    assert TrainConfig.from_dict(_cfg(ema_warmup="power").to_dict()).ema_warmup == "power"
    with pytest.raises(UserError, match="ema_warmup must be one of none, power"):
        _cfg(ema_warmup="linear")


def test_gc_generates_with_the_warmed_up_ema() -> None:
    cfg = default_config("gc", "digits", steps=3, batch_size=8, device="cpu", log_every=10**9,
                         checkpoint_every=10**9)
    run = build_run(cfg)
    weights = []
    for _ in train_steps(run, until=2):
        weights.append([p.detach().clone() for p in run.nets.model.parameters()])
    generator = run.method.generator(run.nets)
    assert generator is run.nets.ema.module  # the official code's generator_induced_traj_ema
    d = warmed_up_decay(cfg.ema_decay, 1)
    assert d == pytest.approx(1 - 2 ** (-2 / 3))  # 0.37, where a constant EMA would keep 0.999 of step 1
    for g, w1, w2 in zip(generator.parameters(), *weights):
        torch.testing.assert_close(g, d * w1 + (1 - d) * w2)
