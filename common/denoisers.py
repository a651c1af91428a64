"""The denoiser protocol and the thin wrappers that turn networks into denoisers.

A *denoiser* maps a noisy latent video ``z`` of shape ``[B, T, C, H, W]`` at noise level ``sigma`` (shape ``[B]``,
EDM convention ``z = z0 + sigma * eps``) to the posterior-mean estimate ``D(z; sigma)`` of ``z0``, same shape as
``z``. The score follows by Tweedie: ``grad log p(z; sigma) = (D(z; sigma) - z) / sigma^2``.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn


class Denoiser(Protocol):
    """``denoise(z [B, T, C, H, W], sigma [B]) -> z0_hat [B, T, C, H, W]``."""

    def __call__(self, z: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor: ...


def score(denoiser: Denoiser, z: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Score ``(D(z; sigma) - z) / sigma^2`` with ``sigma`` of shape ``[B]`` broadcast over the other axes."""
    s = _per_sample(sigma, z)
    return (denoiser(z, sigma) - z) / s**2


def _per_sample(sigma: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape ``sigma [B]`` to ``[B, 1, ..., 1]`` so it broadcasts against ``like``."""
    return sigma.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


class EDMPrecond(nn.Module):
    """EDM preconditioning (Karras et al. 2022, Table 1) around any network ``net(x_in, c_noise, **kw) -> F``.

    ``D(z; sigma) = c_skip z + c_out F(c_in z, c_noise)`` with ``c_skip = sd^2/(sigma^2+sd^2)``,
    ``c_out = sigma sd / sqrt(sigma^2+sd^2)``, ``c_in = 1/sqrt(sigma^2+sd^2)``, ``c_noise = log(sigma)/4``;
    ``sd`` is ``sigma_data``. Extra keyword arguments (e.g. ``video=False``) pass through to ``net``.
    """

    def __init__(self, net: nn.Module, sigma_data: float = 0.5) -> None:
        super().__init__()
        self.net = net
        self.sigma_data = float(sigma_data)

    def forward(self, z: torch.Tensor, sigma: torch.Tensor, **kwargs) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=z.device).reshape(-1)
        if sigma.numel() == 1 and z.shape[0] != 1:
            sigma = sigma.expand(z.shape[0])
        s = _per_sample(sigma, z)
        sd2 = self.sigma_data**2
        c_skip = sd2 / (s**2 + sd2)
        c_out = s * self.sigma_data / (s**2 + sd2).sqrt()
        c_in = 1.0 / (s**2 + sd2).sqrt()
        c_noise = sigma.log() / 4.0
        return c_skip * z + c_out * self.net(c_in * z, c_noise, **kwargs).to(z.dtype)


class VPEpsilonDenoiser(nn.Module):
    """Adapter for an epsilon-predictor ``eps_net(x_t, t) -> eps`` trained on a discrete VP/DDPM schedule.

    With ``abar`` the cumulative products of the DDPM schedule (``alphas_cumprod``, shape ``[K]``), the EDM noise
    level of step ``t`` is ``sigma_t = sqrt((1 - abar_t) / abar_t)`` and ``x_t = z / sqrt(1 + sigma^2)``. A
    continuous ``sigma`` is mapped to a fractional ``t`` by linear interpolation in ``log sigma`` (the network
    receives that fractional timestep); ``D(z; sigma) = z - sigma * eps_net(x_t, t)``.
    """

    def __init__(self, eps_net: nn.Module, alphas_cumprod: torch.Tensor) -> None:
        super().__init__()
        abar = torch.as_tensor(alphas_cumprod, dtype=torch.float64)
        if abar.ndim != 1 or abar.numel() < 2 or not bool(((abar > 0) & (abar < 1)).all()):
            raise ValueError("VPEpsilonDenoiser: alphas_cumprod must be a 1-D tensor of values in (0, 1)")
        log_sigmas = 0.5 * torch.log((1 - abar) / abar)
        if not bool((log_sigmas[1:] > log_sigmas[:-1]).all()):
            raise ValueError("VPEpsilonDenoiser: alphas_cumprod must be strictly decreasing")
        self.eps_net = eps_net
        self.register_buffer("log_sigmas", log_sigmas)

    @property
    def sigma_min(self) -> float:
        return float(self.log_sigmas[0].exp())

    @property
    def sigma_max(self) -> float:
        return float(self.log_sigmas[-1].exp())

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """Fractional DDPM timestep of ``sigma [B]`` (clamped to the schedule's range)."""
        ls = sigma.to(torch.float64).clamp(self.sigma_min, self.sigma_max).log()
        idx = torch.searchsorted(self.log_sigmas, ls).clamp(1, self.log_sigmas.numel() - 1)
        lo, hi = self.log_sigmas[idx - 1], self.log_sigmas[idx]
        return (idx - 1) + (ls - lo) / (hi - lo)

    def forward(self, z: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, device=z.device).reshape(-1).expand(z.shape[0])
        s = _per_sample(sigma, z)
        x_t = z / (1.0 + s**2).sqrt()
        t = self.sigma_to_t(sigma).to(z.dtype)
        return z - s * self.eps_net(x_t, t)
