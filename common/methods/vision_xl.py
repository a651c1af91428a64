"""VISION-XL (Kwon & Ye; seed 002 Algorithm 1): video inverse problems with a latent image diffusion prior.

1. Batch-consistent inversion (Step 1, Eq. 1): a frame derived from the measurements is encoded and DDIM-inverted
   to the intermediate level ``start_sigma`` (the paper's tau = 0.3T), and that one latent is copied to all frames.
   The papers' measurements are images (Y[1]); ours are k-space or closures, so the frame is the data step
   (:mod:`common.methods.data_term`, ``fit.iters`` iterations) applied to the prior's mean guess
   ``D(sigma_max e, sigma_max)`` (one denoiser call; e one batch-consistent noise image), frame 0 of it
   (this toolkit's choice).
2. Per noise level (one denoiser call): Tweedie per frame in parallel (Step 2, Eq. 2-3), decode (Eq. 4);
3. ``l`` CG steps on the whole video's data term in pixel space (Step 3, Eq. 5; Gauss-Newton for the closure
   likelihood, this toolkit's extension);
4. a Gaussian low-pass of width ``lam sqrt(1 - abar_t) = lam sigma / sqrt(1 + sigma^2)`` pixels (Step 4, Eq. 6), then
   re-encode (Eq. 7);
5. DDIM re-noising with batch-consistent plus deterministic noise (Step 5, Eq. 8): ``z' = z_bar + sigma' (eta
   e_shared + sqrt(1 - eta^2) eps_model)``.

The last level re-noises to 0 and the sample is its data-corrected pixel estimate (before the low-pass; the
paper's final plain Tweedie step, line 12, is replaced by this so that the returned video fits the data). With a
pixel prior encode/decode are the identity and the method is SVI with the inversion start and the low-pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from common.methods.base import Method, check_setting, seeded
from common.methods.data_term import DataFit, fit_data, require_data_model
from common.methods.ddim import ddim_invert, renoise, sampling_grid, shared_frame_noise, tweedie
from common.recon.prior_set import Priors, check_fits, latent_shape
from common.recon.task import ReconTask
from common.sampling import image_mode

# tau = 0.3T of the paper's prior (SDXL: 1000-step scaled-linear DDPM schedule, beta 0.00085 -> 0.012):
# abar_300 = 0.592, i.e. sigma = sqrt((1 - abar) / abar) = 0.83 in EDM units (computed with numpy; 0.15T: 0.45,
# 0.45T: 1.37). 25 DDIM steps over T leave 0.3 x 25 = 7.5 -> 8 steps from tau.
PAPER_START_SIGMA = 0.83


@dataclass(frozen=True)
class VisionXLConfig:
    """``start_sigma``: level of the inverted start (tau); ``steps``: noise levels (= denoiser calls) from there to
    ``sigma_min``, and the inversion's steps up to it; ``lam``: low-pass width factor (pixels); ``eta``: share of
    batch-consistent stochastic noise; ``fit.iters`` = l data steps per level."""

    start_sigma: float = PAPER_START_SIGMA
    steps: int = 8
    lam: float = 2.0
    eta: float = 0.2
    fit: DataFit = DataFit(iters=10)
    sigma_max: float = 80.0
    sigma_min: float = 0.002
    rho: float = 7.0

    def __post_init__(self) -> None:
        if self.steps < 1 or not 0.0 <= self.eta <= 1.0 or self.lam < 0:
            raise ValueError(f"VisionXLConfig: need steps >= 1, 0 <= eta <= 1, lam >= 0, got {self}")
        if not self.sigma_max >= self.start_sigma > self.sigma_min > 0:
            raise ValueError(f"VisionXLConfig: need sigma_max >= start_sigma > sigma_min > 0, got {self}")

    def describe(self) -> str:
        return (f"VISION-XL: inversion to sigma {self.start_sigma:g}, {self.steps} levels, {self.fit.iters} data "
                f"steps per level, low-pass lam {self.lam:g} px, eta {self.eta:g}")


def presets(setting: str, domain: str) -> VisionXLConfig:
    """``paper`` = seed 002 Sec. 4.1: T = 25, tau = 0.3T (8 levels from sigma 0.83), lam = 2, l = 10 (eta 0.2,
    FACTS s.2); ``default`` the same; ``quick``: 2 levels, l = 2, for tests."""
    check_setting(setting, domain)
    if setting == "quick":
        return VisionXLConfig(steps=2, fit=DataFit(iters=2, cg_iters=10))
    return VisionXLConfig()


def gaussian_lowpass(x: torch.Tensor, width_px: float) -> torch.Tensor:
    """Circular Gaussian blur of std ``width_px`` pixels over the last two axes (unit DC gain; Eq. 6's h)."""
    if width_px <= 0:
        return x
    h, w = x.shape[-2:]
    fy = torch.fft.fftfreq(h, device=x.device, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(w, device=x.device, dtype=torch.float64)[None, :]
    tf = torch.exp(-2.0 * (math.pi * width_px) ** 2 * (fy**2 + fx**2)).to(x.dtype)
    return torch.fft.irfft2(torch.fft.rfft2(x) * tf, s=(h, w))


def inversion_start(task: ReconTask, priors: Priors, config: VisionXLConfig, gen: torch.Generator) -> torch.Tensor:
    """Step 1: the shared start ``[1, T, C', h, w]``, one inverted latent repeated over the frames."""
    denoiser = image_mode(priors.image)
    shape = latent_shape(priors, 1, task.frames, task.image_shape)
    dtype, device = next(priors.image.parameters()).dtype, priors.device
    z = config.sigma_max * shared_frame_noise(shape, gen, device, dtype)
    guess, _ = tweedie(denoiser, z, config.sigma_max)  # the prior's mean guess
    frame = fit_data(task, priors.decode(guess), config.fit)[:, :1]  # measurement-derived frame Y[1]
    z_frame = priors.encode(frame)
    up = sampling_grid(config.steps + 1, config.start_sigma, config.sigma_min, config.rho)[:-1][::-1]
    z_tau = ddim_invert(denoiser, z_frame, up)  # DDIM^-1 from sigma_min to tau, ``steps`` denoiser calls
    return z_tau.expand(shape).contiguous()  # Replicate(z_tau, N)


def sample_vision_xl(task: ReconTask, priors: Priors, config: VisionXLConfig, n_samples: int,
                     seed: int) -> torch.Tensor:
    """``n_samples`` VISION-XL reconstructions ``[S, T, C, H, W]`` (network units); sample k from seed+k."""
    check_fits(priors, task.name, task.image_shape)
    require_data_model(task)
    return torch.cat([_one(task, priors, config, seeded(seed + k, priors.device)) for k in range(n_samples)])


@torch.no_grad()
def _one(task: ReconTask, priors: Priors, config: VisionXLConfig, gen: torch.Generator) -> torch.Tensor:
    denoiser = image_mode(priors.image)
    z = inversion_start(task, priors, config, gen)
    grid = sampling_grid(config.steps, config.start_sigma, config.sigma_min, config.rho)
    x_bar = None
    for sigma, sigma_next in zip(grid[:-1], grid[1:], strict=True):
        z0, eps = tweedie(denoiser, z, sigma)  # Step 2
        x_bar = fit_data(task, priors.decode(z0), config.fit)  # Step 3
        if sigma_next <= 0:
            break
        smooth = gaussian_lowpass(x_bar, config.lam * sigma / math.sqrt(1.0 + sigma**2))  # Step 4
        z_bar = priors.encode(smooth)
        z = renoise(z_bar, eps, sigma_next, config.eta, shared_frame_noise(z.shape, gen, z.device, z.dtype))
    return x_bar


VISION_XL = Method("VISION-XL", sample_vision_xl, presets, lambda c: c.describe(),
                   "latent image prior, batch-consistent inversion start, CG in pixel space, low-pass (seed 002)")
