"""Spatial building blocks shared by the UNet and the VAE: normalisation, residual block, self-attention,
noise-level embedding, resampling.

All spatial layers act on frame batches ``[N, C, H, W]`` (a video ``[B, T, C, H, W]`` is folded to ``N = B * T``),
so they are strictly per-frame.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def group_norm(channels: int, max_groups: int = 32) -> nn.GroupNorm:
    """GroupNorm with the largest number of groups <= ``max_groups`` that divides ``channels``."""
    groups = max(g for g in range(1, min(max_groups, channels) + 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels, eps=1e-6)


def zero_(module: nn.Module) -> nn.Module:
    """Zero every parameter of ``module`` in place and return it (zero-initialised output layers)."""
    with torch.no_grad():
        for p in module.parameters():
            p.zero_()
    return module


class NoiseEmbedding(nn.Module):
    """Sinusoidal embedding of the EDM noise conditioning ``c_noise = log(sigma) / 4`` followed by a 2-layer MLP.

    ``forward(c_noise [N]) -> [N, emb_channels]``.
    """

    def __init__(self, base_channels: int, emb_channels: int, max_period: float = 10000.0) -> None:
        super().__init__()
        if base_channels % 2:
            raise ValueError(f"NoiseEmbedding: base_channels must be even, got {base_channels}")
        half = base_channels // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(base_channels, emb_channels), nn.SiLU(),
                                 nn.Linear(emb_channels, emb_channels))

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        # c_noise is O(1); scale by 1000 so the highest frequencies resolve small changes in sigma (ADM/EDM style).
        args = (1000.0 * c_noise.float())[:, None] * self.freqs[None, :]
        return self.mlp(torch.cat([args.cos(), args.sin()], dim=1).to(self.freqs.dtype))


class ResBlock(nn.Module):
    """Residual block ``x + F(x)`` (1x1 skip when widths differ) with optional additive noise embedding.

    ``forward(x [N, Cin, H, W], emb [N, E] | None) -> [N, Cout, H, W]``.
    """

    def __init__(self, in_ch: int, out_ch: int, emb_channels: int | None = None, dropout: float = 0.0,
                 zero_out: bool = True) -> None:
        super().__init__()
        self.norm1 = group_norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_channels, out_ch) if emb_channels else None
        self.norm2 = group_norm(out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        if zero_out:
            zero_(self.conv2)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.emb is not None:
            if emb is None:
                raise ValueError("ResBlock: this block needs a noise embedding, got None")
            h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention2d(nn.Module):
    """Multi-head self-attention over the ``H * W`` positions of each frame, residual, zero-initialised output.

    ``forward(x [N, C, H, W]) -> [N, C, H, W]``.
    """

    def __init__(self, channels: int, num_heads: int) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"SelfAttention2d: {channels} channels not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = zero_(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, self.num_heads, c // self.num_heads, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.proj(out.transpose(-1, -2).reshape(n, c, h, w))


class Downsample(nn.Module):
    """Strided 3x3 convolution, halves ``H`` and ``W``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour 2x upsampling followed by a 3x3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
