"""Notebook-sized configurations: the sampling EMA follows the run length; which runs need a teacher."""

from __future__ import annotations

import pytest

from cmtutor.course import toy2d
from cmtutor.course.images import teacher_of


def test_notebook_ema_window_is_a_tenth_of_the_run() -> None:
    assert toy2d.notebook_ema_decay(1000) == pytest.approx(0.99)
    assert toy2d.notebook_ema_decay(10_000) == pytest.approx(0.999)
    assert toy2d.notebook_ema_decay(10) == 0.9 and toy2d.notebook_ema_decay(10**8) == 0.9999  # clipped
    for steps in (500, 2000, 3000):
        assert 1 / (1 - toy2d.notebook_ema_decay(steps)) == pytest.approx(0.1 * steps)


def test_notebook_config_uses_it_unless_overridden() -> None:
    cfg = toy2d.notebook_config("ict", steps=2000)
    assert cfg.ema_decay == pytest.approx(0.995) and cfg.batch_size == 256 and cfg.net["hidden"] == 128
    assert toy2d.notebook_config("ict", steps=2000, ema_decay=0.9).ema_decay == 0.9


def test_image_benchmarks_train_a_teacher_only_for_methods_that_need_one() -> None:
    """sCM takes a diffusion teacher only for its optional distillation: its image runs train no teacher."""
    assert teacher_of("cd") == "diffusion" and teacher_of("tcm") in ("ict", "ct")
    assert teacher_of("scm") is None and teacher_of("meanflow") is None and teacher_of("ict") is None
