"""The image network F_θ(x, c_noise): a U-Net in the style of DDPM++ as configured by EDM.

Architecture (Song et al. 2021, "Score-based generative modeling through SDEs", NCSN++/DDPM++; the
CIFAR-10 configuration of Karras et al. 2022, EDM, Table 7 "DDPM++", 55.7M parameters):

* noise embedding: sinusoidal (positional) features of c_noise with frequencies from 1 down to
  1/``max_positions`` rad per unit (all low: c_noise = ¼·ln σ spans only about [−1.6, 1.1], and
  consistency training compares *adjacent* noise levels, so a smooth embedding matters; see
  ``cmtutor.nets``), then a 2-layer MLP to ``emb_mult × channels`` features;
* an encoder of residual blocks (GroupNorm → SiLU → 3×3 conv, the embedding added as a per-channel
  bias, GroupNorm → SiLU → dropout → 3×3 conv, a 1×1 skip where the shape changes, sum scaled by
  1/√2), ``num_blocks`` per resolution, a down-sampling residual block between resolutions;
* self-attention blocks at the resolutions in ``attn_resolutions``, through
  ``torch.nn.functional.scaled_dot_product_attention`` (flash / memory-efficient kernels on a GPU);
* a mirrored decoder with ``num_blocks + 1`` blocks per resolution, each taking one skip connection
  from the encoder, and an output GroupNorm → SiLU → 3×3 conv.

The last layer of every residual branch and the output layer start at zero, so at initialisation the
preconditioned model is exactly its skip path (c_skip·x).

The size is set by a config; :data:`PRESETS` names the course's sizes: ``tiny`` for unit tests,
``small`` for CPU notebooks on 8×8 digits, ``cifar10`` for the papers' CIFAR-10 network (about 56M
parameters, the size CM/iCT/ECT/TCM report).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cmtutor.errors import UserError

#: Named U-Net sizes (keyword arguments of :class:`UNetConfig`).
PRESETS: dict[str, dict[str, Any]] = {
    # unit tests: two resolutions, attention at the lower one, a few thousand parameters
    "tiny": {"channels": 8, "channel_mult": [1, 2], "num_blocks": 1, "attn_resolutions": [4], "dropout": 0.0,
             "emb_mult": 2, "channels_per_head": 16},
    # CPU notebooks (8×8 digits): about 180k parameters, tens of milliseconds per step on a CPU core
    "small": {"channels": 16, "channel_mult": [1, 2], "num_blocks": 1, "attn_resolutions": [4], "dropout": 0.0,
              "emb_mult": 2, "channels_per_head": 32},
    # the DDPM++ network of EDM / ECT / TCM on CIFAR-10 (EDM Table 7): about 56M parameters
    "cifar10": {"channels": 128, "channel_mult": [2, 2, 2], "num_blocks": 4, "attn_resolutions": [16],
                "dropout": 0.13, "emb_mult": 4, "channels_per_head": 64},
}


@dataclass(frozen=True)
class UNetConfig:
    """Size of :class:`UNet`. ``in_channels`` and ``resolution`` come from the data."""

    in_channels: int = 3
    resolution: int = 32
    channels: int = 128
    channel_mult: tuple[int, ...] = (2, 2, 2)
    num_blocks: int = 4
    attn_resolutions: tuple[int, ...] = (16,)
    dropout: float = 0.1
    emb_mult: int = 4
    channels_per_head: int = 64
    max_positions: int = 10_000
    #: a second conditioning input (MeanFlow's interval t − r), embedded like c_noise and added before the MLP
    cond2: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def auto_preset(resolution: int) -> str:
    """The U-Net preset for ``preset="auto"``: the papers' network from 32×32 up, the small one below."""
    return "cifar10" if resolution >= 32 else "small"


def resolve_net_config(net: dict[str, Any], resolution: int | None = None) -> dict[str, Any]:
    """Expand ``{"kind": "unet", "preset": NAME, **overrides}`` into explicit U-Net settings.

    ``preset="auto"`` picks by image size (:func:`auto_preset`; needs
    ``resolution``). The result keeps ``kind`` and ``preset`` (for the record) and lists every size
    field, so a config.json describes its network completely even if the presets change later.
    """
    out = dict(net)
    preset = out.get("preset")
    if preset == "auto":
        if resolution is None:
            raise ValueError('preset "auto" needs the image resolution')
        preset = out["preset"] = auto_preset(resolution)
    if preset is not None:
        if preset not in PRESETS:
            raise UserError(f"unknown U-Net preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        out = {**PRESETS[preset], **out}
    return out


def _group_norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=min(32, max(1, c // 4)), num_channels=c, eps=1e-6)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class PositionalEmbedding(nn.Module):
    """[cos(ω_k·c), sin(ω_k·c)] with ω_k = (1/max_positions)^(k/(n/2 − 1)), k = 0 … n/2 − 1 (DDPM++)."""

    def __init__(self, num_channels: int, max_positions: int = 10_000) -> None:
        super().__init__()
        half = num_channels // 2
        freqs = (1.0 / max_positions) ** (torch.arange(half, dtype=torch.float32) / max(half - 1, 1))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, c: Tensor) -> Tensor:
        arg = c.float()[:, None] * self.freqs[None, :]
        return torch.cat([arg.cos(), arg.sin()], dim=1)


class Attention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map (residual, output scaled by 1/√2)."""

    def __init__(self, channels: int, channels_per_head: int) -> None:
        super().__init__()
        self.heads = max(1, channels // channels_per_head)
        self.norm = _group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
        q, k, v = (qkv[:, i].transpose(-1, -2) for i in range(3))  # [B, heads, HW, d]
        a = F.scaled_dot_product_attention(q, k, v)
        a = a.transpose(-1, -2).reshape(b, c, h, w)
        return (x + self.proj(a)) * math.sqrt(0.5)


class ResBlock(nn.Module):
    """A residual block conditioned on the embedding, optionally resampling and with attention after it."""

    def __init__(self, cin: int, cout: int, emb_channels: int, dropout: float, resample: str = "none",
                 attention: bool = False, channels_per_head: int = 64) -> None:
        super().__init__()
        self.resample = resample
        self.norm0 = _group_norm(cin)
        self.conv0 = nn.Conv2d(cin, cout, 3, padding=1)
        self.affine = nn.Linear(emb_channels, cout)
        self.norm1 = _group_norm(cout)
        self.dropout = nn.Dropout(dropout)
        self.conv1 = _zero(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if (cin != cout or resample != "none") else None
        self.attn = Attention(cout, channels_per_head) if attention else None

    def _resample(self, x: Tensor) -> Tensor:
        if self.resample == "down":
            return F.avg_pool2d(x, 2)
        if self.resample == "up":
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        return x

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv0(self._resample(F.silu(self.norm0(x))))
        h = h + self.affine(emb)[:, :, None, None].to(h.dtype)
        h = self.conv1(self.dropout(F.silu(self.norm1(h))))
        skip = self._resample(x)
        if self.skip is not None:
            skip = self.skip(skip)
        out = (h + skip) * math.sqrt(0.5)
        return self.attn(out) if self.attn is not None else out


class UNet(nn.Module):
    """F_θ(x, c_noise) for images [B, C, H, W]: the DDPM++-style U-Net described in the module docstring."""

    def __init__(self, cfg: UNetConfig = UNetConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        levels = len(cfg.channel_mult)
        if cfg.resolution % (2 ** (levels - 1)):
            raise ValueError(f"resolution {cfg.resolution} is not divisible by 2^{levels - 1} "
                             f"({levels} levels in channel_mult)")
        ch, emb_ch = cfg.channels, cfg.channels * cfg.emb_mult
        self.embed = PositionalEmbedding(ch, cfg.max_positions)
        self.map0 = nn.Linear(ch, emb_ch)
        self.map0_cond2 = nn.Linear(ch, emb_ch) if cfg.cond2 else None
        self.map1 = nn.Linear(emb_ch, emb_ch)

        def block(cin: int, cout: int, res: int, resample: str = "none", attention: bool = False) -> ResBlock:
            return ResBlock(cin, cout, emb_ch, cfg.dropout, resample, attention, cfg.channels_per_head)

        self.conv_in = nn.Conv2d(cfg.in_channels, ch, 3, padding=1)
        self.enc = nn.ModuleList()
        skips = [ch]
        cout = ch
        for level, mult in enumerate(cfg.channel_mult):
            res = cfg.resolution >> level
            if level > 0:
                self.enc.append(block(cout, cout, res, "down"))
                skips.append(cout)
            for _ in range(cfg.num_blocks):
                cin, cout = cout, ch * mult
                self.enc.append(block(cin, cout, res, attention=res in cfg.attn_resolutions))
                skips.append(cout)
        self.mid = nn.ModuleList([block(cout, cout, 0, attention=True), block(cout, cout, 0)])
        self.dec = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            res = cfg.resolution >> level
            if level < levels - 1:
                self.dec.append(block(cout, cout, res, "up"))
            for i in range(cfg.num_blocks + 1):
                cin, cout = cout + skips.pop(), ch * mult
                attn = i == cfg.num_blocks and res in cfg.attn_resolutions
                self.dec.append(block(cin, cout, res, attention=attn))
        self.norm_out = _group_norm(cout)
        self.conv_out = _zero(nn.Conv2d(cout, cfg.in_channels, 3, padding=1))

    def forward(self, x: Tensor, c_noise: Tensor, c2: Tensor | None = None) -> Tensor:
        """F_θ(x, c_noise) shaped like x; ``c2`` is the second condition of a ``cond2`` network (MeanFlow's t − r)."""
        pre = self.map0(self.embed(c_noise.reshape(-1)))
        if c2 is not None:
            if self.map0_cond2 is None:
                raise ValueError("this U-Net has one conditioning input (UNetConfig.cond2 is False)")
            pre = pre + self.map0_cond2(self.embed(c2.reshape(-1)))
        emb = F.silu(self.map1(F.silu(pre)))
        h = self.conv_in(x)
        hs = [h]
        for blk in self.enc:
            h = blk(h, emb)
            hs.append(h)
        for blk in self.mid:
            h = blk(h, emb)
        for blk in self.dec:
            if blk.resample != "up":
                h = torch.cat([h, hs.pop()], dim=1)
            h = blk(h, emb)
        return self.conv_out(F.silu(self.norm_out(h)))


def build_unet(args: dict[str, Any], dim: int | tuple[int, ...]) -> UNet:
    """The U-Net of a config's ``net`` entry (without ``kind``) for images of shape ``dim`` = (C, H, W)."""
    if isinstance(dim, int) or len(dim) != 3:
        raise ValueError(f"the U-Net needs image data of shape (C, H, W), got {dim}")
    c, h, w = (int(v) for v in dim)
    if h != w:
        raise ValueError(f"the U-Net needs square images, got {h}×{w}")
    settings = resolve_net_config(args, h)
    names = {f.name for f in fields(UNetConfig)}
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in settings.items() if k in names}
    return UNet(UNetConfig(**{**kw, "in_channels": c, "resolution": h}))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
