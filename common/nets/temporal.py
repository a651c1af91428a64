"""Temporal branches of the spatiotemporal UNet and their alpha blending (STeP paper Sec. 3.2, Fig. 3, Eq. 3).

Every spatial module's output ``f_spat`` (frames folded into the batch, ``[B * T, C, H, W]``) is blended with a
temporal branch ``f_temp = branch(f_spat)`` that mixes information across the ``T`` frames of each video:

    f_out = (1 - alpha) * f_spat + alpha * f_temp        (Eq. 3)

with a learnable scalar ``alpha`` initialised at 0 and the branch's output layer zero-initialised, so a freshly
added branch changes nothing. Note that ``f_temp`` carries no internal residual: ``f_temp = 0`` at initialisation,
so ``d f_out / d alpha = -f_spat != 0`` and fine-tuning can start (with ``f_temp = f_spat + branch(...)`` both
``alpha`` and the zero layer would receive zero gradient forever). The ON/OFF switch is ``frames=None``: the
branch is skipped and ``f_out = f_spat`` exactly, i.e. the module is the original per-frame spatial module.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from common.nets.layers import group_norm, zero_


def _to_video(x: torch.Tensor, frames: int) -> torch.Tensor:
    """``[B * T, C, H, W] -> [B, C, T, H, W]``."""
    n, c, h, w = x.shape
    if n % frames:
        raise ValueError(f"temporal branch: batch of {n} frames is not a multiple of {frames} frames per video")
    return x.reshape(n // frames, frames, c, h, w).transpose(1, 2)


def _to_frames(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, T, H, W] -> [B * T, C, H, W]``."""
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, h, w)


class TemporalConv(nn.Module):
    """Two temporal convolutions over frames (kernel ``k x 1 x 1``), GroupNorm + SiLU before each, last one zero.

    ``forward(f [B * T, C, H, W], frames=T) -> [B * T, C, H, W]``.
    """

    def __init__(self, channels: int, kernel: int = 3) -> None:
        super().__init__()
        pad = (kernel // 2, 0, 0)
        self.norm1 = group_norm(channels)
        self.conv1 = nn.Conv3d(channels, channels, (kernel, 1, 1), padding=pad)
        self.norm2 = group_norm(channels)
        self.conv2 = zero_(nn.Conv3d(channels, channels, (kernel, 1, 1), padding=pad))

    def forward(self, f: torch.Tensor, frames: int) -> torch.Tensor:
        v = _to_video(f, frames)
        v = self.conv1(F.silu(self.norm1(v)))
        v = self.conv2(F.silu(self.norm2(v)))
        return _to_frames(v)


def frame_encoding(frames: int, channels: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Sinusoidal encoding of the frame index, ``[T, C]`` (so temporal attention knows the frame order)."""
    half = channels // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=device, dtype=torch.float32) / max(half, 1))
    args = torch.arange(frames, device=device, dtype=torch.float32)[:, None] * freqs[None, :]
    enc = torch.cat([args.sin(), args.cos()], dim=1)
    if enc.shape[1] < channels:
        enc = F.pad(enc, (0, channels - enc.shape[1]))
    return enc.to(dtype)


class TemporalAttention(nn.Module):
    """Multi-head self-attention over the frames at each spatial position, zero-initialised output projection.

    ``forward(f [B * T, C, H, W], frames=T) -> [B * T, C, H, W]``.
    """

    def __init__(self, channels: int, num_heads: int, max_frames: int = 256) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"TemporalAttention: {channels} channels not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.max_frames = max_frames
        self.frame_offset = 0  # index of the first frame in the encoding (training on clips: see frame_offset())
        self.norm = group_norm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = zero_(nn.Linear(channels, channels))

    def forward(self, f: torch.Tensor, frames: int) -> torch.Tensor:
        if frames > self.max_frames:
            raise ValueError(f"TemporalAttention: {frames} frames exceed max_frames={self.max_frames}")
        v = self.norm(_to_video(f, frames))  # [B, C, T, H, W]
        b, c, t, h, w = v.shape
        tokens = v.permute(0, 3, 4, 2, 1).reshape(b * h * w, t, c)
        enc = frame_encoding(self.frame_offset + t, c, f.device, f.dtype)[self.frame_offset:]
        tokens = tokens + enc[None]
        q, k, val = self.qkv(tokens).reshape(b * h * w, t, 3, self.num_heads, c // self.num_heads).permute(
            2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, val).transpose(1, 2).reshape(b * h * w, t, c)
        out = self.proj(out).reshape(b, h, w, t, c).permute(0, 3, 4, 1, 2)  # [B, T, C, H, W]
        return out.reshape(b * t, c, h, w)


@contextlib.contextmanager
def frame_offset(model: nn.Module, offset: int) -> Iterator[None]:
    """Number the frames of the next calls ``offset, offset + 1, ...`` in every temporal attention of ``model``.

    Training on short clips with a random offset lets the attention see every frame index of the long videos it
    will sample (the sinusoidal encoding is absolute), so a prior trained on 16-frame clips works on 64 frames.
    """
    mods = [m for m in model.modules() if isinstance(m, TemporalAttention)]
    old = [m.frame_offset for m in mods]
    for m in mods:
        m.frame_offset = int(offset)
    try:
        yield
    finally:
        for m, o in zip(mods, old, strict=True):
            m.frame_offset = o


class TemporalBlend(nn.Module):
    """Alpha blending of Eq. 3 around a temporal branch, with the ON/OFF switch ``frames=None`` (= OFF).

    ``forward(f_spat [B * T, C, H, W], frames: int | None) -> [B * T, C, H, W]``.
    """

    def __init__(self, branch: nn.Module) -> None:
        super().__init__()
        self.branch = branch
        self.alpha = nn.Parameter(torch.zeros(1))

    def forward(self, f_spat: torch.Tensor, frames: int | None) -> torch.Tensor:
        if frames is None:
            return f_spat
        f_temp = self.branch(f_spat, frames)
        alpha = self.alpha.to(f_spat.dtype)
        return (1 - alpha) * f_spat + alpha * f_temp
