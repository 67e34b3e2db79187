"""The JVP helper: exact forward mode and the finite difference agree with closed forms and with each other,
through the U-Net's attention too (on its JVP-capable kernel)."""

from __future__ import annotations

from unittest import mock

import pytest
import torch
import torch.nn.functional as F

from cmtutor.core import jvp as jvp_module
from cmtutor.core.jvp import jvp
from cmtutor.nets.unet import build_unet


@pytest.mark.parametrize("mode", ["exact", "fd", "auto"])
def test_closed_form(mode: str) -> None:
    """f(x, t) = sin(x)·t²: along (v, s) the derivative is cos(x)·t²·v + 2·sin(x)·t·s."""
    x, t = torch.linspace(-2, 2, 7, dtype=torch.float64), torch.full((7,), 0.7, dtype=torch.float64)
    v, s = torch.linspace(1, 2, 7, dtype=torch.float64), torch.ones(7, dtype=torch.float64)
    out, d = jvp(lambda x, t: torch.sin(x) * t**2, (x, t), (v, s), mode=mode)  # type: ignore[arg-type]
    torch.testing.assert_close(out, torch.sin(x) * t**2)
    expected = torch.cos(x) * t**2 * v + 2 * torch.sin(x) * t * s
    torch.testing.assert_close(d, expected, rtol=1e-8 if mode == "fd" else 1e-12, atol=1e-9 if mode == "fd" else 0)


def _unet(dtype: torch.dtype) -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_unet({"preset": "tiny"}, (1, 8, 8)).to(dtype).eval()
    with torch.no_grad():  # the output layer starts at zero (DDPM++ init): give every weight a value
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net


def test_exact_and_finite_difference_agree_through_the_unet() -> None:
    """Along x in float64 to 1e-6; along (x, σ) in float32 to 1e-2 (the noise embedding is computed in fp32)."""
    net = _unet(torch.float64)
    x, c = torch.randn(3, 1, 8, 8, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    v = torch.randn_like(x)
    out_e, d_e = jvp(net, (x, c), (v, torch.zeros_like(c)), mode="exact")
    out_f, d_f = jvp(net, (x, c), (v, torch.zeros_like(c)), mode="fd")
    torch.testing.assert_close(out_e, out_f)
    torch.testing.assert_close(d_e, d_f, rtol=1e-6, atol=1e-9)
    assert d_e.abs().mean() > 1e-3  # a derivative that is not trivially zero
    net32 = _unet(torch.float32)
    x32, c32 = x.float(), c.float()
    tangents = (v.float(), torch.ones_like(c32))
    d_e = jvp(net32, (x32, c32), tangents, mode="exact")[1]
    d_f = jvp(net32, (x32, c32), tangents, mode="fd")[1]
    assert float((d_e - d_f).norm() / d_e.norm()) < 1e-2  # float32 central differences: about 1e-3


def test_attention_runs_on_the_math_kernel_under_the_exact_jvp() -> None:
    seen = []
    real = F.scaled_dot_product_attention

    def spy(*args: object, **kw: object) -> torch.Tensor:
        seen.append((torch.backends.cuda.flash_sdp_enabled(), torch.backends.cuda.mem_efficient_sdp_enabled(),
                     torch.backends.cuda.math_sdp_enabled()))
        return real(*args, **kw)  # type: ignore[arg-type]

    net = build_unet({"preset": "tiny"}, (1, 8, 8)).eval()
    x, c = torch.randn(2, 1, 8, 8), torch.randn(2)
    with mock.patch.object(F, "scaled_dot_product_attention", spy):
        jvp(net, (x, c), (torch.randn_like(x), torch.ones_like(c)), mode="exact")
    assert seen and all(s == (False, False, True) for s in seen)  # flash and memory-efficient off, math on


def test_auto_falls_back_to_the_finite_difference_once_with_a_warning() -> None:
    def no_forward_mode(x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("Trying to use forward AD with an op that does not support it")

    calls = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return 3 * x

    jvp_module._warned.clear()
    with mock.patch.object(jvp_module, "exact_jvp", lambda f, p, t: no_forward_mode(p[0])):
        with pytest.warns(UserWarning, match="using a finite difference"):
            out, d = jvp(fn, (torch.ones(2),), (torch.ones(2),))
    torch.testing.assert_close(d, torch.full((2,), 3.0), rtol=1e-4, atol=0)
    with pytest.raises(ValueError, match="tangent must have its primal's shape"):
        jvp(fn, (torch.ones(2),), (torch.ones(3),))
