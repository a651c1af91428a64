"""SVI (Kwon & Ye, ICLR 2025; seed 001 Algorithm 1): video inverse problems with an image diffusion prior.

The frames are a batch of the image prior (temporal branches off, Eq. 16). From a batch-consistent start (one noise
image repeated over the frames), for each of ``steps`` noise levels (one denoiser call each, 20 NFE in the paper):

1. Tweedie denoising of every frame, ``x0_hat = D(z, sigma)`` (Eq. 17);
2. ``l`` conjugate-gradient steps on the data term of the whole video started at ``x0_hat`` (Eq. 18, decomposed
   diffusion sampling; :mod:`common.methods.data_term`, where the black-hole closure likelihood's Gauss-Newton
   variant is this toolkit's extension);
3. DDIM re-noising with batch-consistent stochastic noise (Eq. 19-20): ``z' = x_bar + sigma' (eta e_shared +
   sqrt(1 - eta^2) eps_model)``, ``e_shared`` one ``[C, H, W]`` image per sample repeated over the frames.

The last step re-noises to 0, so a sample is the last data-corrected estimate. With a latent prior (the paper's
prior is in pixel space) step 2 runs on the decoded frames and the result is re-encoded (the VAE mean), as
VISION-XL does; a pixel prior makes both the identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from common.methods.base import Method, check_setting, seeded
from common.methods.data_term import DataFit, fit_data, require_data_model
from common.methods.ddim import renoise, sampling_grid, shared_frame_noise, tweedie
from common.recon.prior_set import Priors, check_fits, latent_shape
from common.recon.task import ReconTask
from common.sampling import image_mode


@dataclass(frozen=True)
class SVIConfig:
    """``steps`` = NFE (denoiser calls, one per noise level on the poly-``rho`` grid from ``sigma_max`` to
    ``sigma_min``); ``eta`` the share of batch-consistent stochastic noise (Eq. 20); ``fit``: ``fit.iters`` = l
    CG (or Gauss-Newton) steps per noise level."""

    steps: int = 20
    eta: float = 0.15
    fit: DataFit = DataFit(iters=5)
    sigma_max: float = 80.0
    sigma_min: float = 0.002
    rho: float = 7.0

    def __post_init__(self) -> None:
        if self.steps < 1 or not 0.0 <= self.eta <= 1.0 or not self.sigma_max > self.sigma_min > 0:
            raise ValueError(f"SVIConfig: need steps >= 1, 0 <= eta <= 1, sigma_max > sigma_min > 0, got {self}")

    def describe(self) -> str:
        return (f"SVI: {self.steps} NFE, eta {self.eta:g}, {self.fit.iters} data steps per level "
                "(CG, or Gauss-Newton for closures), batch-consistent noise")


def presets(setting: str, domain: str) -> SVIConfig:
    """``paper`` = seed 001 Sec. 4 (temporal degradations): l = 5, eta = 0.15, 20 NFE; ``default`` the same (it
    fits the CPU budget); ``quick``: 3 NFE, l = 2, for tests."""
    check_setting(setting, domain)
    if setting == "quick":
        return SVIConfig(steps=3, fit=DataFit(iters=2, cg_iters=10))
    return SVIConfig()


def sample_svi(task: ReconTask, priors: Priors, config: SVIConfig, n_samples: int, seed: int) -> torch.Tensor:
    """``n_samples`` SVI reconstructions ``[S, T, C, H, W]`` (network units); sample k from seed ``seed + k``."""
    check_fits(priors, task.name, task.image_shape)
    require_data_model(task)
    return torch.cat([_one(task, priors, config, seeded(seed + k, priors.device)) for k in range(n_samples)])


@torch.no_grad()
def _one(task: ReconTask, priors: Priors, config: SVIConfig, gen: torch.Generator) -> torch.Tensor:
    denoiser = image_mode(priors.image)
    shape = latent_shape(priors, 1, task.frames, task.image_shape)
    dtype, device = next(priors.image.parameters()).dtype, priors.device
    grid = sampling_grid(config.steps, config.sigma_max, config.sigma_min, config.rho)
    z = grid[0] * shared_frame_noise(shape, gen, device, dtype)  # batch-consistent start
    x_bar = None
    for sigma, sigma_next in zip(grid[:-1], grid[1:], strict=True):
        z0, eps = tweedie(denoiser, z, sigma)  # Eq. 17
        x_bar = fit_data(task, priors.decode(z0), config.fit)  # Eq. 18
        z_bar = priors.encode(x_bar) if priors.vae is not None else x_bar
        z = renoise(z_bar, eps, sigma_next, config.eta, shared_frame_noise(shape, gen, device, dtype))  # Eq. 19-20
    return x_bar


SVI = Method("SVI", sample_svi, presets, lambda c: c.describe(),
             "image prior, frames as a batch, CG on the video's data term, batch-consistent DDIM (seed 001)")
