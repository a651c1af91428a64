"""Training objectives as modules (so DistributedDataParallel wraps the whole loss computation).

- ``VAEObjective``: paper Eq. 18 (see ``common.nets.vae.vae_loss`` for what ``beta_kl`` multiplies).
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
    """``forward(x [N, C, H, W], eps [N, Cz, h, w]) -> (loss, l1, kl)``."""

    def __init__(self, vae: FrameVAE, beta_kl: float) -> None:
        super().__init__()
        self.model = vae
        self.beta_kl = float(beta_kl)

    def forward(self, x: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return vae_loss(self.model, x, eps, self.beta_kl)


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
