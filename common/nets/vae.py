"""Per-frame KL autoencoder (STeP paper Sec. 3.2 (P1), App. C Eq. 18; LDM-style encoder/decoder).

``encode(x [..., C, H, W]) -> (mean, logvar)`` each ``[..., Cz, H/f, W/f]`` and ``decode(z [..., Cz, h, w]) ->
[..., C, h*f, w*f]`` with ``f = config.downsampling``; any leading dims (frames, batch) are folded, so videos are
encoded frame by frame. No latent scaling factor is applied (as in the STeP reference).

Loss convention (``vae_loss``, Eq. 18): ``L = mean_pixels |D(z) - x| + beta_kl * mean_latent KL(q(z|x) || N(0, I))``
with ``z`` a reparameterised sample; both terms are averaged per element (pixel or latent entry), so ``beta_kl``
is independent of image size. (The STeP reference code instead sums the KL per sample with beta 1e-6.)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from common.nets.config import VAEConfig
from common.nets.layers import Downsample, ResBlock, SelfAttention2d, Upsample, group_norm

LOGVAR_RANGE = (-30.0, 20.0)  # clamp as in LDM, keeps exp(logvar) finite


def _inner(cfg: VAEConfig) -> tuple[int, int]:
    """(input channels, latent channels) of the network itself: per channel when ``cfg.channelwise``."""
    if cfg.channelwise:
        return 1, cfg.latent_channels // cfg.in_channels
    return cfg.in_channels, cfg.latent_channels


class Encoder(nn.Module):
    """``[N, C, H, W] -> [N, 2 * Cz, H/f, W/f]`` (mean and log-variance stacked on channels; C, Cz per channel
    when ``cfg.channelwise``)."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        ch = cfg.channels
        c_in, c_lat = _inner(cfg)
        layers: list[nn.Module] = [nn.Conv2d(c_in, ch[0], 3, padding=1)]
        cur = ch[0]
        for level, width in enumerate(ch):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResBlock(cur, width, zero_out=False))
                cur = width
            if level < len(ch) - 1:
                layers.append(Downsample(cur))
        layers += _mid(cur, cfg.mid_attention)
        layers += [group_norm(cur), nn.SiLU(), nn.Conv2d(cur, 2 * c_lat, 3, padding=1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Decoder(nn.Module):
    """``[N, Cz, h, w] -> [N, C, h*f, w*f]``."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        ch = cfg.channels
        cur = ch[-1]
        c_out, c_lat = _inner(cfg)
        layers: list[nn.Module] = [nn.Conv2d(c_lat, cur, 3, padding=1)]
        layers += _mid(cur, cfg.mid_attention)
        for level in reversed(range(len(ch))):
            for _ in range(cfg.num_res_blocks + 1):
                layers.append(ResBlock(cur, ch[level], zero_out=False))
                cur = ch[level]
            if level > 0:
                layers.append(Upsample(cur))
        layers += [group_norm(cur), nn.SiLU(), nn.Conv2d(cur, c_out, 3, padding=1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z)


def _mid(ch: int, attention: bool) -> list[nn.Module]:
    mid: list[nn.Module] = [ResBlock(ch, ch, zero_out=False)]
    if attention:
        mid.append(SelfAttention2d(ch, 1))
    mid.append(ResBlock(ch, ch, zero_out=False))
    return mid


class FrameVAE(nn.Module):
    """KL autoencoder applied independently to every frame."""

    def __init__(self, config: VAEConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else VAEConfig()
        self.encoder = Encoder(self.config)
        self.decoder = Decoder(self.config)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [..., C, H, W] -> (mean, logvar)``, each ``[..., Cz, H/f, W/f]``."""
        cfg = self.config
        f = cfg.downsampling
        if x.ndim < 3 or x.shape[-3] != cfg.in_channels or x.shape[-1] % f or x.shape[-2] % f:
            raise ValueError(f"FrameVAE.encode: expected [..., {cfg.in_channels}, H, W] with H, W divisible by {f}, "
                             f"got {tuple(x.shape)}")
        lead = x.shape[:-3]
        flat = x.reshape(-1, *x.shape[-3:])
        if cfg.channelwise:
            flat = flat.reshape(-1, 1, *flat.shape[-2:])  # [N * C, 1, H, W]
        moments = self.encoder(flat)
        mean, logvar = moments.chunk(2, dim=1)
        logvar = logvar.clamp(*LOGVAR_RANGE)
        shape = (*lead, cfg.latent_channels, *mean.shape[-2:])
        return mean.reshape(shape), logvar.reshape(shape)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``z [..., Cz, h, w] -> x [..., C, h*f, w*f]``."""
        cz = self.config.latent_channels
        if z.ndim < 3 or z.shape[-3] != cz:
            raise ValueError(f"FrameVAE.decode: expected [..., {cz}, h, w], got {tuple(z.shape)}")
        lead = z.shape[:-3]
        flat = z.reshape(-1, *z.shape[-3:])
        if self.config.channelwise:
            flat = flat.reshape(-1, cz // self.config.in_channels, *flat.shape[-2:])  # [N * C, Cz / C, h, w]
        x = self.decoder(flat)
        return x.reshape(*lead, self.config.in_channels, *x.shape[-2:])

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Reconstruction ``decode(mean)`` (deterministic) or of a posterior sample when a generator is given."""
        mean, logvar = self.encode(x)
        z = mean if generator is None else sample_latent(mean, logvar, generator)
        return self.decode(z)


def sample_latent(mean: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Reparameterised sample ``mean + exp(logvar / 2) * eps`` with ``eps`` drawn from ``generator``."""
    eps = torch.randn(mean.shape, generator=generator, device=generator.device, dtype=mean.dtype).to(mean.device)
    return mean + (0.5 * logvar).exp() * eps


def kl_to_standard_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Element-wise ``KL(N(mean, exp(logvar)) || N(0, 1)) = 0.5 (mean^2 + exp(logvar) - 1 - logvar)``."""
    return 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar)


def vae_loss(vae: FrameVAE, x: torch.Tensor, eps: torch.Tensor, beta_kl: float,
             extra: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None, extra_weight: float = 0.0
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 18 on images ``x [N, C, H, W]``: per-pixel mean L1 + ``beta_kl`` * per-latent-entry mean KL, plus
    ``extra_weight * extra(D(z), x)`` when ``extra`` is given (a further reconstruction term, 0-dim, e.g. a whitened
    Fourier error).

    ``eps`` (``[N, Cz, H/f, W/f]``, standard normal, drawn by the caller from its generator) gives the
    reparameterised sample ``z = mean + exp(logvar / 2) * eps``. Returns ``(loss, l1, kl, extra)`` (0-dim tensors;
    ``extra`` unweighted, 0 when not given).
    """
    mean, logvar = vae.encode(x)
    if eps.shape != mean.shape:
        raise ValueError(f"vae_loss: eps has shape {tuple(eps.shape)}, latents have {tuple(mean.shape)}")
    z = mean + (0.5 * logvar).exp() * eps
    decoded = vae.decode(z)
    rec = F.l1_loss(decoded, x)
    kl = kl_to_standard_normal(mean, logvar).mean()
    more = extra(decoded, x) if extra is not None else torch.zeros((), device=x.device)
    return rec + beta_kl * kl + extra_weight * more, rec.detach(), kl.detach(), more.detach()
