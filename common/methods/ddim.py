"""DDIM in EDM variables, for the image-prior methods (SVI, VISION-XL, TCVR).

The priors are EDM denoisers ``D(z, sigma)`` with ``z = x0 + sigma e``. A VP state ``x_t`` with
``abar_t = 1 / (1 + sigma^2)`` is ``x_t = sqrt(abar_t) z``, so DDIM's update (SVI Eq. 8, 14, 19-20)

    x_{t-1} = sqrt(abar') x0 + sqrt(1 - abar') e_hat

reads ``z' = x0 + sigma' e_hat`` here, with Tweedie's ``x0 = D(z, sigma)`` and the model's noise
``eps = (z - x0) / sigma`` (SVI Eq. 8 / VISION-XL Eq. 3). The stochastic mix follows the SVI / DDS reference form
``e_hat = eta e + sqrt(1 - eta^2) eps`` (FACTS s.2; the paper's ``eta beta_t`` with ``beta_t`` taken as
``sqrt(1 - abar')``), and ``e`` is batch-consistent (one frame repeated over T, SVI Eq. 20) where the method says so.
"""

from __future__ import annotations

import math

import torch

from common.denoisers import Denoiser
from common.sampling.ode import check_denoised
from common.schedules import poly_sigmas


def sampling_grid(steps: int, sigma_max: float, sigma_min: float, rho: float = 7.0) -> list[float]:
    """``steps`` noise levels from ``sigma_max`` to ``sigma_min`` (poly-``rho``), then a trailing 0: step i works at
    ``grid[i]`` and moves to ``grid[i + 1]`` (``steps`` denoiser calls in all)."""
    if steps < 1:
        raise ValueError(f"sampling_grid: steps must be >= 1, got {steps}")
    if steps == 1:
        return [float(sigma_max), 0.0]
    return [*poly_sigmas(sigma_max, sigma_min, steps, rho).tolist(), 0.0]


def tweedie(denoiser: Denoiser, z: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x0_hat, eps_hat)`` of ``z [B, T, C, H, W]`` at noise level ``sigma``: ``x0 = D(z, sigma)``,
    ``eps = (z - x0) / sigma``."""
    x0 = check_denoised(denoiser(z, z.new_full((z.shape[0],), float(sigma))), z)
    return x0, (z - x0) / sigma


def shared_frame_noise(shape: tuple[int, ...] | torch.Size, generator: torch.Generator, device: torch.device,
                       dtype: torch.dtype) -> torch.Tensor:
    """Batch-consistent noise ``[B, T, C, H, W]``: one ``[C, H, W]`` standard normal image per sample, repeated over
    the T frames (SVI Eq. 20, STeP Eq. 17)."""
    b, t = shape[0], shape[1]
    frame = torch.randn((b, *shape[2:]), generator=generator, device=device, dtype=dtype)
    return frame.unsqueeze(1).expand(b, t, *shape[2:]).contiguous()


def renoise(x0: torch.Tensor, eps_model: torch.Tensor, sigma_next: float, eta: float,
            noise: torch.Tensor) -> torch.Tensor:
    """DDIM step to ``sigma_next`` from the (data-corrected) clean estimate ``x0`` (SVI Eq. 19-20):
    ``z' = x0 + sigma' (eta noise + sqrt(1 - eta^2) eps_model)``; ``sigma_next = 0`` returns ``x0``."""
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"renoise: eta must be in [0, 1], got {eta}")
    if sigma_next <= 0:
        return x0
    return x0 + sigma_next * (eta * noise + math.sqrt(1.0 - eta**2) * eps_model)


def ddim_step(denoiser: Denoiser, z: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
    """One deterministic DDIM step (eta = 0) from ``sigma`` to ``sigma_next`` (either direction): ``z' = x0 +
    sigma' eps`` with Tweedie's ``x0`` and ``eps`` at ``sigma``. Used forwards by TCVR's reverse process R and
    backwards by VISION-XL's inversion (DDIM^-1, VISION-XL Eq. 1)."""
    x0, eps = tweedie(denoiser, z, sigma)
    return x0 + sigma_next * eps


def ddim_invert(denoiser: Denoiser, x0: torch.Tensor, sigmas_up: list[float]) -> torch.Tensor:
    """DDIM inversion of a clean ``x0`` along the increasing grid ``sigmas_up`` (``sigmas_up[0]`` small, the last
    the target level): start at ``z = x0`` as the state at ``sigmas_up[0]`` and apply :func:`ddim_step` upwards
    (``len(sigmas_up) - 1`` denoiser calls)."""
    if any(b <= a for a, b in zip(sigmas_up[:-1], sigmas_up[1:], strict=True)) or sigmas_up[0] <= 0:
        raise ValueError(f"ddim_invert: sigmas_up must be positive and increasing, got {sigmas_up}")
    z = x0
    for s, s_next in zip(sigmas_up[:-1], sigmas_up[1:], strict=True):
        z = ddim_step(denoiser, z, s, s_next)
    return z
