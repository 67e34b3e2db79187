"""Networks F_θ(x, c_noise) for vector data. (The image U-Net lives in ``cmtutor.nets.unet``.)

Time embedding. The noise level enters as c_noise = ¼·ln σ, which spans only about [−1.6, 1.1] for
σ ∈ [0.002, 80]. We embed it with sinusoids of *low*, fixed frequencies (1 to ``max_freq`` radians per
unit of c_noise). A random Fourier embedding with high frequencies (scale 16, as in the original CM
CIFAR-10 code) makes neighbouring noise levels look unrelated to the network, which is exactly what
consistency training cannot afford: its loss compares f at two *adjacent* levels. ``tests/nets/test_mlp.py``
checks that the embedding is smooth in σ.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn


class SinusoidalEmbedding(nn.Module):
    """[sin(ω_k·c), cos(ω_k·c)] for geometric frequencies ω_k from 1 to ``max_freq`` (k = 1..dim/2)."""

    def __init__(self, dim: int = 32, max_freq: float = 16.0) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError("embedding dimension must be even")
        freqs = torch.exp(torch.linspace(0.0, math.log(max_freq), dim // 2))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, c: Tensor) -> Tensor:
        arg = c.float()[:, None] * self.freqs[None, :]
        return torch.cat([arg.sin(), arg.cos()], dim=1)


class FourierEmbedding(nn.Module):
    """Random Fourier features [sin(2π·b_k·c), cos(2π·b_k·c)], b_k ~ N(0, scale²) fixed at init.

    With ``scale=16`` this is the noise embedding of the original CM/NCSN++ CIFAR-10 code. Kept here to
    show (notebook 03, ``tests/nets/test_mlp.py``) why cmtutor's 2D default is the low-frequency
    :class:`SinusoidalEmbedding` instead.
    """

    def __init__(self, dim: int = 32, scale: float = 16.0, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("b", torch.randn(dim // 2, generator=g) * scale)

    def forward(self, c: Tensor) -> Tensor:
        arg = 2 * math.pi * c.float()[:, None] * self.b[None, :]
        return torch.cat([arg.sin(), arg.cos()], dim=1)


@dataclass(frozen=True)
class MLPConfig:
    """Size of :class:`MLP`. Defaults suit 2D toys on a CPU."""

    dim: int = 2
    hidden: int = 256
    depth: int = 3
    emb_dim: int = 32
    max_freq: float = 16.0
    #: inject the time embedding before every layer (True) or only at the input (False)
    time_every_layer: bool = True
    #: "sinusoidal" (low fixed frequencies, the default) or "fourier" (random, ``fourier_scale``)
    embedding: str = "sinusoidal"
    fourier_scale: float = 16.0
    #: a second conditioning input (MeanFlow's interval t − r), embedded like the first and added to it
    cond2: bool = False

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


class MLP(nn.Module):
    """A residual MLP conditioned on the noise level: F_θ(x, c_noise) with the output shaped like x.

    h₀ = W_in·x + e(c);  h_{l+1} = h_l + W_l·SiLU(h_l + e_l(c));  out = W_out·SiLU(h_L),
    with e(c) a small MLP on the sinusoidal embedding and e_l per-layer projections of it.
    """

    def __init__(self, cfg: MLPConfig = MLPConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        h = cfg.hidden
        if cfg.embedding == "sinusoidal":
            self.embed: nn.Module = SinusoidalEmbedding(cfg.emb_dim, cfg.max_freq)
        elif cfg.embedding == "fourier":
            self.embed = FourierEmbedding(cfg.emb_dim, cfg.fourier_scale)
        else:
            raise ValueError(f"unknown embedding {cfg.embedding!r}; expected 'sinusoidal' or 'fourier'")
        self.t_mlp = nn.Sequential(nn.Linear(cfg.emb_dim, h), nn.SiLU(), nn.Linear(h, h))
        self.t_mlp2 = nn.Sequential(nn.Linear(cfg.emb_dim, h), nn.SiLU(), nn.Linear(h, h)) if cfg.cond2 else None
        self.inp = nn.Linear(cfg.dim, h)
        self.t_proj = nn.ModuleList([nn.Linear(h, h) for _ in range(cfg.depth)]) if cfg.time_every_layer else None
        self.layers = nn.ModuleList([nn.Linear(h, h) for _ in range(cfg.depth)])
        self.out = nn.Linear(h, cfg.dim)
        #: compute the time features once per distinct level (time_features); off for methods whose levels are
        #: continuous (sCM, MeanFlow): torch.unique has no forward-mode derivative, which their JVP needs
        self.dedupe_levels = True

    def time_features(self, c_noise: Tensor, c2: Tensor | None = None) -> tuple[Tensor, list[Tensor]]:
        """The parts of the forward pass that depend on the noise level only: e(c) and the e_l(c), [B, hidden].

        Consistency methods draw σ from a discrete grid (CD: N = 10 levels on 2D data; CT/iCT: N(k) ≤ 1281),
        so a batch of 512 holds few distinct levels. On the CPU these features are then computed once per
        distinct level and gathered back (4 of the 7 hidden × hidden products of a forward pass; same values,
        same gradients: the gather's backward sums over the samples that share a level). CD's 5000 training
        steps on 2 cores took 244 s before and 160 s after (README, "2-core training time"). On a GPU the data-dependent
        size of ``torch.unique`` would force a host sync and break ``torch.compile``, so every sample is kept.
        """
        flat = c_noise.reshape(-1)
        inverse = None
        if c2 is not None:  # two conditions (MeanFlow's t and t − r): drawn from continuous laws, all distinct
            if self.t_mlp2 is None:
                raise ValueError("this MLP has one conditioning input (MLPConfig.cond2 is False)")
            e = self.t_mlp(self.embed(flat)) + self.t_mlp2(self.embed(c2.reshape(-1)))
            es = nn.functional.silu(e)
            return e, [proj(es) for proj in self.t_proj] if self.t_proj is not None else []
        if (self.dedupe_levels and flat.device.type == "cpu" and flat.numel() > 1
                and not torch.compiler.is_compiling()):
            levels, inv = torch.unique(flat, return_inverse=True)
            if 2 * levels.numel() <= flat.numel():
                flat, inverse = levels, inv
        e = self.t_mlp(self.embed(flat))
        projs: list[Tensor] = []
        if self.t_proj is not None:
            es = nn.functional.silu(e)
            projs = [proj(es) for proj in self.t_proj]
        if inverse is not None:  # index_select: its backward (index_add) is deterministic; e[inverse]'s is not
            e, projs = e.index_select(0, inverse), [p.index_select(0, inverse) for p in projs]
        return e, projs

    def forward(self, x: Tensor, c_noise: Tensor, c2: Tensor | None = None) -> Tensor:
        """F_θ(x, c_noise) [B, dim]; ``c2`` is the second condition of a ``cond2`` network (MeanFlow's t − r)."""
        e, projs = self.time_features(c_noise, c2)
        h = self.inp(x) + e
        if self.t_proj is None:
            for layer in self.layers:
                h = h + layer(nn.functional.silu(h))
        else:
            for p, layer in zip(projs, self.layers):
                h = h + layer(nn.functional.silu(h + p))
        return self.out(nn.functional.silu(h))
