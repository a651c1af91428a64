"""A retrospective cine reconstruction problem on the model grid, ready for a posterior sampler.

The paper (Sec. 4.3) resizes every video to 192 x 192 and applies the mask to the k-space of that video. Here, for
one slice of fully sampled k-space ``(t, coil, ky, kx)``:

1. coil images ``ifft2c(k)`` are moved to the model grid (:func:`cardiac_mri.images.to_model_grid`);
2. their k-space ``fft2c`` on the grid, masked, is the measurement ``y`` ``[T, C, size, size]`` (plus optional
   complex Gaussian noise); it is *not* generated through the SENSE model, so the model error of the estimated
   maps is part of the problem (no inverse crime);
3. maps: ESPIRiT on the grid k-space's ACS (``C > 1``) or a map of ones (``C = 1``, the paper's single-coil case);
4. the reference video is the coil combination ``sum_c conj(S_c) x_c`` (complex, ``[T, size, size]``), in network
   units ``target = combined / scale`` with ``scale`` from :func:`cardiac_mri.images.video_scale`.

``problem.likelihood(tau)`` is the matching :class:`~cardiac_mri.likelihood.GaussianLikelihood` on network-unit
videos ``[B, T, 2, size, size]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cardiac_mri.coils import espirit_maps, sense_combine
from cardiac_mri.images import DEFAULT_SIZE, to_model_grid, video_scale
from cardiac_mri.likelihood import GaussianLikelihood
from cardiac_mri.sense import SenseOperator, complex_to_channels, fft2c, ifft2c


@dataclass
class CineProblem:
    """``op`` (maps and mask on the grid), ``y`` ``[T, C, H, W]`` (image units), ``target`` complex ``[T, H, W]``
    (network units), ``scale`` (image units per network unit)."""

    op: SenseOperator
    y: torch.Tensor
    target: torch.Tensor
    scale: float

    def likelihood(self, tau: float = 0.10) -> GaussianLikelihood:
        """Gaussian likelihood of network-unit videos (FACTS 1: reference MRI temperature 0.10)."""
        return GaussianLikelihood(self.op, self.y, tau=tau, scale=self.scale)

    def target_channels(self) -> torch.Tensor:
        """The reference video as the sampler sees it: float32 ``[T, 2, H, W]``."""
        return complex_to_channels(self.target).to(torch.float32)


def retrospective_problem(
    kspace: np.ndarray | torch.Tensor,
    mask: torch.Tensor,
    size: int = DEFAULT_SIZE,
    calib_width: int = 24,
    noise_std: float = 0.0,
    generator: torch.Generator | None = None,
) -> CineProblem:
    """Build a :class:`CineProblem` from fully sampled k-space ``(t, coil, ky, kx)`` of one slice.

    ``mask`` is ``[size, size]`` or ``[T, size, size]`` on the model grid (e.g. ``paper_mask("6x", size, size)``);
    ``noise_std`` adds complex Gaussian noise of that standard deviation (per complex sample, image units) drawn
    from ``generator`` to the measured entries.
    """
    k = torch.as_tensor(kspace)
    if k.ndim != 4 or not k.is_complex():
        raise ValueError(f"retrospective_problem: expected complex (t, coil, ky, kx), got {tuple(k.shape)} {k.dtype}")
    mask = torch.as_tensor(mask)
    if tuple(mask.shape[-2:]) != (size, size):
        raise ValueError(f"retrospective_problem: mask must be on the {size}x{size} grid, got {tuple(mask.shape)}")
    coil_images = to_model_grid(ifft2c(k.to(torch.complex64)), size)  # [T, C, size, size]
    grid_k = fft2c(coil_images)
    if k.shape[1] == 1:
        maps = torch.ones(1, size, size, dtype=torch.complex64)
        combined = coil_images[:, 0]
    else:
        maps = espirit_maps(grid_k, calib_width=calib_width)
        combined = sense_combine(coil_images, maps)
    op = SenseOperator(maps, mask)
    weight = mask if mask.ndim == 2 else mask[:, None]
    y = weight.to(torch.float32) * grid_k
    if noise_std > 0:
        if generator is None:
            raise ValueError("retrospective_problem: noise_std > 0 needs an explicit torch.Generator")
        noise = torch.complex(torch.randn(y.shape, generator=generator), torch.randn(y.shape, generator=generator))
        y = y + weight * (noise_std / 2**0.5) * noise
    scale = video_scale(combined)
    return CineProblem(op=op, y=y.to(torch.complex64), target=combined / scale, scale=scale)
