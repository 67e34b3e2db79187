"""Each method's defining property: which levels, which noise, which network gives the target."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cmtutor.config import default_config
from cmtutor.core.ema import make_ema
from cmtutor.core.losses import squared_l2
from cmtutor.core.noise import VECTOR_NOISE
from cmtutor.core.precond import Preconditioned
from cmtutor.core.schedules import karras_sigmas
from cmtutor.core.solvers import ode_step
from cmtutor.methods import Nets, consistency_step, get_method
from cmtutor.methods.ct import ImprovedConsistencyTraining


class Recorder(nn.Module):
    """Records (x, σ, grad_enabled) of each call; output = a simple function of x and σ."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(0.5))
        self.calls: list[tuple[torch.Tensor, torch.Tensor, bool]] = []

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigma = torch.as_tensor(sigma).expand(x.shape[0]) if torch.as_tensor(sigma).ndim == 0 else sigma
        self.calls.append((x.detach().clone(), sigma.detach().clone(), torch.is_grad_enabled()))
        return self.w * x / (1 + sigma[:, None])


def _ict(**hp: object) -> ImprovedConsistencyTraining:
    cfg = default_config("ict", "moons", steps=1000, hp=dict(hp))
    return ImprovedConsistencyTraining(cfg.hp, VECTOR_NOISE, 1000, 2)


def test_ict_pair_direction_same_noise_and_adjacent_levels() -> None:
    method = _ict()
    model = Recorder()
    nets = Nets(model=model, ema=make_ema(model, 0.9))
    x = torch.randn(512, 2)
    torch.manual_seed(3)
    method.loss(nets, x, step=0)
    (x_lo, s_lo, grad_lo), (x_hi, s_hi, grad_hi) = model.calls
    assert not grad_lo and grad_hi  # target first, without gradients; online with gradients
    assert torch.all(s_lo < s_hi)  # the online network sees the larger level
    z_lo, z_hi = (x_lo - x) / s_lo[:, None], (x_hi - x) / s_hi[:, None]
    assert torch.allclose(z_lo, z_hi, atol=1e-4)  # the same z at both levels
    grid = karras_sigmas(method.num_scales(0), VECTOR_NOISE.sigma_min, VECTOR_NOISE.sigma_max).float()
    idx = torch.searchsorted(grid, s_lo.contiguous(), right=False)
    assert torch.allclose(grid[idx + 1], s_hi)  # adjacent grid levels


def test_ict_weights_and_target_network() -> None:
    method = _ict()
    s_lo, s_hi, w = method.sample_pairs(0, 1000, torch.device("cpu"))
    assert torch.allclose(w, 1 / (s_hi - s_lo))  # λ = 1/Δσ
    assert not method.uses_target_network()  # iCT: θ⁻ = sg(θ), no EMA
    ct = get_method("ct")(default_config("ct", "moons").hp, VECTOR_NOISE, 1000, 2)
    assert ct.uses_target_network() and ct.target_decay(0) == pytest.approx(0.9)
    s_lo, s_hi, w = ct.sample_pairs(0, 100, torch.device("cpu"))
    assert torch.all(w == 1)


def test_ict_lognormal_pairs_favour_small_sigma() -> None:
    method = _ict()
    s_lo, _, _ = method.sample_pairs(10_000, 20_000, torch.device("cpu"))
    med = torch.log(s_lo).median().item()
    assert -2.5 < med < 0.0  # around P_mean = −1.1 (shifted by the truncated grid)
    uni = _ict(pairs="uniform")
    s_lo_u, _, _ = uni.sample_pairs(10_000, 20_000, torch.device("cpu"))
    assert torch.log(s_lo_u).median().item() > med


def test_ct_target_comes_from_the_ema_network() -> None:
    cfg = default_config("ct", "moons", steps=1000)
    method = get_method("ct")(cfg.hp, VECTOR_NOISE, 1000, 2)
    online, target = Recorder(), Recorder()
    nets = Nets(model=online, ema=make_ema(online, 0.9), target=make_ema(target, 0.9))
    method.loss(nets, torch.randn(64, 2), step=0)
    assert len(target.calls) == 0 or True  # AveragedModel deep-copies: record through .module
    assert len(nets.target.module.calls) == 1 and not nets.target.module.calls[0][2]
    assert len(online.calls) == 1 and online.calls[0][2]


def test_cd_weights_are_uniform_unless_set_to_icts() -> None:
    cd = get_method("cd")
    for kind in ("vector", "image"):  # every CD config of Song et al. 2023: λ = 1
        uniform = cd(cd.default_hparams(kind), VECTOR_NOISE, 100, 2)
        assert torch.all(uniform.draw(torch.zeros(500, 2), 0).weight == 1)
    inv = cd({**cd.default_hparams("image"), "weighting": "inv_delta"}, VECTOR_NOISE, 100, 2)
    d = inv.draw(torch.zeros(500, 2), 0)  # the draws the loss weights its terms with
    s_lo, s_hi, w = d.s_lo, d.s_hi, d.weight
    grid = inv.sigmas
    assert torch.allclose(w, 1 / (s_hi - s_lo)) and w.max() / w.min() > 100  # adjacent levels of the grid
    assert w.max() == pytest.approx(float(1 / (grid[1] - grid[0])), rel=1e-5)  # the smallest gap weighs most


def test_cd_target_is_one_teacher_heun_step_from_x_hi() -> None:
    cfg = default_config("cd", "moons", steps=100)
    method = get_method("cd")(cfg.hp, VECTOR_NOISE, 100, 2)

    class GaussTeacher(nn.Module):
        def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            s = torch.as_tensor(s).reshape(-1, 1) if torch.as_tensor(s).ndim else torch.as_tensor(s)
            return x / (1 + s**2)

    model = Recorder()
    nets = Nets(model=model, ema=make_ema(model, 0.9), teacher=GaussTeacher())
    method.loss(nets, torch.randn(128, 2), step=0)
    (x_lo, s_lo, _), (x_hi, s_hi, _) = model.calls
    assert torch.all(s_lo < s_hi)
    expect = ode_step(GaussTeacher(), x_hi, s_hi, s_lo, "heun")
    assert torch.allclose(x_lo, expect, atol=1e-6)


def test_shared_dropout_mask() -> None:
    """Target and online passes draw the same dropout mask (restored RNG), so f(x) − sg f(x) = 0."""
    net = nn.Sequential(nn.Linear(2, 64), nn.Dropout(0.5), nn.Linear(64, 2))
    f = lambda x, s: net(x)  # noqa: E731
    net.train()
    x = torch.randn(32, 2)
    loss, _ = consistency_step(f, x, torch.ones(32), lambda: f(x, None), torch.ones(32), squared_l2)
    assert loss.item() == pytest.approx(0.0, abs=1e-12)
    # without the restore the masks differ
    with torch.no_grad():
        a = f(x, None)
    b = f(x, None)
    assert (a - b).abs().max().item() > 0


def test_diffusion_loss_uses_edm_parameterization() -> None:
    assert get_method("diffusion").parameterization == "edm"
    assert get_method("ict").parameterization == "cm"
    assert get_method("cd").requires_teacher and "diffusion" in get_method("cd").teacher_methods


def test_every_consistency_model_satisfies_the_boundary() -> None:
    from cmtutor.training import build_run

    run = build_run(default_config("ict", "moons", steps=10))
    x = torch.randn(16, 2)
    assert isinstance(run.nets.model, Preconditioned)
    assert torch.equal(run.nets.model(x, torch.full((16,), VECTOR_NOISE.sigma_min)), x)
