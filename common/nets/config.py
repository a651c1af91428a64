"""Frozen configuration dataclasses of the prior networks (STeP paper Sec. 3.2, App. C, Table 4).

The defaults are small CPU-friendly models; the paper-scale settings live in ``configs/prior_*.yaml``.
``config_from_dict`` builds any of these dataclasses from a plain mapping (YAML/JSON) and rejects unknown keys
with an error that names where the mapping came from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, get_type_hints

T = TypeVar("T")


@dataclass(frozen=True)
class UNetConfig:
    """Spatiotemporal (video) UNet, EDM-preconditioned (``VideoUNet``).

    in_channels: channels of the (latent) frames, ``C`` of ``[B, T, C, H, W]``.
    image_size: spatial size ``H = W`` of the (latent) frames the model is trained on (used as the default shape
        when sampling; the network itself accepts any size divisible by ``patch * 2 ** (len(channels) - 1)``).
    channels: feature widths per resolution level (Table 4: ``[128, 256, 512, 512]``); each level after the first
        halves the resolution.
    num_res_blocks: residual blocks per level on the way down (the way up has one more, as in ADM/EDM).
    attn_levels: level indices (0 = full resolution) with spatial self-attention.
    num_heads: heads of every (spatial and temporal) attention layer.
    temporal: build the temporal branches (``False`` gives the image UNet of the first training stage).
    temporal_kernel: kernel size of the temporal convolutions over frames (odd).
    temporal_attn_levels: level indices with temporal self-attention over frames (default: the lowest level).
    max_frames: longest video the temporal attention's sinusoidal frame encoding is laid out for (only a guard).
    dropout: dropout rate in the residual blocks (uses the global torch RNG; keep 0 for bit-exact resumes).
    sigma_data: EDM ``sigma_data`` of the preconditioning (latent standard deviation).
    patch: side of the square pixel patches folded into channels before the first convolution and unfolded after
        the last (an exact, invertible space-to-depth; 1 = off). A pixel-space prior with ``patch=2`` runs its
        network on a 4x smaller grid at no loss of representation (no VAE ceiling).
    """

    in_channels: int = 1
    image_size: int = 32
    channels: tuple[int, ...] = (32, 64, 128)
    num_res_blocks: int = 1
    attn_levels: tuple[int, ...] = (2,)
    num_heads: int = 4
    temporal: bool = True
    temporal_kernel: int = 3
    temporal_attn_levels: tuple[int, ...] = (2,)
    max_frames: int = 256
    dropout: float = 0.0
    sigma_data: float = 0.5
    patch: int = 1

    def __post_init__(self) -> None:
        _check_positive(self, "in_channels", "image_size", "num_res_blocks", "num_heads", "max_frames")
        _check_channels(self, self.channels)
        n = len(self.channels)
        for name in ("attn_levels", "temporal_attn_levels"):
            bad = [i for i in getattr(self, name) if not 0 <= i < n]
            if bad:
                raise ValueError(f"UNetConfig.{name}: levels {bad} out of range 0..{n - 1}")
        if self.temporal_kernel < 1 or self.temporal_kernel % 2 == 0:
            raise ValueError(f"UNetConfig.temporal_kernel must be odd and >= 1, got {self.temporal_kernel}")
        if not isinstance(self.patch, int) or self.patch < 1:
            raise ValueError(f"UNetConfig.patch must be an integer >= 1, got {self.patch!r}")
        if self.image_size % (self.patch * 2 ** (n - 1)):
            raise ValueError(f"UNetConfig.image_size {self.image_size} not divisible by patch * 2**{n - 1} = "
                             f"{self.patch * 2 ** (n - 1)}")
        for i in set(self.attn_levels) | set(self.temporal_attn_levels):
            if self.channels[i] % self.num_heads:
                raise ValueError(f"UNetConfig: channels[{i}]={self.channels[i]} not divisible by num_heads")
        if not 0.0 <= self.dropout < 1.0 or self.sigma_data <= 0:
            raise ValueError(f"UNetConfig: need 0 <= dropout < 1 and sigma_data > 0, got {self.dropout}, "
                             f"{self.sigma_data}")


@dataclass(frozen=True)
class VAEConfig:
    """Per-frame KL autoencoder (paper Eq. 18; LDM-style encoder/decoder).

    in_channels: image channels (1 black hole; 2 = real, imag for MRI).
    latent_channels: latent channels (Table 4: 1 black hole, 2 MRI).
    channels: widths per level; the downsampling factor is ``2 ** (len(channels) - 1)`` (Table 4:
        ``[64, 128, 256, 256]`` -> 8x, ``[256, 512, 512]`` -> 4x).
    num_res_blocks: residual blocks per level (decoder: one more, as in LDM).
    mid_attention: self-attention in the bottleneck of encoder and decoder.
    channelwise: encode every input channel separately with one shared 1-channel autoencoder and stack the
        latents (``latent_channels / in_channels`` per input channel). For complex MRI frames (real, imag): the two
        parts, exchangeable under a random global phase, get the same encoder, so neither can be dropped (a joint
        2-channel VAE trained with L1 reconstructed the real part and output ~0 for the imaginary part).
    """

    in_channels: int = 1
    latent_channels: int = 1
    channels: tuple[int, ...] = (32, 64)
    num_res_blocks: int = 1
    mid_attention: bool = True
    channelwise: bool = False

    def __post_init__(self) -> None:
        _check_positive(self, "in_channels", "latent_channels", "num_res_blocks")
        _check_channels(self, self.channels)
        if self.channelwise and self.latent_channels % self.in_channels:
            raise ValueError(f"VAEConfig: channelwise needs latent_channels ({self.latent_channels}) divisible by "
                             f"in_channels ({self.in_channels})")

    @property
    def downsampling(self) -> int:
        """Spatial downsampling factor of the encoder."""
        return 2 ** (len(self.channels) - 1)


def _check_positive(cfg: Any, *names: str) -> None:
    for name in names:
        v = getattr(cfg, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{type(cfg).__name__}.{name} must be a positive integer, got {v!r}")


def _check_channels(cfg: Any, channels: tuple[int, ...]) -> None:
    if len(channels) < 1 or any((not isinstance(c, int)) or c < 1 for c in channels):
        raise ValueError(f"{type(cfg).__name__}.channels must be a non-empty list of positive ints, got {channels!r}")


def config_from_dict(cls: type[T], data: Mapping[str, Any], source: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; lists become tuples; unknown keys raise naming ``source``.

    Nested dataclass fields are built recursively (``None`` stays ``None`` for optional sections).
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"{source}: expected a mapping for {cls.__name__}, found {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown} for {cls.__name__}; allowed: {sorted(fields)}")
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        sub = _dataclass_in(hints[key])
        if sub is not None and isinstance(value, Mapping):
            kwargs[key] = config_from_dict(sub, value, f"{source}: {key}")
        elif isinstance(value, list):
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: {exc}") from exc


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """JSON/YAML-friendly dict of a (possibly nested) config dataclass; tuples become lists."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            v = config_to_dict(v)
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out


def _dataclass_in(hint: Any) -> type | None:
    """The dataclass type inside ``hint`` (``X`` or ``X | None``), else None."""
    if dataclasses.is_dataclass(hint):
        return hint
    for arg in getattr(hint, "__args__", ()):
        if dataclasses.is_dataclass(arg):
            return arg
    return None
