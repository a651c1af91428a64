"""Training objectives as modules (so DistributedDataParallel wraps the whole loss computation).

- ``VAEObjective``: paper Eq. 18 (see ``common.nets.vae.vae_loss`` for what ``beta_kl`` multiplies), optionally plus
  ``fourier_weight`` x the whitened low-frequency error below (a VAE trained for closure data from the start).
- ``DecoderObjective``: the decoder fine-tune of a trained VAE (encoder frozen): per-pixel L1 of Eq. 18 plus a
  whitened low-frequency error, the mean over the kept Fourier components of ``|F(D(z)) - F(x)|^2 / P`` with ``P``
  the training frames' mean power at that component, i.e. the squared relative error per visibility that closure
  data measure (a 3 % error per component already doubles chi~2; ``blackhole.ceiling``).
- ``DiffusionObjective``: denoising score matching (paper Eq. 19) in the EDM form of Karras et al. 2022:
  ``E[lambda(sigma) |D(z0 + sigma n; sigma) - z0|^2]`` with ``lambda = (sigma^2 + sd^2) / (sigma sd)^2``, which equals
  ``sigma^2 |s_theta - grad log p(z_t|z0)|^2`` of Eq. 19 up to the sigma-dependent weight that makes the effective
  per-sigma loss unit-scaled. All random inputs (noise, sigma, eps) are drawn by the caller from its generator.
"""

from __future__ import annotations

import torch
from torch import nn

from common.nets.unet import VideoUNet
from common.nets.vae import FrameVAE, vae_loss


class VAEObjective(nn.Module):
    """``forward(x [N, C, H, W], eps [N, Cz, h, w]) -> (loss, l1, kl, fourier)``: Eq. 18 plus, when ``power`` is
    given, ``weight`` x ``whitened_error`` on the components within ``radius`` bins (``fourier`` 0 otherwise);
    ``flux_norm``: each frame's error relative to its own flux (``whitened_error``'s ``dc_power``)."""

    def __init__(self, vae: FrameVAE, beta_kl: float, power: torch.Tensor | None = None, weight: float = 0.0,
                 radius: float = 6.0, flux_norm: bool = False) -> None:
        super().__init__()
        self.model = vae
        self.beta_kl = float(beta_kl)
        self.weight = float(weight)
        if power is not None and not self.weight > 0:
            raise ValueError(f"VAEObjective: a Fourier term needs weight > 0, got {weight}")
        if flux_norm and power is None:
            raise ValueError("VAEObjective: flux_norm needs the Fourier term (power)")
        self.fourier = None if power is None else FourierTerm(power, radius, flux_norm)

    def forward(self, x: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.fourier is None:
            return vae_loss(self.model, x, eps, self.beta_kl)
        return vae_loss(self.model, x, eps, self.beta_kl, extra=self.fourier, extra_weight=self.weight)


def low_frequency_mask(height: int, width: int, radius: float) -> torch.Tensor:
    """``[H, W]`` bool: the components of ``torch.fft.fft2`` within ``radius`` FFT bins of the origin."""
    ky = torch.fft.fftfreq(height, dtype=torch.float64) * height
    kx = torch.fft.fftfreq(width, dtype=torch.float64) * width
    return ky[:, None].square() + kx[None, :].square() <= radius**2


def mean_power(frames: torch.Tensor) -> torch.Tensor:
    """``frames [N, C, H, W] -> [C, H, W]``: mean ``|fft2|^2`` per component (``DecoderObjective`` whitening)."""
    return torch.fft.fft2(frames.double()).abs().square().mean(0)


def whitening_weights(power: torch.Tensor, radius: float) -> torch.Tensor:
    """``power [C, H, W]`` (``mean_power``) -> float32 ``[C, H, W]`` weights ``1 / (power_k K)`` on the ``K``
    components of ``low_frequency_mask(H, W, radius)`` per channel, 0 elsewhere (``whitened_error`` is then the mean
    squared relative error per kept component)."""
    mask = low_frequency_mask(power.shape[-2], power.shape[-1], radius).expand_as(power)
    if not bool((power[mask] > 0).all()):
        raise ValueError("whitening_weights: the training frames have no power at some kept Fourier component")
    return (torch.where(mask, 1.0 / power.clamp(min=torch.finfo(torch.float64).tiny), 0.0) / mask.sum()).float()


FLUX_FLOOR = 1e-3
"""``whitened_error`` with ``dc_power``: a frame's squared flux counts as at least this fraction of ``dc_power``."""


def whitened_error(rec: torch.Tensor, x: torch.Tensor, whitening: torch.Tensor,
                   dc_power: torch.Tensor | None = None) -> torch.Tensor:
    """``sum_k whitening_k |F(rec)_k - F(x)_k|^2`` per image of ``[N, C, H, W]``, averaged over ``N`` (0-dim).

    ``dc_power [C]`` (the training frames' mean power at the zero frequency, ``mean_power(...)[:, 0, 0]``): each
    image channel's error is multiplied by ``dc_power / |F(x)_0|^2``, its squared flux floored at ``FLUX_FLOOR x
    dc_power``: errors relative to the frame's own flux, since closure quantities are scale invariant (without it a
    faint frame's relative errors weigh ``(flux / mean flux)^2`` less).
    """
    diff = torch.fft.fft2(rec.float()) - torch.fft.fft2(x.float())
    err = (diff.abs().square() * whitening).sum(dim=(-2, -1))  # [N, C]
    if dc_power is not None:
        flux2 = x.float().sum(dim=(-2, -1)).square()
        err = err * dc_power / torch.maximum(flux2, FLUX_FLOOR * dc_power)
    return err.sum(dim=-1).mean()


class FourierTerm(nn.Module):
    """``forward(rec, x [N, C, H, W]) -> 0-dim``: ``whitened_error`` with the weights of ``power [C, H, W]``
    (``mean_power`` of training frames) within ``radius`` bins, and with ``flux_norm`` its ``dc_power``
    (``power[:, 0, 0]``); the Fourier term shared by the VAE and decoder objectives."""

    def __init__(self, power: torch.Tensor, radius: float, flux_norm: bool = False) -> None:
        super().__init__()
        self.register_buffer("whitening", whitening_weights(power, radius))
        self.register_buffer("dc_power", power[..., 0, 0].float() if flux_norm else None)

    def forward(self, rec: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return whitened_error(rec, x, self.whitening, self.dc_power)


class DecoderObjective(nn.Module):
    """``forward(x [N, C, H, W], eps [N, Cz, h, w]) -> (loss, l1, fourier)`` with the encoder of ``vae`` frozen.

    ``loss = mean |D(z) - x| + weight * fourier``, ``z = mean + exp(logvar / 2) eps`` from the frozen encoder,
    ``fourier = sum_k w_k |F(D(z))_k - F(x)_k|^2 / N`` with ``w_k = 1 / (power_k * K)`` on the ``K`` components of
    ``low_frequency_mask(H, W, radius)`` (per channel) and 0 elsewhere: the mean squared relative error per
    component (``flux_norm``: relative to each frame's own flux, ``whitened_error``'s ``dc_power``).
    ``power [C, H, W]``: ``mean_power`` of training frames.
    """

    def __init__(self, vae: FrameVAE, power: torch.Tensor, weight: float, radius: float,
                 flux_norm: bool = False) -> None:
        super().__init__()
        self.model = vae
        self.weight = float(weight)
        self.fourier = FourierTerm(power, radius, flux_norm)
        for p in vae.encoder.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with torch.no_grad():
            mean, logvar = self.model.encode(x)
        rec = self.model.decode(mean + (0.5 * logvar).exp() * eps)
        l1 = (rec - x).abs().mean()
        fourier = self.fourier(rec, x)
        return l1 + self.weight * fourier, l1.detach(), fourier.detach()


class DiffusionObjective(nn.Module):
    """``forward(z0 [B, T, C, H, W], sigma [B], noise like z0, video: bool) -> (loss,)``."""

    def __init__(self, unet: VideoUNet) -> None:
        super().__init__()
        self.model = unet

    def forward(self, z0: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor, video: bool
                ) -> tuple[torch.Tensor, ...]:
        sd = self.model.config.sigma_data
        s = sigma.reshape(-1, *([1] * (z0.ndim - 1)))
        denoised = self.model(z0 + s * noise, sigma, video=video)
        weight = (s**2 + sd**2) / (s * sd) ** 2
        return ((weight * (denoised.float() - z0) ** 2).mean(),)
