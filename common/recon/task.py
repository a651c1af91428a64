"""The inverse problem as a method sees it (:class:`ReconTask`): likelihood, shapes, units, truth, outputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from common.posterior import MethodPosterior
from common.sampling.consistency import LinearGaussian


@dataclass
class ReconTask:
    """A domain's inverse problem in the driver's terms.

    Attributes:
        name: domain name (``blackhole``, ``mri``).
        frames, image_shape: video length T and network-unit frame shape ``(C, H, W)``.
        log_likelihood: ``x [B, T, C, H, W] (network units) -> log p(y | x) [B]`` (temperature included).
        to_physical: network units -> physical ``[B, T, H, W]`` numpy (complex for MRI).
        data_fit: network units -> per-sample measures ``{name: [B]}`` (chi2_cp/chi2_logca, or misfit).
        metric_images: physical ``[..., T, H, W]`` -> real images in ``[0, 1]`` for PSNR/SSIM.
        units: physical units of ``to_physical`` (for the netCDF attributes).
        coords: ``frame``, ``y``, ``x`` -> ``(values, attrs with units)``.
        truth: physical ``[T, H, W]`` or None (user data).
        export: ``export(out_dir, posts) -> list of written paths`` (FITS / .mat), or None.
        attrs: extra dataset attributes (case, seeds, observation).
        from_physical: physical ``[S, T, H, W]`` numpy -> network units ``[S, T, C, H, W]`` (to score the posterior
            mean written to the files with ``data_fit``).
        residuals: whitened residuals ``x -> [B, M]`` of a least-squares likelihood at the data's own error bars
            (``log p = -||residuals||^2 / 2``), for the pixel Gauss-Newton step; None if the likelihood is not one.
        linear: the likelihood as a linear operator with Gaussian noise (noise level from the data), for the
            linear-Gaussian step; None if it is not one.
        project: projection onto the physically allowed set (e.g. non-negative intensities, zero outside the coil
            maps' support), or None.
        report: ``x -> {name: value}`` in the user's units for the progress bar (chi2, relative misfit).
        motion_blur_px: std (pixels) of the spatial Gaussian blur of the motion SNR (:func:`common.metrics.msnr`):
            the scale at which the truth's frame-to-frame change is compared; each domain sets its own.
    """

    name: str
    frames: int
    image_shape: tuple[int, int, int]
    log_likelihood: Callable[[torch.Tensor], torch.Tensor]
    to_physical: Callable[[torch.Tensor], np.ndarray]
    data_fit: Callable[[torch.Tensor], dict[str, np.ndarray]]
    metric_images: Callable[[np.ndarray], np.ndarray]
    units: str
    coords: dict[str, tuple[np.ndarray, dict]]
    truth: np.ndarray | None = None
    export: Callable[[Path, list[MethodPosterior]], list[Path]] | None = None
    attrs: dict = field(default_factory=dict)
    from_physical: Callable[[np.ndarray], torch.Tensor] | None = None
    residuals: Callable[[torch.Tensor], torch.Tensor] | None = None
    linear: LinearGaussian | None = None
    project: Callable[[torch.Tensor], torch.Tensor] | None = None
    report: Callable[[torch.Tensor], dict[str, float]] | None = None
    motion_blur_px: float = 1.0
