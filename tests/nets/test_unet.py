"""The image U-Net: shapes, size, determinism, attention, zero-initialised outputs, the GPU-path switches."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cmtutor.core.noise import IMAGE_NOISE
from cmtutor.core.precond import Preconditioned, cm_scalings
from cmtutor.nets.unet import PRESETS, Attention, UNet, UNetConfig, build_unet, count_parameters, resolve_net_config


def _perturb(net: torch.nn.Module, seed: int = 1) -> None:
    """Give the zero-initialised layers random weights, so outputs depend on everything."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 16, 16), (3, 32, 32)])
def test_output_has_the_input_shape(shape: tuple[int, int, int]) -> None:
    net = build_unet({"preset": "tiny"}, shape)
    x = torch.randn(3, *shape)
    assert net(x, torch.randn(3)).shape == x.shape


def test_cifar10_preset_has_the_papers_size() -> None:
    with torch.device("meta"):
        net = build_unet({"preset": "cifar10"}, (3, 32, 32))
    n = count_parameters(net)
    assert 55.0e6 < n < 56.5e6, n  # EDM's DDPM++ (55.7M), the network of CM/iCT/ECT/TCM on CIFAR-10
    assert count_parameters(build_unet({"preset": "tiny"}, (1, 8, 8))) < 100_000


def test_presets_resolve_and_overrides_win() -> None:
    cfg = resolve_net_config({"kind": "unet", "preset": "auto", "dropout": 0.3}, resolution=32)
    assert cfg["preset"] == "cifar10" and cfg["channels"] == 128 and cfg["dropout"] == 0.3
    assert resolve_net_config({"preset": "auto"}, resolution=8)["preset"] == "small"
    assert resolve_net_config(resolve_net_config({"preset": "tiny"})) == resolve_net_config({"preset": "tiny"})
    with pytest.raises(ValueError):
        UNet(UNetConfig(resolution=10, channel_mult=(1, 2, 2)))  # 10 is not divisible by 4


def test_initialisation_is_seeded_and_the_forward_pass_deterministic() -> None:
    torch.manual_seed(5)
    a = build_unet({"preset": "tiny"}, (1, 8, 8))
    torch.manual_seed(5)
    b = build_unet({"preset": "tiny"}, (1, 8, 8))
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    _perturb(a)
    x, c = torch.randn(4, 1, 8, 8), torch.randn(4)
    assert torch.equal(a(x, c), a(x, c))


def test_dropout_masks_repeat_when_the_rng_state_is_restored() -> None:
    net = build_unet({**PRESETS["tiny"], "dropout": 0.5}, (1, 8, 8))
    _perturb(net)
    net.train()
    x, c = torch.randn(4, 1, 8, 8), torch.randn(4)
    state = torch.get_rng_state()
    y1 = net(x, c)
    torch.set_rng_state(state)
    y2 = net(x, c)
    y3 = net(x, c)
    assert torch.equal(y1, y2) and not torch.equal(y1, y3)


def test_zero_initialised_output_makes_the_model_its_skip_path() -> None:
    model = Preconditioned(build_unet({"preset": "tiny"}, (1, 8, 8)), IMAGE_NOISE, "cm")
    x, sigma = torch.randn(5, 1, 8, 8), torch.tensor([0.5, 1.0, 5.0, 20.0, 80.0])
    c_skip, _, _ = cm_scalings(sigma, IMAGE_NOISE.sigma_data, IMAGE_NOISE.sigma_min)
    assert torch.allclose(model(x, sigma), c_skip[:, None, None, None] * x)


def test_attention_is_softmax_attention_over_pixels() -> None:
    torch.manual_seed(0)
    att = Attention(32, channels_per_head=16)
    _perturb(att)
    x = torch.randn(2, 32, 4, 4)
    b, c, h, w = x.shape
    heads, d = 2, 16
    qkv = att.qkv(att.norm(x)).reshape(b, 3, heads, d, h * w)
    q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]  # [B, heads, d, HW]
    weights = torch.softmax(torch.einsum("bhdi,bhdj->bhij", q, k) / math.sqrt(d), dim=-1)
    a = torch.einsum("bhij,bhdj->bhdi", weights, v).reshape(b, c, h, w)
    expected = (x + att.proj(a)) * math.sqrt(0.5)
    assert torch.allclose(att(x), expected, atol=1e-5)


def test_noise_embedding_is_smooth() -> None:
    net = build_unet({"preset": "tiny"}, (1, 8, 8))
    assert float(net.embed.freqs.max()) <= 1.0  # at most 1 rad per unit of c_noise = ¼·ln σ
    c = torch.linspace(-1.6, 1.1, 50)
    e = net.embed(c)
    assert (e[1:] - e[:-1]).abs().max() < 0.06  # neighbouring noise levels get neighbouring features


def test_channels_last_and_bf16_autocast_agree_with_fp32() -> None:
    torch.manual_seed(0)
    net = build_unet({"preset": "tiny"}, (3, 16, 16))
    _perturb(net)
    x, c = torch.randn(2, 3, 16, 16), torch.randn(2)
    ref = net(x, c)
    cl = net.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last), c)
    assert torch.allclose(ref, cl, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = net(x, c)
    assert low.dtype == torch.bfloat16
    assert F.mse_loss(low.float(), ref) < 1e-3 * ref.pow(2).mean() + 1e-6
