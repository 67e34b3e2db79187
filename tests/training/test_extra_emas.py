"""Several sampling EMAs in one run (``TrainConfig.extra_ema_decays``): they do not change training, an
extra EMA with the main decay equals the main EMA, decay 0 is the raw weights, and resume is exact."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from cmtutor.config import TrainConfig, default_config
from cmtutor.course.cache import cache_key
from cmtutor.training import build_run, checkpoint_dict, fit, resume_run, train_steps

TINY = {"hidden": 16, "depth": 2, "emb_dim": 8}


def _cfg(**kw: Any) -> TrainConfig:
    return default_config("ict", "moons", steps=12, batch_size=32, device="cpu", net=TINY, log_every=10**9,
                          checkpoint_every=10**9, warmup_steps=1, ema_decay=0.9, **kw)


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_extra_emas_leave_training_unchanged_and_average_with_their_decay() -> None:
    plain = fit(_cfg())
    run = fit(_cfg(extra_ema_decays=[0.9, 0.0, 0.99]))
    assert _equal(run.nets.model, plain.nets.model)  # the extra EMAs draw no random numbers
    assert _equal(run.nets.ema, plain.nets.ema)
    assert _equal(run.nets.extra_emas[0.9], run.nets.ema)  # the same decay as the main EMA: the same weights
    assert _equal(run.nets.extra_emas[0.0].module, run.nets.model)  # decay 0: the raw weights
    slow = run.nets.extra_emas[0.99].module
    assert not _equal(slow, run.nets.ema.module)
    assert run.sampler(ema_decay=0.99).model is slow and run.sampler(ema_decay=0.9).model is run.nets.ema.module
    with pytest.raises(ValueError, match="no EMA with decay 0.5"):
        run.sampler(ema_decay=0.5)


def test_extra_emas_resume_exactly() -> None:
    cfg = _cfg(extra_ema_decays=[0.95])
    whole = fit(cfg)
    run = build_run(_cfg(extra_ema_decays=[0.95]))
    for _ in train_steps(run, until=5):
        pass
    resumed = resume_run(checkpoint_dict(run))
    for _ in train_steps(resumed):
        pass
    assert _equal(resumed.nets.extra_emas[0.95], whole.nets.extra_emas[0.95])


def test_runs_without_extra_emas_keep_their_config_and_cache_key() -> None:
    cfg = _cfg()
    assert "extra_ema_decays" not in cfg.to_dict()  # configs and cache keys of earlier runs are unchanged
    with_extra = _cfg(extra_ema_decays=[0.99])
    assert TrainConfig.from_dict(with_extra.to_dict()).extra_ema_decays == [0.99]
    assert cache_key(with_extra) != cache_key(cfg)
