"""The spatiotemporal UNet of STeP (paper Sec. 3.2, Fig. 3) and its image mode.

``VideoUNet(config)`` is an ADM/EDM-style 2-D UNet (noise-level embedding, residual blocks, self-attention at low
resolution) whose every residual block is followed by a zero-initialised temporal convolution branch and whose
chosen low-resolution levels get temporal self-attention over frames, each blended by Eq. 3 with ``alpha = 0`` at
initialisation. The backbone is wrapped by ``common.denoisers.EDMPrecond``, so

    model(z [B, T, C, H, W], sigma [B], video=True) -> D(z; sigma) [B, T, C, H, W]

is the denoised estimate and the model satisfies the project's Denoiser protocol. ``video=False`` is the OFF
switch: frames are folded into the batch and no temporal operation runs (the image diffusion model, IDM), so
``functools.partial(model, video=False)`` is the IDM denoiser.
A model built with ``config.temporal = False`` has no temporal branches at all (first training stage) and is
per-frame in either mode; ``VideoUNet.from_image_unet`` turns it into the spatiotemporal UNet.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from common.denoisers import EDMPrecond
from common.nets.config import UNetConfig
from common.nets.layers import Downsample, NoiseEmbedding, ResBlock, SelfAttention2d, Upsample, group_norm, zero_
from common.nets.temporal import TemporalAttention, TemporalBlend, TemporalConv

TEMPORAL_KEYS = (".tconv.", ".tattn.")  # parameter-name markers of the temporal branches


class Unit(nn.Module):
    """Residual block -> [temporal conv blend] -> [spatial attention] -> [temporal attention blend].

    ``forward(x [B * T, Cin, H, W], emb [B * T, E], frames: int | None) -> [B * T, Cout, H, W]``;
    ``frames=None`` switches every temporal branch off.
    """

    def __init__(self, in_ch: int, out_ch: int, emb_ch: int, cfg: UNetConfig, level: int) -> None:
        super().__init__()
        self.res = ResBlock(in_ch, out_ch, emb_ch, cfg.dropout)
        self.tconv = TemporalBlend(TemporalConv(out_ch, cfg.temporal_kernel)) if cfg.temporal else None
        self.attn = SelfAttention2d(out_ch, cfg.num_heads) if level in cfg.attn_levels else None
        use_tattn = cfg.temporal and level in cfg.temporal_attn_levels
        self.tattn = TemporalBlend(TemporalAttention(out_ch, cfg.num_heads, cfg.max_frames)) if use_tattn else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor, frames: int | None) -> torch.Tensor:
        x = self.res(x, emb)
        if self.tconv is not None:
            x = self.tconv(x, frames)
        if self.attn is not None:
            x = self.attn(x)
        if self.tattn is not None:
            x = self.tattn(x, frames)
        return x


class UNetBackbone(nn.Module):
    """The raw network ``F(x, c_noise)`` preconditioned by ``EDMPrecond``.

    ``forward(x [B, T, C, H, W], c_noise [B], video: bool) -> [B, T, C, H, W]``.
    """

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        ch = cfg.channels
        emb_ch = 4 * ch[0]
        self.embed = NoiseEmbedding(ch[0] + ch[0] % 2, emb_ch)
        self.patch = cfg.patch
        packed = cfg.in_channels * cfg.patch ** 2  # channels after space-to-depth
        self.conv_in = nn.Conv2d(packed, ch[0], 3, padding=1)
        self.down = nn.ModuleList()
        skips = [ch[0]]
        cur = ch[0]
        for level, width in enumerate(ch):
            for _ in range(cfg.num_res_blocks):
                self.down.append(Unit(cur, width, emb_ch, cfg, level))
                cur = width
                skips.append(cur)
            if level < len(ch) - 1:
                self.down.append(Downsample(cur))
                skips.append(cur)
        last = len(ch) - 1
        mid_cfg = dataclasses.replace(cfg, attn_levels=(last,), temporal_attn_levels=(last,))
        self.mid = nn.ModuleList([Unit(cur, cur, emb_ch, mid_cfg, last), Unit(cur, cur, emb_ch, mid_cfg, -1)])
        self.up = nn.ModuleList()
        for level in reversed(range(len(ch))):
            for _ in range(cfg.num_res_blocks + 1):
                self.up.append(Unit(cur + skips.pop(), ch[level], emb_ch, cfg, level))
                cur = ch[level]
            if level > 0:
                self.up.append(Upsample(cur))
        self.norm_out = group_norm(cur)
        self.conv_out = zero_(nn.Conv2d(cur, packed, 3, padding=1))

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, video: bool = True) -> torch.Tensor:
        b, t, c, h, w = x.shape
        frames = t if video else None
        emb = self.embed(c_noise.reshape(b)).repeat_interleave(t, dim=0)  # [B * T, E]
        hcur = self.conv_in(F.pixel_unshuffle(x.reshape(b * t, c, h, w), self.patch))
        skips = [hcur]
        for m in self.down:
            hcur = m(hcur) if isinstance(m, Downsample) else m(hcur, emb, frames)
            skips.append(hcur)
        for m in self.mid:
            hcur = m(hcur, emb, frames)
        for m in self.up:
            if isinstance(m, Upsample):
                hcur = m(hcur)
            else:
                hcur = m(torch.cat([hcur, skips.pop()], dim=1), emb, frames)
        out = F.pixel_shuffle(self.conv_out(F.silu(self.norm_out(hcur))), self.patch)
        return out.reshape(b, t, c, h, w)


class VideoUNet(nn.Module):
    """EDM-preconditioned spatiotemporal UNet: ``model(z [B, T, C, H, W], sigma [B], video=True) -> D(z; sigma)``.

    ``sigma`` may also be a scalar (broadcast over the batch). Output has the shape and dtype of ``z``.
    """

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else UNetConfig()
        self.precond = EDMPrecond(UNetBackbone(self.config), self.config.sigma_data)

    def forward(self, z: torch.Tensor, sigma: torch.Tensor | float, video: bool = True) -> torch.Tensor:
        cfg = self.config
        if z.ndim != 5 or z.shape[2] != cfg.in_channels:
            raise ValueError(f"VideoUNet: expected z of shape [B, T, {cfg.in_channels}, H, W], got {tuple(z.shape)}")
        f = cfg.patch * 2 ** (len(cfg.channels) - 1)
        if z.shape[-1] % f or z.shape[-2] % f:
            raise ValueError(f"VideoUNet: H, W = {tuple(z.shape[-2:])} must be divisible by {f}")
        sigma = torch.as_tensor(sigma, device=z.device).reshape(-1)
        if sigma.numel() not in (1, z.shape[0]):
            raise ValueError(f"VideoUNet: sigma must have 1 or B={z.shape[0]} entries, got {sigma.numel()}")
        if not bool((sigma > 0).all()):
            raise ValueError("VideoUNet: sigma must be > 0")
        return self.precond(z, sigma, video=video)

    @classmethod
    def from_image_unet(cls, image: VideoUNet, **overrides) -> VideoUNet:
        """Spatiotemporal UNet initialised from an image UNet: spatial weights copied, temporal branches fresh.

        The new config is ``image.config`` with ``temporal=True`` and ``overrides`` applied; the overrides may only
        touch temporal fields. Raises if any spatial tensor is missing or differs in shape.
        """
        allowed = {"temporal_kernel", "temporal_attn_levels", "max_frames"}
        bad = sorted(set(overrides) - allowed)
        if bad:
            raise ValueError(f"VideoUNet.from_image_unet: only temporal fields may change, got {bad}")
        model = cls(dataclasses.replace(image.config, temporal=True, **overrides))
        load_spatial_state(model, image.state_dict(), source="image UNet")
        return model


def load_spatial_state(model: VideoUNet, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy an image UNet's ``state`` into ``model``; every non-temporal tensor must be present with equal shape."""
    own = model.state_dict()
    spatial = {k: v for k, v in own.items() if not any(m in k for m in TEMPORAL_KEYS)}
    missing = sorted(set(spatial) - set(state))
    unexpected = sorted(k for k in state if k not in own or any(m in k for m in TEMPORAL_KEYS))
    shapes = sorted(k for k in set(spatial) & set(state) if tuple(state[k].shape) != tuple(spatial[k].shape))
    if missing or unexpected or shapes:
        raise ValueError(f"{source}: weights do not fit the spatiotemporal UNet: missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}, shape mismatch {shapes[:3]}")
    model.load_state_dict(state, strict=False)


def count_parameters(module: nn.Module, temporal: bool | None = None) -> int:
    """Number of parameters; ``temporal=True``/``False`` counts only the temporal/spatial ones."""
    total = 0
    for name, p in module.named_parameters():
        is_t = any(m in "." + name for m in TEMPORAL_KEYS)
        if temporal is None or temporal == is_t:
            total += p.numel()
    return total
