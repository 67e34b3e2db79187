"""The MLP and its noise-level embedding."""

from __future__ import annotations

import pytest
import torch

from cmtutor.nets import MLP, FourierEmbedding, MLPConfig, SinusoidalEmbedding
from cmtutor.precond import c_noise
from cmtutor.schedules import karras_sigmas


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
