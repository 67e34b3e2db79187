"""sCM and MeanFlow in closed form: on Gaussian data the PF-ODE, the consistency function and the average velocity
are known exactly, so the tangent, the teacher's velocity and the MeanFlow target can be checked against them."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
from torch import Tensor, nn

from cmtutor.core import meanflow as mf
from cmtutor.core import trigflow as tf
from cmtutor.core.jvp import jvp
from cmtutor.core.noise import VECTOR_NOISE
from cmtutor.core.solvers import consistency_sample, flow_map_sample
from cmtutor.course.continuous import GaussianFlow, ct_gradient_limit
from cmtutor.exercises import check
from cmtutor.nets.build import make_model

S, SD = 0.7, 0.5  # the data's standard deviation and the model's σ_d


@pytest.fixture(autouse=True)
def _float64() -> Iterator[None]:
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def exact_f(x_t: Tensor, t: Tensor) -> Tensor:
    """The consistency function of N(0, S²) data in TrigFlow coordinates: x_σ·S/√(S² + σ²), x_σ = x_t/cos t."""
    sigma = tf.sigma_of_time(t, SD)
    return x_t / tf.expand_like(t.cos(), x_t) * tf.expand_like(S / (S**2 + sigma**2).sqrt(), x_t)


def exact_trig_network(x_scaled: Tensor, t: Tensor) -> Tensor:
    """F with f = cos t·x_t − sin t·σ_d·F equal to :func:`exact_f` (inputs x_t/σ_d and t)."""
    x_t = x_scaled * SD
    return (tf.expand_like(t.cos(), x_t) * x_t - exact_f(x_t, t)) / (tf.expand_like(t.sin(), x_t) * SD)


def exact_denoiser(x_sigma: Tensor, sigma: Tensor) -> Tensor:
    """E[x₀ | x_σ] for N(0, S²) data: x_σ·S²/(S² + σ²)."""
    return x_sigma * tf.expand_like(S**2 / (S**2 + sigma**2), x_sigma)


def test_trigflow_time_is_the_ve_level() -> None:
    sigma = torch.tensor([0.002, 0.5, 3.0, 80.0])
    t = tf.time_of_sigma(sigma, SD)
    torch.testing.assert_close(tf.sigma_of_time(t, SD), sigma)
    assert float(t.max()) < math.pi / 2


def test_teacher_velocity_is_the_pf_ode() -> None:
    """With the exact denoiser, dx_t/dt moves x_t along the ODE: the exact f stays constant (finite difference)."""
    torch.manual_seed(0)
    t = torch.tensor([0.2, 0.7, 1.2])
    x_t = torch.randn(3, 4)
    v = tf.teacher_velocity(exact_denoiser, x_t, t, SD)
    h = 1e-5
    ahead = exact_f(x_t + h * v, t + h)
    behind = exact_f(x_t - h * v, t - h)
    torch.testing.assert_close((ahead - behind) / (2 * h), torch.zeros_like(x_t), atol=1e-7, rtol=0)


def test_sct_velocity_is_the_derivative_of_the_path() -> None:
    x0, z, t = torch.randn(5, 2), torch.randn(5, 2), torch.rand(5)
    h = 1e-6
    path = lambda s: tf.expand_like(s.cos(), x0) * x0 + tf.expand_like(s.sin(), x0) * z  # noqa: E731
    torch.testing.assert_close(tf.sct_velocity(x0, z, t), (path(t + h) - path(t - h)) / (2 * h), atol=1e-8, rtol=0)


def test_tangent_is_cos_t_times_df_dt() -> None:
    """g (r = 1) = cos t·d f/dt along any velocity, f = cos t·x_t − sin t·σ_d·F, for an arbitrary network F."""
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 2))
    F = lambda xs, t: net(torch.cat([xs, t[:, None]], dim=1))  # noqa: E731
    f = lambda x_t, t: tf.expand_like(t.cos(), x_t) * x_t - tf.expand_like(t.sin(), x_t) * SD * F(x_t / SD, t)  # noqa: E731
    x_t, t, v = torch.randn(6, 2), torch.rand(6) * 1.4 + 0.05, torch.randn(6, 2)
    cs = t.cos() * t.sin()
    f_minus, df_cs = jvp(F, (x_t / SD, t), (tf.expand_like(cs, v) * v / SD, cs), mode="exact")
    g = tf.tangent(f_minus, df_cs, x_t, v, t, SD)
    h = 1e-5
    df_dt = (f(x_t + h * v, t + h) - f(x_t - h * v, t - h)) / (2 * h)
    torch.testing.assert_close(g, tf.expand_like(t.cos(), g) * df_dt, atol=1e-8, rtol=0)
    # the warm-up scales only the second term: at r = 0, g = −cos²t·(σ_d F − v)
    g0 = tf.tangent(f_minus, df_cs, x_t, v, t, SD, warmup=0.0)
    torch.testing.assert_close(g0, -tf.expand_like(t.cos() ** 2, v) * (SD * f_minus - v))


def test_tangent_vanishes_at_the_exact_consistency_function() -> None:
    """The continuous-time loss is stationary at the truth: exact F and the exact ODE velocity give g = 0."""
    torch.manual_seed(2)
    t, x_t = torch.tensor([0.05, 0.4, 0.9, 1.4]), torch.randn(4, 3)
    v = tf.teacher_velocity(exact_denoiser, x_t, t, SD)
    cs = t.cos() * t.sin()
    f_minus, df_cs = jvp(exact_trig_network, (x_t / SD, t), (tf.expand_like(cs, v) * v / SD, cs), mode="exact")
    g = tf.tangent(f_minus, df_cs, x_t, v, t, SD)
    torch.testing.assert_close(g, torch.zeros_like(g), atol=1e-10, rtol=0)
    # a wrong velocity (fresh noise in place of the ODE's) does not
    assert float(tf.tangent(f_minus, df_cs, x_t, torch.randn_like(v), t, SD).abs().max()) > 0.1


def test_normalized_tangent_has_rms_below_one() -> None:
    g = torch.randn(4, 3, 8, 8) * torch.tensor([1e-3, 1.0, 10.0, 1e3])[:, None, None, None]
    rms = tf.normalize_tangent(g, 0.1).flatten(1).pow(2).mean(1).sqrt()
    assert bool((rms < 1).all()) and float(rms[-1]) > 0.99 and float(rms[0]) < 0.02


def test_trigflow_model_is_edm_preconditioning() -> None:
    """f = cos²t·x_σ − σ_d·sin t·F: EDM's denoiser with F = −F_net, so an EDM teacher's weights carry over."""
    torch.manual_seed(3)
    trig = make_model({"kind": "mlp", "hidden": 32, "depth": 2}, 2, VECTOR_NOISE, "trig")
    edm = make_model({"kind": "mlp", "hidden": 32, "depth": 2}, 2, VECTOR_NOISE, "edm")
    edm.net.load_state_dict(trig.net.state_dict())
    x, sigma = torch.randn(5, 2), torch.tensor([0.01, 0.3, 1.0, 4.0, 10.0])
    torch.testing.assert_close(trig(x, sigma), edm(x, sigma))
    t = tf.time_of_sigma(sigma, VECTOR_NOISE.sigma_data)
    x_t = tf.expand_like(t.cos(), x) * x
    f_out, log_w = trig(x, sigma, output="trig")
    torch.testing.assert_close(f_out, trig.trig_network(x_t / VECTOR_NOISE.sigma_data, t))
    expected = tf.expand_like(t.cos(), x) * x_t - tf.expand_like(t.sin(), x) * VECTOR_NOISE.sigma_data * f_out
    torch.testing.assert_close(trig(x, sigma), expected)
    assert log_w.shape == (5,)


# --- MeanFlow on Gaussian data N(M, S²): z_t ~ N((1 − t)M, a_t²), a_t² = (1 − t)²S² + t² -----------------------
GAUSS = GaussianFlow(m=0.3, s=S)
flow, exact_u, exact_v = GAUSS.flow, GAUSS.u, GAUSS.v


def test_meanflow_identity_holds_for_the_exact_average_velocity() -> None:
    """v − (t − r)·du/dt, du/dt by the JVP along (v, 0, 1), equals the exact u (Eq. 6)."""
    torch.manual_seed(4)
    t = torch.tensor([0.3, 0.6, 0.9, 0.99])
    r = torch.tensor([0.0, 0.2, 0.5, 0.98])
    z = torch.randn(4, 2)
    v = exact_v(z, t)
    for mode in ("exact", "fd"):
        u, du_dt = jvp(exact_u, (z, r, t), (v, torch.zeros_like(r), torch.ones_like(t)), mode=mode)
        torch.testing.assert_close(mf.meanflow_target(v, du_dt, t, r), u, atol=1e-8 if mode == "exact" else 1e-6,
                                   rtol=0)
    # with the wrong tangent for r (1 instead of 0) the identity fails
    _, wrong = jvp(exact_u, (z, r, t), (v, torch.ones_like(r), torch.ones_like(t)), mode="exact")
    assert float((mf.meanflow_target(v, wrong, t, r) - u).abs().max()) > 1e-3


def test_meanflow_one_step_is_the_exact_transport() -> None:
    """The σ-interface of MeanFlowModel with the exact u maps x_σ to the ODE's endpoint at t = 0."""
    model = make_model({"kind": "mlp", "hidden": 16, "depth": 1}, 2, VECTOR_NOISE, "meanflow")
    model.average_velocity = exact_u  # type: ignore[method-assign]
    sigma = torch.tensor([0.5, 2.0, 10.0])
    x = torch.randn(3, 2)
    t = mf.time_of_sigma(sigma)
    z = x / (1 + sigma)[:, None]
    torch.testing.assert_close(model(x, sigma), flow(z, torch.zeros_like(t), t))


def test_flow_map_sampling_stays_on_the_ode_trajectory() -> None:
    """Two jumps σ_max → τ → 0 with the exact u land where one jump does (the flow map composes), and a
    consistency-style re-noised second step would not: the deterministic sampler is the MeanFlow one."""
    model = make_model({"kind": "mlp", "hidden": 16, "depth": 1}, 2, VECTOR_NOISE, "meanflow")
    model.average_velocity = exact_u  # type: ignore[method-assign]
    z = torch.randn(64, 2, generator=torch.Generator().manual_seed(6))
    one = flow_map_sample(model, z, [10.0])
    two, states = flow_map_sample(model, z, [10.0, 1.0], return_all=True)
    torch.testing.assert_close(two, one)
    sigma = torch.full((64,), 10.0)
    t_mid = torch.full((64,), float(mf.time_of_sigma(1.0)))
    z_mid = flow(z * 10.0 / 11.0, t_mid, mf.time_of_sigma(sigma))  # the ODE's state at σ = 1, in flow coordinates
    torch.testing.assert_close(states[0], z_mid * 2.0)
    renoised = consistency_sample(model, z, [10.0, 1.0], VECTOR_NOISE.sigma_min,
                                  generator=torch.Generator().manual_seed(7))
    assert float((renoised - one).abs().max()) > 0.1


def test_meanflow_time_law() -> None:
    """Logit-normal t and r with r ≤ t; a fraction ``ratio`` has r < t; all inside [t_min, t_max]."""
    torch.manual_seed(5)
    t, r = mf.sample_times(20_000, -0.4, 1.0, 0.25, 0.01, 0.9)
    assert bool((r <= t).all()) and float(t.min()) >= 0.01 and float(t.max()) <= 0.9
    assert abs(float((r < t).double().mean()) - 0.25) < 0.015
    logit = torch.logit(t[(t > 0.011) & (t < 0.899)])
    assert float(logit.median()) > -0.4  # t is the larger of two draws: its median lies above p_mean


def test_adaptive_loss_weights() -> None:
    err = torch.tensor([[3.0, 4.0], [0.0, 0.1]])
    torch.testing.assert_close(mf.adaptive_loss(err, 0.0), torch.tensor([25.0, 0.01]))
    torch.testing.assert_close(mf.adaptive_loss(err, 1.0, c=1e-3), torch.tensor([25 / 25.001, 0.01 / 0.011]))
    # the weight is not differentiated: the gradient is that of ‖Δ‖² times a constant
    e = err.clone().requires_grad_(True)
    mf.adaptive_loss(e, 1.0).sum().backward()
    torch.testing.assert_close(e.grad, 2 * err / (err.pow(2).sum(1, keepdim=True) + 1e-3))


def test_exercise_checkers_accept_the_reference_and_catch_the_usual_slips() -> None:
    """9.1 / 9.2: the reference passes; a time tangent of 1 instead of cos t·sin t (9.1) and a tangent of 1 for r
    instead of 0 (9.2) are caught."""

    def tangent_without_rearrangement(f, x_t, dxt_dt, t, sd, warmup):  # type: ignore[no-untyped-def]
        _, df = jvp(f, (x_t / sd, t), (dxt_dt / sd, torch.ones_like(t)), mode="exact")
        return tf.tangent(f(x_t / sd, t), df, x_t, dxt_dt, t, sd, warmup)

    def target_moving_r(u, z, r, t, v):  # type: ignore[no-untyped-def]
        _, du = jvp(u, (z, r, t), (v, torch.ones_like(r), torch.ones_like(t)), mode="exact")
        return mf.meanflow_target(v, du, t, r)

    assert check("9.1", lambda f, x, dx, t, sd, w: tf.consistency_tangent(f, x, dx, t, sd, w)[1], verbose=False,
                 guard=False)
    assert not check("9.1", tangent_without_rearrangement, verbose=False)
    assert check("9.2", mf.identity_target, verbose=False, guard=False)
    assert not check("9.2", target_moving_r, verbose=False)


def test_discrete_ct_gradient_tends_to_the_continuous_one() -> None:
    """‖∇L_Δ/Δ − ∇L_cont‖/‖∇L_cont‖ shrinks linearly with Δ (sCM Eq. 7): the continuous loss is CT's limit."""
    torch.manual_seed(8)
    model = make_model({"kind": "mlp", "hidden": 32, "depth": 2}, 2, VECTOR_NOISE, "trig")
    x0, z = torch.randn(64, 2), torch.randn(64, 2)
    t = torch.rand(64) * 1.2 + 0.2
    errs = [e for _, e in ct_gradient_limit(model, x0, z, t, [1e-1, 1e-2, 1e-3])]
    assert errs[2] < errs[1] < errs[0] and errs[2] < 1e-2
    assert 5 < errs[1] / errs[2] < 20  # first order in Δ
