"""The MLP and its noise-level embedding."""

from __future__ import annotations

import pytest
import torch

from cmtutor.core.precond import c_noise
from cmtutor.core.schedules import karras_sigmas
from cmtutor.nets.mlp import MLP, FourierEmbedding, MLPConfig, SinusoidalEmbedding


def _neighbour_change(embed: torch.nn.Module) -> float:
    """Median relative change of the embedding between adjacent levels of a 1281-level iCT grid."""
    sig = karras_sigmas(1281, 0.002, 80.0).float()
    e = embed(c_noise(sig))
    step = (e[1:] - e[:-1]).norm(dim=1) / e[:-1].norm(dim=1)
    return float(step.median())


def test_default_embedding_is_smooth_in_sigma() -> None:
    """Adjacent noise levels must look alike to the network: consistency training compares f at σ_i and
    σ_{i+1}. The low-frequency default changes ~10× less between neighbours than scale-16 Fourier features."""
    smooth = _neighbour_change(SinusoidalEmbedding(32, 16.0))
    rough = _neighbour_change(FourierEmbedding(32, 16.0))
    assert smooth < 0.02
    assert rough > 5 * smooth


def test_mlp_shapes_and_determinism() -> None:
    torch.manual_seed(0)
    a = MLP(MLPConfig(dim=3, hidden=32, depth=2))
    torch.manual_seed(0)
    b = MLP(MLPConfig(dim=3, hidden=32, depth=2))
    x, c = torch.randn(5, 3), torch.randn(5)
    assert a(x, c).shape == (5, 3)
    assert torch.equal(a(x, c), b(x, c))
    for variant in (MLPConfig(dim=2, time_every_layer=False), MLPConfig(dim=2, embedding="fourier")):
        assert MLP(variant)(torch.randn(4, 2), torch.randn(4)).shape == (4, 2)
    with pytest.raises(ValueError):
        MLP(MLPConfig(embedding="learned"))


def _naive_forward(net: MLP, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """The MLP's forward pass with its time features computed for every sample (no sharing of levels)."""
    e = net.t_mlp(net.embed(c))
    h = net.inp(x) + e
    es = torch.nn.functional.silu(e)
    for proj, layer in zip(net.t_proj, net.layers):
        h = h + layer(torch.nn.functional.silu(h + proj(es)))
    return net.out(torch.nn.functional.silu(h))


@pytest.mark.parametrize("levels", [10, None])
def test_time_features_once_per_level_match_every_sample(levels: int | None) -> None:
    """Computing e(c) and the e_l(c) once per distinct noise level and gathering them back gives the same
    outputs and the same gradients as computing them for every sample; with few levels (CD's grid) the
    projections see one row per level, with all-distinct levels (diffusion's lognormal σ) one per sample."""
    torch.manual_seed(0)
    net = MLP(MLPConfig(dim=2, hidden=32, depth=2)).double()
    batch = 64
    if levels is None:
        sig = torch.exp(torch.randn(batch, dtype=torch.float64))
    else:
        sig = karras_sigmas(levels, 0.002, 80.0)[torch.randint(0, levels, (batch,))]
    c = c_noise(sig)
    x = torch.randn(batch, 2, dtype=torch.float64)
    rows: list[int] = []
    hook = net.t_proj[0].register_forward_hook(lambda m, i, o: rows.append(i[0].shape[0]))
    out = net(x, c)
    hook.remove()
    assert rows == [int(c.unique().numel()) if levels is not None else batch]
    if levels is not None:
        assert rows[0] <= levels < batch
    ref = _naive_forward(net, x, c)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    w = torch.randn_like(out)
    g = torch.autograd.grad((out * w).sum(), list(net.parameters()))
    g_ref = torch.autograd.grad((ref * w).sum(), list(net.parameters()))
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
