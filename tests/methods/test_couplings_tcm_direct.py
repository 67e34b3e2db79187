"""The defining property of GC, OT, TCM and Direct CM (notebooks 04–06), checked in closed form."""

from __future__ import annotations

import copy
import itertools
import math

import pytest
import torch
from torch import nn

from cmtutor.config import default_config
from cmtutor.core.ema import make_ema
from cmtutor.core.noise import VECTOR_NOISE
from cmtutor.core.schedules import karras_sigmas
from cmtutor.core.solvers import solve_ode
from cmtutor.methods import Nets, get_method
from cmtutor.methods.coupling import GeneratorInducedCoupling, MinibatchOTCoupling, gc_mix, ot_permutation
from cmtutor.methods.direct import DirectConsistencyModel, direct_target, per_sample_karras
from cmtutor.methods.tcm import TruncatedConsistency, karras_step_down
from cmtutor.training.lookahead import DrawAhead


class Recorder(nn.Module):
    """f(x, σ) = w·x/(1 + σ); records (x, σ, grad enabled) of every call."""

    def __init__(self, w: float = 0.5) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))
        self.calls: list[tuple[torch.Tensor, torch.Tensor, bool]] = []

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        s = torch.as_tensor(sigma, dtype=x.dtype)
        s = s.expand(x.shape[0]) if s.ndim == 0 else s
        self.calls.append((x.detach().clone(), s.detach().clone(), torch.is_grad_enabled()))
        return self.w * x / (1 + s[:, None])


def _method(name: str, steps: int = 1000, **hp: object):  # noqa: ANN202
    cfg = default_config(name, "moons", steps=steps, hp=dict(hp))
    return get_method(name)(cfg.hp, VECTOR_NOISE, steps, 2)


def _gc_nets(w_model: float = 0.5, w_ema: float = 2.0) -> Nets:
    model = Recorder(w_model)
    ema = make_ema(model, 0.9)
    with torch.no_grad():
        ema.module.w.fill_(w_ema)  # the EMA differs from the online model, so we can tell them apart
    ema.module.calls.clear()
    return Nets(model=model, ema=ema)


def _gc_endpoints(nets: Nets) -> tuple[torch.Tensor, torch.Tensor]:
    """From the last GC loss call: the endpoint each pair was re-noised from (the same z at both levels) and
    the generator's output x̂ (the Recorder EMA with w = 2 returns 2·x/(1 + σ))."""
    x_gen_in, s_gen, _ = nets.ema.module.calls[-1]
    (x_lo, s_lo, _), (x_hi, s_hi, _) = nets.model.calls[-2:]
    z = (x_hi - x_lo) / (s_hi - s_lo)[:, None]
    return x_lo - s_lo[:, None] * z, 2.0 * x_gen_in / (1 + s_gen[:, None])


# --- GC ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mu", [0.25, 0.8])
def test_gc_endpoint_is_the_ema_at_the_smaller_level_and_mu_is_the_generated_fraction(mu: float) -> None:
    method = _method("gc", mu=mu)
    assert isinstance(method, GeneratorInducedCoupling)
    nets = _gc_nets()
    x = torch.randn(20_000, 2)
    torch.manual_seed(1)
    method.loss(nets, x, step=0)
    (x_gen_in, s_gen, grad_gen), = nets.ema.module.calls  # one call of the EMA: the generator
    (x_lo, s_lo, grad_lo), (x_hi, s_hi, grad_hi) = nets.model.calls  # target, then online
    assert not grad_gen and not grad_lo and grad_hi
    assert torch.equal(s_gen, s_lo) and torch.all(s_lo < s_hi)  # generated at the *smaller* level
    endpoint, x_hat = _gc_endpoints(nets)  # x_hat: the EMA's output (w = 2), not the online model's
    z = (x_lo - endpoint) / s_lo[:, None]  # the same z re-noises both levels ...
    assert torch.allclose(x_gen_in, x + s_lo[:, None] * z, atol=1e-3)  # ... and fed the generator x + σ_i·z
    is_gen = (endpoint - x_hat).norm(dim=1) < 1e-3
    is_real = (endpoint - x).norm(dim=1) < 1e-3
    assert torch.all(is_gen | is_real)
    assert is_gen.float().mean().item() == pytest.approx(mu, abs=0.015)  # μ = share of generated endpoints


def test_gc_online_option_and_extremes() -> None:
    nets = _gc_nets()
    _method("gc", mu=1.0, gc_model="online").loss(nets, torch.randn(64, 2), step=0)
    assert not nets.ema.module.calls
    assert [c[2] for c in nets.model.calls] == [False, False, True]  # generator (no grad), target, online
    nets = _gc_nets()
    _method("gc", mu=0.0).loss(nets, torch.randn(64, 2), step=0)
    assert not nets.ema.module.calls  # μ = 0 is plain iCT: no generator call
    x, xh = torch.zeros(1000, 2), torch.ones(1000, 2)
    u = torch.rand(1000)
    assert torch.equal(gc_mix(x, xh, 1.0, u), xh) and torch.equal(gc_mix(x, xh, 0.0, u), x)
    with pytest.raises(ValueError):
        _method("gc", mu=1.5)


def test_gc_mu_schedule_warm_start_and_linear_anneal() -> None:
    constant = _method("gc", mu=0.5, mu_end=None)  # the paper's setting: μ constant
    assert [constant.mu_at(k) for k in (0, 50, 99)] == [0.5, 0.5, 0.5]
    default = _method("gc", steps=100)  # the 2D command-line default anneals μ from 0.5 to 0
    assert [default.mu_at(k) for k in (0, 50, 100)] == pytest.approx([0.5, 0.25, 0.0])
    method = _method("gc", steps=100, mu=0.5, mu_end=0.1, gc_start=20)
    assert method.mu_at(0) == 0.0 and method.mu_at(19) == 0.0  # independent coupling before gc_start
    assert method.mu_at(20) == pytest.approx(0.5 - 0.4 * 0.2)  # linear in k/K, as the official get_mix_value
    assert method.mu_at(50) == pytest.approx(0.3) and method.mu_at(100) == pytest.approx(0.1)
    nets = _gc_nets()
    x = torch.randn(20_000, 2)
    method.loss(nets, x, step=10)
    assert not nets.ema.module.calls  # before gc_start: no generator call, plain iCT
    method.loss(nets, x, step=75)
    endpoint, x_hat = _gc_endpoints(nets)
    is_gen = (endpoint - x_hat).norm(dim=1) < 1e-3
    assert is_gen.float().mean().item() == pytest.approx(0.2, abs=0.015)  # μ(75) = 0.5 − 0.4·0.75
    for bad in ({"mu_end": 1.5}, {"gc_start": -1}):
        with pytest.raises(ValueError):
            _method("gc", **bad)


# --- OT ----------------------------------------------------------------------------------------------

def test_ot_pairing_minimises_the_batch_cost_against_brute_force() -> None:
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        x, z = torch.randn(6, 2, generator=gen), torch.randn(6, 2, generator=gen)
        perm = ot_permutation(x, z)
        cost = ((x - z[perm]) ** 2).sum().item()
        brute = min(((x - z[list(p)]) ** 2).sum().item() for p in itertools.permutations(range(6)))
        assert cost == pytest.approx(brute, rel=1e-6)
        assert sorted(perm.tolist()) == list(range(6))  # a permutation
        assert torch.equal(ot_permutation(x, 10.0 * z), perm)  # the same pairing at any noise scale


def test_ot_method_trains_on_permuted_noise() -> None:
    method = _method("ot")
    assert isinstance(method, MinibatchOTCoupling)
    model = Recorder()
    nets = Nets(model=model, ema=make_ema(model, 0.9))
    x = torch.randn(256, 2)
    torch.manual_seed(2)
    method.loss(nets, x, step=0)
    (x_lo, s_lo, _), (x_hi, s_hi, _) = model.calls
    z = (x_hi - x_lo) / (s_hi - s_lo)[:, None]
    assert torch.allclose(x_lo - s_lo[:, None] * z, x, atol=1e-3)  # the real endpoints are kept
    # the noise used is the optimal assignment of the drawn noise (same multiset, minimal cost)
    torch.manual_seed(2)
    method.sample_pairs(0, 256, torch.device("cpu"))
    drawn = torch.randn_like(x)
    assert torch.allclose(z, drawn[ot_permutation(x, drawn)], atol=1e-3)
    assert ((x - z) ** 2).sum() < ((x - drawn) ** 2).sum()


def _ot_run(steps: int = 40):  # noqa: ANN202
    from cmtutor.training import build_run

    cfg = default_config("ot", "moons", steps=steps, batch_size=64, seed=5, net={"hidden": 32, "depth": 2})
    return build_run(cfg)


def _params(run) -> list[torch.Tensor]:  # noqa: ANN001
    return [p.detach().clone() for p in [*run.nets.model.parameters(), *run.nets.ema.parameters()]]


@pytest.fixture
def one_thread():  # noqa: ANN201
    """One torch thread: bitwise-reproducible CPU training (two threads may reorder float sums)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_ot_lookahead_trains_the_same_weights_as_the_plain_loop(one_thread: None,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from cmtutor.training import train_steps

    ahead = _ot_run()
    assert MinibatchOTCoupling.lookahead
    assert isinstance(ahead.batches, DrawAhead)
    for _ in train_steps(ahead):
        assert ahead.batches.pending is None or ahead.batches.pending[0] == ahead.step  # drawn one step ahead
    assert ahead.batches.pending is None and ahead.batches.rng_before_pending is None  # nothing left at the end
    monkeypatch.setattr(MinibatchOTCoupling, "lookahead", False)
    plain = _ot_run()
    assert not isinstance(plain.batches, DrawAhead)  # the plain loop draws nothing ahead
    for _ in train_steps(plain):
        pass
    assert all(torch.equal(a, b) for a, b in zip(_params(ahead), _params(plain)))


def test_ot_lookahead_checkpoint_mid_run_resumes_exactly(one_thread: None) -> None:
    from cmtutor.training import checkpoint_dict, resume_run, train_steps

    full = _ot_run()
    for _ in train_steps(full):
        pass
    cut = _ot_run()
    for logs in train_steps(cut):
        if logs["step"] == 17:
            break  # a checkpoint here holds the RNG states from before step 18's early draws
    assert isinstance(cut.batches, DrawAhead)
    assert cut.batches.pending is not None and cut.batches.pending[0] == 17
    ckpt = copy.deepcopy(checkpoint_dict(cut))  # a copy: the live weights go on changing below
    assert torch.equal(ckpt["rng"]["torch"], cut.batches.rng_before_pending["torch"])
    for _ in train_steps(cut):  # the interrupted generator's run continues with its early draws
        pass
    assert all(torch.equal(a, b) for a, b in zip(_params(full), _params(cut)))
    resumed = resume_run(ckpt)  # and a resume from the checkpoint redraws them
    for _ in train_steps(resumed):
        pass
    assert resumed.step == full.step == 40
    assert all(torch.equal(a, b) for a, b in zip(_params(full), _params(resumed)))


def test_ot_lookahead_leaves_a_core_to_the_assignment_thread() -> None:
    from cmtutor.training import train_steps

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run = _ot_run(steps=3)
        seen = [torch.get_num_threads() for _ in train_steps(run)]
        assert seen == [1, 1, 1]  # while training: one torch thread, the other core solves assignments
        assert torch.get_num_threads() == 2  # restored afterwards
    finally:
        torch.set_num_threads(before)


# --- TCM ---------------------------------------------------------------------------------------------

def test_tcm_time_samples_respect_the_truncated_range() -> None:
    method = _method("tcm", t_prime=1.0, num_scales=161)
    t, r, boundary = method.sample_times(4000, torch.device("cpu"))
    assert torch.all(t >= 1.0) and torch.all(t <= VECTOR_NOISE.sigma_max + 1e-5)
    assert int(boundary.sum()) == 1000 and torch.all(t[boundary] == 1.0)  # 25 % exactly at t'
    assert torch.all(r < t) and torch.all(r[boundary] < 1.0)
    assert (t[~boundary] < 1.05).float().mean() > 0.3  # the heavy-tailed Student-t crowds just above t'
    grid = karras_sigmas(161, VECTOR_NOISE.sigma_min, VECTOR_NOISE.sigma_max).float()
    down = karras_step_down(grid[1:], VECTOR_NOISE.sigma_min, VECTOR_NOISE.sigma_max, 7.0, 161)
    assert torch.allclose(down, grid[:-1], rtol=1e-4)  # one Karras level down


def test_tcm_targets_below_t_prime_come_from_the_frozen_model() -> None:
    method = _method("tcm", t_prime=1.0, num_scales=161)
    student, frozen = Recorder(0.5), Recorder(3.0)
    nets = Nets(model=student, ema=make_ema(student, 0.9), teacher=frozen)
    x = torch.randn(512, 2)
    torch.manual_seed(4)
    method.loss(nets, x, step=0)
    assert frozen.calls and all(not c[2] for c in frozen.calls)  # frozen, never with gradients
    online = [c for c in student.calls if c[2]]
    assert len(online) == 1 and torch.all(online[0][1] >= 1.0)  # the student only trains on [t', T]
    assert torch.any(frozen.calls[0][1] < 1.0)  # the boundary samples' r < t' reach the frozen model
    f = TruncatedConsistency(Recorder(0.5), Recorder(3.0), 1.0)
    s = torch.tensor([0.2, 0.99, 1.0, 5.0])
    xx = torch.ones(4, 2)
    out = f(xx, s)
    w = torch.tensor([3.0, 3.0, 0.5, 0.5])
    assert torch.allclose(out, w[:, None] * xx / (1 + s[:, None]))


def test_tcm_loss_weights_boundary_and_interior_means() -> None:
    method = _method("tcm", t_prime=1.0, w_b=0.1, num_scales=161, distance="l2")
    t = torch.tensor([1.0, 1.0, 2.0, 4.0])
    r = karras_step_down(t, VECTOR_NOISE.sigma_min, VECTOR_NOISE.sigma_max, 7.0, 161)
    boundary = torch.tensor([True, True, False, False])
    method.sample_times = lambda b, d: (t, r, boundary)  # type: ignore[method-assign]
    student, frozen = Recorder(0.5), Recorder(3.0)
    nets = Nets(model=student, ema=make_ema(student, 0.9), teacher=frozen)
    x = torch.randn(4, 2)
    torch.manual_seed(5)
    loss, _ = method.loss(nets, x, 0)
    torch.manual_seed(5)
    z = torch.randn_like(x)
    f_t = 0.5 * (x + t[:, None] * z) / (1 + t[:, None])
    x_r = x + r[:, None] * z
    tgt = torch.where((r < 1.0)[:, None], 3.0 * x_r / (1 + r[:, None]), 0.5 * x_r / (1 + r[:, None]))
    d = ((f_t - tgt) ** 2).mean(1) / (t - r)
    assert loss.item() == pytest.approx((d[2:].mean() + 0.1 * d[:2].mean()).item(), rel=1e-5)


def test_tcm_starts_as_stage_one_and_samples_piecewise() -> None:
    from cmtutor.core.solvers import consistency_sample
    from cmtutor.sampler import cm_sigmas
    from cmtutor.training import build_run, checkpoint_dict, fit

    net = {"hidden": 16, "depth": 1}
    stage1 = fit(default_config("ict", "moons", steps=40, batch_size=32, net=net, device="cpu"))
    run = build_run(default_config("tcm", "moons", steps=10, hp={"t_prime": 1.0}, device="cpu"),
                    teacher=checkpoint_dict(stage1))
    assert run.cfg.net["hidden"] == 16  # the student adopts the stage-1 network
    assert run.cfg.hp["num_scales"] == stage1.method.num_scales(40)  # Δt continues where stage 1 ended
    x = torch.randn(64, 2)
    for s in (0.01, 0.5, 1.0, 3.0, 10.0):
        sig = torch.full((64,), s)
        assert torch.allclose(run.nets.model(x, sig), stage1.nets.ema.module(x, sig), atol=1e-6)
    with torch.no_grad():
        run.nets.ema.module.net.out.bias.add_(1.0)  # make the student differ from stage 1
    sampler = run.sampler()
    assert isinstance(sampler.network, TruncatedConsistency) and sampler.network.t_prime == 1.0
    z = torch.randn(200, 2, generator=torch.Generator().manual_seed(0))
    one = sampler.sample_standardized(200, steps=1, seed=0)
    assert torch.allclose(one, run.nets.ema.module(z * 10.0, torch.full((200,), 10.0)), atol=1e-5)
    two = sampler.sample_standardized(200, steps=2, seed=0, sigmas=[10.0, 0.5])  # second step below t'
    f = TruncatedConsistency(run.nets.ema.module, run.nets.teacher, 1.0)
    ref = consistency_sample(f, z, [10.0, 0.5], VECTOR_NOISE.sigma_min,
                             generator=torch.Generator().manual_seed(1))
    assert torch.allclose(two, ref, atol=1e-5)
    wrong = consistency_sample(run.nets.ema.module, z, cm_sigmas(2, 10.0, 0.5), VECTOR_NOISE.sigma_min,
                               generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(two, wrong, atol=1e-3)  # below t' the frozen stage-1 model acts


def test_tcm_without_anchor_never_calls_the_frozen_model() -> None:
    method = _method("tcm", anchor="none", num_scales=161)
    t, _, boundary = method.sample_times(1000, torch.device("cpu"))
    assert not boundary.any()
    student, frozen = Recorder(), Recorder()
    method.loss(Nets(model=student, ema=make_ema(student, 0.9), teacher=frozen), torch.randn(64, 2), 0)
    assert not frozen.calls


# --- Direct CM ---------------------------------------------------------------------------------------

class GaussTeacher(nn.Module):
    """The ideal denoiser of N(0, s_d² I) data, D(x, σ) = s_d²/(σ² + s_d²)·x; its PF-ODE is solved in closed form."""

    SD = 0.7

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        s = torch.as_tensor(sigma, dtype=x.dtype)
        s = s.reshape(-1, *([1] * (x.ndim - 1))) if s.ndim else s
        return self.SD**2 / (s**2 + self.SD**2) * x


def test_direct_target_equals_a_reference_ode_solve() -> None:
    teacher = GaussTeacher()
    gen = torch.Generator().manual_seed(0)
    sig = torch.exp(torch.randn(32, generator=gen, dtype=torch.float64)).clamp(0.05, 10.0)
    x_t = torch.randn(32, 2, generator=gen, dtype=torch.float64) * sig[:, None]
    got = direct_target(teacher, x_t, sig, 0.002, steps=16)
    for i in range(32):  # the library's ODE solver, one sample at a time
        levels = per_sample_karras(sig[i:i + 1], 0.002, 16)[0]
        ref = solve_ode(teacher, x_t[i:i + 1], levels, "heun")
        assert torch.allclose(got[i:i + 1], ref, atol=1e-10)
    sd = GaussTeacher.SD  # and it converges to the exact solution x(ε) = x(t)·√(ε² + s_d²)/√(t² + s_d²)
    exact = x_t * math.sqrt(0.002**2 + sd**2) / torch.sqrt(sig[:, None] ** 2 + sd**2)
    err16 = (got - exact).abs().max().item()
    err64 = (direct_target(teacher, x_t, sig, 0.002, steps=64) - exact).abs().max().item()
    assert err64 < 2e-3 and err64 < err16 / 8  # second order: 4× the steps, about 16× less error
    levels = per_sample_karras(sig, 0.002, 16)
    assert torch.allclose(levels[:, 0], sig) and torch.allclose(levels[:, -1], torch.full_like(sig, 0.002))


def test_direct_cm_regresses_onto_the_teacher_solution_without_self_target() -> None:
    method = _method("direct", ode_steps=8)
    assert isinstance(method, DirectConsistencyModel) and not method.uses_target_network()
    model = Recorder()
    nets = Nets(model=model, ema=make_ema(model, 0.9), teacher=GaussTeacher())
    x = torch.randn(128, 2)
    torch.manual_seed(6)
    loss, _ = method.loss(nets, x, 0)
    assert len(model.calls) == 1 and model.calls[0][2]  # only the online pass: no self-target
    x_hi, s_hi, _ = model.calls[0]
    grid = method.sigmas
    assert torch.all(torch.isin(s_hi, grid[1:]))  # CD's noisy points: upper levels of the N-level grid
    target = direct_target(GaussTeacher(), x_hi, s_hi, VECTOR_NOISE.sigma_min, 8)
    expect = ((0.5 * x_hi / (1 + s_hi[:, None]) - target) ** 2).mean(1).mean()
    assert loss.item() == pytest.approx(expect.item(), rel=1e-5)
