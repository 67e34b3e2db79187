"""Metrics against brute force and known values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from cmtutor.metrics import mmd, ode_error, sliced_w2, transport_cost, vector_metrics, w2_exact, w2_floor


def test_w2_exact_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    best = min(((a - b[list(p)]) ** 2).sum(1).mean() for p in itertools.permutations(range(6)))
    assert w2_exact(a, b) == pytest.approx(math.sqrt(best))
    assert w2_exact(a, a[::-1]) == pytest.approx(0.0, abs=1e-12)  # a permutation costs nothing
    assert w2_exact(a, a + [3.0, 4.0]) == pytest.approx(5.0)  # a translation costs its length


def test_sliced_is_below_exact_and_mmd_separates() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 2)), rng.normal(size=(300, 2)) + 1.0
    assert sliced_w2(a, b) <= w2_exact(a, b) + 1e-9
    same = mmd(a, rng.normal(size=(300, 2)))
    diff = mmd(a, b)
    assert abs(same) < 0.02 and diff > 10 * abs(same)


def test_floor_and_report() -> None:
    rng = np.random.default_rng(2)
    data = rng.normal(size=(5000, 2))
    floor = w2_floor(data, 1000)
    assert 0.05 < floor < 0.5
    rep = vector_metrics(rng.normal(size=(2000, 2)), data)
    assert rep["w2_ratio"] == pytest.approx(1.0, abs=0.25)  # a perfect model sits at the floor
    bad = vector_metrics(rng.normal(size=(2000, 2)) * 2, data)
    assert bad["w2_ratio"] > 3


def test_transport_cost_and_ode_error() -> None:
    x = np.zeros((4, 3))
    z = np.ones((4, 3))
    assert transport_cost(x, z) == pytest.approx(3.0)
    assert ode_error(x, z) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        ode_error(x, z[:2])
