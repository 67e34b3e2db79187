"""Sample-quality metrics for vector data.

* :func:`w2_exact`: the exact 2-Wasserstein distance between two equal-size point clouds, through the
  optimal assignment (``scipy.optimize.linear_sum_assignment``, i.e. the Hungarian/LAPJV solver).
* :func:`sliced_w2`: the sliced 2-Wasserstein distance (random 1D projections, sorted matching).
* :func:`mmd`: the squared maximum mean discrepancy with a sum of Gaussian kernels (unbiased estimate).
* :func:`w2_floor`: the W2 between two *independent* samples of the data itself: the best any model can
  score at that sample size, used to report quality as a ratio W2/floor.

How many draws to average. One W2 between two sets of 1000 points is itself a noisy number: on thin
structures (two rings of width 0.05) it varies by about ±15% from one draw to the next, so a ratio of two
3-draw averages can sit 20–30% above 1 for samples drawn from the data distribution itself. The command
line's ``evaluate`` therefore averages :data:`EVAL_REPEATS` draws of both and reports the ratio's standard
error (``w2_ratio_se``); notebooks keep the cheaper default of 3 where they compare models side by side.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

#: Draws of W2 and of its floor that ``python -m cmtutor evaluate`` averages (module docstring).
EVAL_REPEATS = 20


def _np(x: object) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()  # type: ignore[union-attr]
    return np.asarray(x, dtype=np.float64)


def w2_exact(a: object, b: object) -> float:
    """Exact W2 between two point clouds of equal size n: √(min_π (1/n)Σ‖a_i − b_π(i)‖²)."""
    a, b = _np(a), _np(b)
    if a.shape != b.shape:
        raise ValueError(f"w2_exact needs equal shapes, got {a.shape} and {b.shape}")
    cost = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    return float(np.sqrt(cost[rows, cols].mean()))


def sliced_w2(a: object, b: object, n_proj: int = 256, seed: int = 0) -> float:
    """Sliced W2: √(mean over random unit directions θ of W2²(θᵀa, θᵀb)), equal sizes."""
    a, b = _np(a), _np(b)
    theta = np.random.default_rng(seed).standard_normal((a.shape[1], n_proj))
    theta /= np.linalg.norm(theta, axis=0, keepdims=True)
    pa, pb = np.sort(a @ theta, axis=0), np.sort(b @ theta, axis=0)
    return float(np.sqrt(((pa - pb) ** 2).mean()))


def mmd(a: object, b: object, bandwidths: Sequence[float] = (0.1, 0.2, 0.5, 1.0, 2.0)) -> float:
    """Unbiased squared MMD with k(x, y) = Σ_h exp(−‖x − y‖²/(2h²)) (Gretton et al. 2012, Eq. 3)."""
    a, b = _np(a), _np(b)

    def k(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        d2 = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
        return sum(np.exp(-d2 / (2 * h * h)) for h in bandwidths)

    n, m = len(a), len(b)
    kaa, kbb, kab = k(a, a), k(b, b), k(a, b)
    return float((kaa.sum() - np.trace(kaa)) / (n * (n - 1)) + (kbb.sum() - np.trace(kbb)) / (m * (m - 1))
                 - 2 * kab.mean())


def subsample(x: object, n: int, seed: int) -> np.ndarray:
    """n rows of x drawn without replacement (all of x, shuffled, if it has fewer)."""
    x = _np(x)
    idx = np.random.default_rng(seed).permutation(len(x))[:n]
    return x[idx]


def repeated_draws(metric: Callable[[np.ndarray, np.ndarray], float], a: object, b: object, n: int = 1000,
                   repeats: int = 3, seed: int = 0) -> list[float]:
    """``metric`` on ``repeats`` independent pairs of size-n subsamples of a and of b, one value per pair."""
    return [metric(subsample(a, n, seed + 2 * r), subsample(b, n, seed + 2 * r + 1)) for r in range(repeats)]


def repeated(metric: Callable[[np.ndarray, np.ndarray], float], a: object, b: object, n: int = 1000,
             repeats: int = 3, seed: int = 0) -> float:
    """Average ``metric`` over ``repeats`` independent size-n subsamples of a and of b."""
    return float(np.mean(repeated_draws(metric, a, b, n, repeats, seed)))


def w2_floor_draws(data: object, n: int = 1000, repeats: int = 3, seed: int = 0) -> list[float]:
    """W2 between two disjoint size-n subsamples of ``data``, one value per draw (see :func:`w2_floor`)."""
    x = _np(data)
    half = min(n, len(x) // 2)
    vals = []
    for r in range(repeats):
        perm = np.random.default_rng(seed + r).permutation(len(x))
        vals.append(w2_exact(x[perm[:half]], x[perm[half:2 * half]]))
    return vals


def w2_floor(data: object, n: int = 1000, repeats: int = 3, seed: int = 0) -> float:
    """W2 between two disjoint size-n subsamples of ``data``, averaged over ``repeats`` draws.

    This is the finite-sample floor: a perfect model's samples are as far from n held-out points as
    another n data points are. Needs at least 2n points (uses ⌊len/2⌋ per side if fewer).
    """
    return float(np.mean(w2_floor_draws(data, n, repeats, seed)))


def ratio_se(num: Sequence[float], den: Sequence[float]) -> float:
    """Standard error of mean(num) / mean(den) for independent draws (first-order delta method).

    se(r)/r = √(se(num)²/mean(num)² + se(den)²/mean(den)²), se = sample std/√draws; 0 with one draw.
    """
    a, b = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        return 0.0
    rel = (a.std(ddof=1) / np.sqrt(len(a)) / a.mean()) ** 2 + (b.std(ddof=1) / np.sqrt(len(b)) / b.mean()) ** 2
    return float(a.mean() / b.mean() * np.sqrt(rel))


def vector_metrics(samples: object, heldout: object, n: int = 1000, repeats: int = 3, seed: int = 0
                   ) -> dict[str, float]:
    """The standard vector report: w2, its floor and ratio (with its standard error over the ``repeats``
    draws), sliced_w2 and mmd (size-n subsamples)."""
    s, h = _np(samples), _np(heldout)
    n = min(n, len(s), len(h) // 2)
    w2s = repeated_draws(w2_exact, s, h, n, repeats, seed)
    floors = w2_floor_draws(h, n, repeats, seed + 1000)
    w2, floor = float(np.mean(w2s)), float(np.mean(floors))
    return {
        "n": n,
        "repeats": repeats,
        "w2": w2,
        "w2_floor": floor,
        "w2_ratio": w2 / floor,
        "w2_ratio_se": ratio_se(w2s, floors),
        "sliced_w2": repeated(sliced_w2, s, h, n, repeats, seed),
        "mmd": mmd(subsample(s, n, seed), subsample(h, n, seed + 1)),
    }


def transport_cost(x: object, z: object) -> float:
    """Mean squared noise-to-data transport cost E‖x − z‖² of paired points (GC paper, Section 5)."""
    x, z = _np(x), _np(z)
    return float(((x - z) ** 2).reshape(len(x), -1).sum(1).mean())


def ode_error(samples: object, reference: object) -> float:
    """Mean over samples of ‖x − x_ref‖²/D: the distance to the teacher's ODE solution from the same noise
    (Vouitsis et al. 2024, "ODE-solving error")."""
    s, r = _np(samples), _np(reference)
    if s.shape != r.shape:
        raise ValueError(f"ode_error needs equal shapes, got {s.shape} and {r.shape}")
    return float(((s - r) ** 2).reshape(len(s), -1).mean(1).mean())
