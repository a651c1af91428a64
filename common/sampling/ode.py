"""Probability-flow ODE solve inside DAPS (paper Algorithm 1 line 3, Eq. 8), and denoiser "modes" for IDM.

With the EDM schedule sigma(t) = t, Eq. 8 reads dz/dsigma = -sigma * score(z, sigma) = (z - D(z; sigma)) / sigma.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch

from common.denoisers import Denoiser


@torch.no_grad()
def pf_ode_euler(denoiser: Denoiser, z: torch.Tensor, sigmas: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Euler steps of the PF-ODE (Eq. 8) along the decreasing grid ``sigmas`` (no gradient).

    ``z`` ``[B, T, C, H, W]`` is at noise level ``sigmas[0]``; returns the state at ``sigmas[-1]``, same shape.
    ``len(sigmas) - 1`` denoiser calls; a one-point grid returns ``z`` unchanged.
    """
    grid = sigmas.tolist() if isinstance(sigmas, torch.Tensor) else [float(s) for s in sigmas]
    b = z.shape[0]
    for s, s_next in zip(grid[:-1], grid[1:], strict=True):
        d = (z - check_denoised(denoiser(z, z.new_full((b,), s)), z)) / s
        z = z + (s_next - s) * d
    return z


def check_denoised(out: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Raise a clear error unless the denoiser output ``out`` has the shape of its input ``z``."""
    if not isinstance(out, torch.Tensor) or out.shape != z.shape:
        found = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"denoiser must return a tensor shaped like its input {tuple(z.shape)}; found {found}")
    return out


def image_mode(model: Callable[..., torch.Tensor]) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """IDM with a joint image/video network: ``functools.partial(model, video=False)``.

    For a denoiser called as ``model(z, sigma, video=True)`` (temporal branches on/off, paper Sec. 3.2), this turns
    the temporal branches off, so every frame is denoised independently by the same network.
    """
    return functools.partial(model, video=False)


def per_frame(denoiser: Denoiser) -> Denoiser:
    """IDM with any denoiser: apply it to every frame separately, ``[B, T, C, H, W] -> [B*T, 1, C, H, W]``.

    The frames of all samples are denoised as one batch of one-frame videos with the per-sample ``sigma`` repeated
    over frames, so no information flows between frames.
    """

    def denoise(z: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        b, t = z.shape[:2]
        sig = torch.as_tensor(sigma, device=z.device).reshape(-1).expand(b).repeat_interleave(t)
        out = denoiser(z.reshape(b * t, 1, *z.shape[2:]), sig)
        return out.reshape(z.shape)

    return denoise
