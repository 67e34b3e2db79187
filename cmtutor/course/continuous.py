"""What notebook 09 computes and draws about continuous-time CMs and MeanFlow (docs/continuous.md): the discrete CT
gradient tending to the continuous one, closed-form flows of Gaussian data, and the flow-map picture."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.axes import Axes
from torch import Tensor, nn

from cmtutor.core import trigflow as tf
from cmtutor.core.jvp import jvp
from cmtutor.course.plots import COLORS


def _flat_grad(loss: Tensor, params: Sequence[nn.Parameter]) -> Tensor:
    grads = torch.autograd.grad(loss, list(params), allow_unused=True)  # sCM's w_φ is not part of f
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)])


def ct_gradient_limit(model: nn.Module, x0: Tensor, z: Tensor, t: Tensor, dts: Sequence[float]
                      ) -> list[tuple[float, float]]:
    """[(Δt, ‖∇L_Δ/Δt − ∇L_cont‖ / ‖∇L_cont‖)]: discrete consistency training tends to the continuous loss (sCM Eq. 7).

    ``model`` is a TrigFlow consistency model in the σ-interface (``make_model(..., "trig")``); x_t = cos t·x₀ + sin t·z
    (z of scale σ_d). The discrete loss is ½‖f_θ(x_t, t) − sg f_θ(x_{t−Δ}, t − Δ)‖², the continuous one
    f_θ(x_t, t)ᵀ·sg(df_θ/dt), df/dt a JVP along (dx_t/dt, 1).
    """
    sd = model.noise.sigma_data  # type: ignore[union-attr]
    params = [p for p in model.parameters() if p.requires_grad]

    def point(tt: Tensor) -> Tensor:
        return tf.expand_like(tt.cos(), x0) * x0 + tf.expand_like(tt.sin(), x0) * z

    def f(x_t: Tensor, tt: Tensor) -> Tensor:
        return model(x_t / tf.expand_like(tt.cos(), x_t), tf.sigma_of_time(tt, sd))

    x_t = point(t)
    with torch.no_grad():
        _, df_dt = jvp(f, (x_t, t), (tf.sct_velocity(x0, z, t), torch.ones_like(t)), mode="exact")
    g_cont = _flat_grad((f(x_t, t) * df_dt).sum(), params)
    out = []
    for dt in dts:
        with torch.no_grad():
            target = f(point(t - dt), t - dt)
        g = _flat_grad(0.5 * (f(x_t, t) - target).pow(2).sum() / dt, params)
        out.append((float(dt), float((g - g_cont).norm() / g_cont.norm())))
    return out


@dataclass(frozen=True)
class GaussianFlow:
    """Flow matching's path z_t = (1 − t)·x + t·ε for data N(m, s²) per coordinate, in closed form.

    z_t ~ N((1 − t)m, a_t²) with a_t² = (1 − t)²s² + t²; the PF-ODE maps each quantile to the same quantile, so
    the flow map, the velocity v and the average velocity u are all exact (MeanFlow's identity can be checked on them).
    """

    m: float = 0.3
    s: float = 0.7

    def a(self, t: Tensor) -> Tensor:
        return ((1 - t) ** 2 * self.s**2 + t**2).sqrt()

    def flow(self, z: Tensor, r: Tensor, t: Tensor) -> Tensor:
        """The ODE's map from time t to time r."""
        r_, t_ = tf.expand_like(r, z), tf.expand_like(t, z)
        return (1 - r_) * self.m + tf.expand_like(self.a(r) / self.a(t), z) * (z - (1 - t_) * self.m)

    def u(self, z: Tensor, r: Tensor, t: Tensor) -> Tensor:
        """The average velocity (z_t − z_r)/(t − r) over [r, t]."""
        return (z - self.flow(z, r, t)) / tf.expand_like(t - r, z)

    def v(self, z: Tensor, t: Tensor) -> Tensor:
        """The instantaneous velocity dz_t/dt."""
        da = (t - (1 - t) * self.s**2) / self.a(t)
        t_ = tf.expand_like(t, z)
        return -self.m + tf.expand_like(da / self.a(t), z) * (z - (1 - t_) * self.m)


def flow_map_picture(ax: Axes, trajectory: Tensor | np.ndarray, levels: Sequence[float], i: int, j: int,
                     data: Tensor | np.ndarray | None = None) -> Axes:
    """One ODE trajectory and what each family learns of it (Boffi et al. 2025's flow-map frame).

    ``trajectory`` [L, D] holds the ODE states at ``levels`` (decreasing σ); i < j index two of them (σ_i > σ_j).
    Drawn: the velocity at x_{σ_i} (diffusion learns it), the jumps to the data end from several states
    (consistency models: X_{σ,0}), and the jump x_{σ_i} → x_{σ_j} (flow maps: MeanFlow, shortcut models, X_{σ_i,σ_j}).
    """
    traj = np.asarray(trajectory)
    if data is not None:
        d = np.asarray(data)
        ax.scatter(d[:, 0], d[:, 1], s=2, color="0.8", zorder=0)
    ax.plot(traj[:, 0], traj[:, 1], color="0.3", lw=1.2, label="PF-ODE trajectory")
    end = traj[-1]
    for k in np.linspace(0, len(traj) - 2, 5).astype(int):
        ax.annotate("", end, traj[k], arrowprops={"arrowstyle": "->", "color": COLORS[0], "lw": 1.2})
    ax.plot([], [], color=COLORS[0], label="consistency model: X(σ → 0)")
    ax.annotate("", traj[j], traj[i], arrowprops={"arrowstyle": "->", "color": COLORS[1], "lw": 2.0})
    ax.plot([], [], color=COLORS[1], lw=2, label=f"flow map: X(σ={levels[i]:.2g} → {levels[j]:.2g})")
    vel = traj[i + 1] - traj[i]
    ax.annotate("", traj[i] + 4 * vel, traj[i], arrowprops={"arrowstyle": "->", "color": COLORS[2], "lw": 2.0})
    ax.plot([], [], color=COLORS[2], lw=2, label="diffusion: the velocity only")
    ax.scatter(*traj[0], color="k", s=20, zorder=3)
    ax.scatter(*end, color="k", marker="*", s=80, zorder=3)
    ax.legend(loc="best", fontsize=8)
    return ax
