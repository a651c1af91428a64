"""Coil sensitivity maps: ESPIRiT from the ACS region (via sigpy), user-provided maps, coil combination.

ESPIRiT (Uecker et al. 2014) is calibrated on the time-averaged k-space: for each k-space location the mean over
the frames that sampled it, so that a per-frame shifted (k-t) mask still gives a full ACS block. Maps follow the
convention ``sum_c |S_c|^2 = 1`` inside the object (ESPIRiT's eigenvector normalisation) and 0 where ESPIRiT's
eigenvalue crop removes the background. Inputs may be numpy arrays or torch tensors; outputs are torch complex64.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import sigpy.mri
import torch

from cardiac_mri.matio import read_array


def time_averaged_kspace(kspace: np.ndarray | torch.Tensor) -> np.ndarray:
    """Mean over frames of the sampled entries: ``[T, C, H, W]`` -> ``[C, H, W]`` complex (``[C, H, W]`` passes).

    An entry counts as sampled in a frame when it is non-zero in any coil.
    """
    k = kspace.detach().cpu().numpy() if isinstance(kspace, torch.Tensor) else np.asarray(kspace)
    if k.ndim == 3:
        return k
    if k.ndim != 4:
        raise ValueError(f"time_averaged_kspace: expected [T, C, H, W] or [C, H, W], got shape {k.shape}")
    sampled = (np.abs(k) > 0).any(axis=1, keepdims=True)  # [T, 1, H, W]
    count = sampled.sum(axis=0)  # [1, H, W]
    return k.sum(axis=0) / np.maximum(count, 1)


def espirit_maps(
    kspace: np.ndarray | torch.Tensor,
    calib_width: int = 24,
    thresh: float = 0.02,
    kernel_width: int = 6,
    crop: float = 0.95,
    max_iter: int = 100,
) -> torch.Tensor:
    """ESPIRiT coil maps ``[C, H, W]`` complex64 from k-space ``[T, C, H, W]`` or ``[C, H, W]`` (centred).

    Calibrates on the central ``calib_width`` x ``calib_width`` block of the time-averaged k-space (all of it must be
    sampled: ``calib_width`` must not exceed the number of ACS lines). Parameters are sigpy's ``EspiritCalib``.
    """
    k = time_averaged_kspace(kspace).astype(np.complex128)
    num_coils, ny, nx = k.shape
    if calib_width > min(ny, nx):
        raise ValueError(f"espirit_maps: calib_width {calib_width} exceeds the k-space size ({ny}, {nx})")
    if num_coils == 1:
        raise ValueError("espirit_maps: single-coil data has no coil maps; use SenseOperator.single_coil")
    centre = k[:, ny // 2 - calib_width // 2 : ny // 2 - calib_width // 2 + calib_width, nx // 2]
    if np.any(np.all(centre == 0, axis=0)):
        raise ValueError(
            f"espirit_maps: the central {calib_width} ky lines are not all sampled; lower calib_width to the ACS size"
        )
    app = sigpy.mri.app.EspiritCalib(
        k, calib_width=calib_width, thresh=thresh, kernel_width=kernel_width, crop=crop, max_iter=max_iter,
        show_pbar=False,
    )
    maps = app.run()
    return torch.from_numpy(np.asarray(maps).astype(np.complex64))


def normalize_maps(maps: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Scale maps ``[C, H, W]`` so that ``sum_c |S_c|^2 = 1`` wherever it is above ``eps`` (zero elsewhere)."""
    power = (maps.abs() ** 2).sum(dim=0, keepdim=True)
    inside = power > eps
    return torch.where(inside, maps / power.clamp_min(torch.finfo(power.dtype).tiny).sqrt(), torch.zeros_like(maps))


def rss(coil_images: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """Root-sum-of-squares coil combination along ``dim`` (default: ``[..., C, H, W]`` -> ``[..., H, W]``)."""
    return (coil_images.abs() ** 2).sum(dim=dim).sqrt()


def sense_combine(coil_images: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """Complex coil combination ``sum_c conj(S_c) x_c``: ``[..., C, H, W]`` with maps ``[C, H, W]`` -> ``[..., H, W]``.

    For maps with ``sum_c |S_c|^2 = 1`` this is the least-squares image of fully sampled coil images.
    """
    return (maps.conj() * coil_images).sum(dim=-3)


def read_maps(path: str | os.PathLike, key: str = "maps") -> torch.Tensor:
    """User-provided maps ``[C, H, W]`` complex64 from a ``.npy`` file or a MATLAB v7.3 / HDF5 dataset ``key``.

    The MATLAB file stores them in h5py order ``(C, H, W)`` (MATLAB size ``(W, H, C)``, i.e. ``(kx, ky, coil)``).
    """
    path = Path(path)
    if path.suffix == ".npy":
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        arr = np.load(path, allow_pickle=False)
    else:
        arr = read_array(path, key)
    if arr.ndim != 3:
        raise ValueError(f"{path}: coil maps must have shape [C, H, W], got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{path}: coil maps contain NaN or Inf")
    return torch.from_numpy(np.ascontiguousarray(arr).astype(np.complex64))
