"""The plot helpers draw what they say (smoke tests on the Agg backend)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cmtutor.course import plots  # noqa: E402


def test_grid_points_cover_the_square() -> None:
    g = plots.grid_points(2.0, 5)
    assert g.shape == (25, 2) and g.dtype == np.float32
    assert g.min() == -2.0 and g.max() == 2.0


def test_noised_clouds_has_one_panel_per_sigma() -> None:
    x = np.random.default_rng(0).standard_normal((100, 2))
    fig = plots.noised_clouds(x, [0.0, 1.0, 10.0], np.ones_like(x))
    assert [ax.get_title() for ax in fig.axes] == ["σ = 0", "σ = 1", "σ = 10"]
    assert fig.axes[2].get_xlim()[1] > fig.axes[0].get_xlim()[1]  # limits follow the noisy cloud
    plt.close(fig)


def test_vector_field_and_convergence_and_targets() -> None:
    fig, axes = plt.subplots(1, 3)
    pts = plots.grid_points(1.0, 4)
    plots.vector_field(axes[0], pts, -pts * 10 ** np.arange(16)[:, None], data=pts)
    assert len(axes[0].collections) == 2  # the data and the quiver
    x = np.array([1, 2, 4, 8.0])
    plots.convergence(axes[1], {"euler": (x, 1 / x), "heun": (x, 1 / x**2)})
    labels = [ln.get_label() for ln in axes[1].get_lines()]
    assert labels == ["euler", "heun", "slope −1", "slope −2"]
    assert np.allclose(axes[1].get_lines()[3].get_ydata(), 1 / x**2)  # slope −2 through (1, 1)
    plots.one_sample_targets(axes[2], pts, np.zeros(2), pts[:5], {"mean": np.zeros(2)})
    assert len(axes[2].get_legend().get_texts()) == 3
    plt.close(fig)
