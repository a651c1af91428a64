"""Seeded synthetic multi-coil cardiac cine, written in the CMRxRecon layout so the pipeline runs without real data.

The phantom (complex ``[T, H, W]``): an elliptical body with smooth texture, two dark lungs, a left-ventricular (LV)
blood pool inside a myocardial ring whose area is conserved while the LV contracts (so the wall thickens in systole),
a right-ventricular (RV) blood-pool crescent, all with soft edges, and a smooth random background phase. The LV and
RV contract over the cardiac cycle of ``frames`` phases (12 in CMRxRecon) with a raised-cosine profile. SAX slices
shrink the ventricles towards the apex; LAX views elongate and rotate the LV. Coil maps are sigpy's birdcage maps
normalised to ``sum_c |S_c|^2 = 1``, so the coil-RSS ground truth equals ``|x|``. K-space is
``fft2c(S_c x) + noise`` (complex Gaussian, standard deviation ``noise * max|x|`` per component pair).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sigpy.mri
import torch
import torch.utils.data

from cardiac_mri.coils import normalize_maps
from cardiac_mri.data import kspace_key
from cardiac_mri.images import video_scale
from cardiac_mri.masks import cmrxrecon_mask
from cardiac_mri.matio import write_mat73
from cardiac_mri.sense import complex_to_channels, fft2c

#: Image amplitude of the phantom: k-space values then resemble CMRxRecon's (~1e-3).
AMPLITUDE = 1e-4


def _soft(inside: np.ndarray, width: float) -> np.ndarray:
    """Soft indicator of a signed distance-like field (> 0 inside), edge ``width`` in the same units."""
    return 0.5 * (1.0 + np.tanh(inside / width))


def _ellipse(u: np.ndarray, v: np.ndarray, cu: float, cv: float, ru: float, rv: float, theta: float = 0.0):
    """Normalised radius of an ellipse (1 on its boundary) at grid points ``(u, v)``."""
    c, s = np.cos(theta), np.sin(theta)
    du, dv = u - cu, v - cv
    a, b = c * du + s * dv, -s * du + c * dv
    return np.sqrt((a / ru) ** 2 + (b / rv) ** 2)


def beating_heart(
    ny: int,
    nx: int,
    frames: int = 12,
    *,
    rng: np.random.Generator,
    view: str = "sax",
    slice_pos: float = 0.0,
) -> np.ndarray:
    """One cine slice, complex128 ``[frames, ny, nx]`` with magnitudes in ``[0, ~1]``.

    ``slice_pos`` in ``[-1, 1]`` moves a SAX slice from base (-1) to apex (1); ``view`` is ``"sax"`` or ``"lax"``.
    ``rng`` draws the anatomy (positions, sizes, contraction, intensities, background phase).
    """
    if view not in ("sax", "lax"):
        raise ValueError(f"beating_heart: view must be 'sax' or 'lax', got {view!r}")
    v, u = np.meshgrid(np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")  # v rows, u columns
    edge = 1.5 * 2.0 / min(ny, nx)  # about 1.5 pixels
    body_r = (0.8 + 0.1 * rng.uniform(-1, 1), 0.65 + 0.1 * rng.uniform(-1, 1))
    body = _soft(1 - _ellipse(u, v, 0, 0, *body_r), edge)
    fu, pu, fv = rng.uniform(1, 3), rng.uniform(-1, 1), rng.uniform(1, 3)
    texture = 1 + 0.15 * np.cos(np.pi * (fu * u + pu)) * np.cos(np.pi * fv * v)
    lung_u = 0.42 + 0.05 * rng.uniform(-1, 1)
    lungs = sum(_soft(1 - _ellipse(u, v, s * lung_u, -0.05, 0.22, 0.4), edge) for s in (-1, 1))
    cu, cv = 0.05 + 0.08 * rng.uniform(-1, 1), 0.0 + 0.08 * rng.uniform(-1, 1)
    apex = 1.0 - 0.35 * max(slice_pos, 0.0) + 0.1 * max(-slice_pos, 0.0)
    r_lv0 = (0.17 + 0.03 * rng.uniform(-1, 1)) * apex
    wall = (0.07 + 0.015 * rng.uniform(-1, 1)) * apex
    elong, theta = (1.0, 0.0) if view == "sax" else (1.7 + 0.3 * rng.uniform(0, 1), rng.uniform(-0.6, 0.6))
    ef = 0.3 + 0.1 * rng.uniform(0, 1)  # fractional radius change at peak systole
    intens = {"body": 0.3 + 0.05 * rng.uniform(-1, 1), "myo": 0.18, "lv": 0.9, "rv": 0.75, "lung": 0.04}
    rv_dir = np.pi + 0.3 * rng.uniform(-1, 1)
    bg_phase = rng.uniform(-1, 1, size=4) * np.array([np.pi, 1.0, 1.0, 0.5])
    phase = np.exp(1j * (bg_phase[0] + bg_phase[1] * u + bg_phase[2] * v + bg_phase[3] * u * v))
    video = np.empty((frames, ny, nx), dtype=np.complex128)
    for t in range(frames):
        s = 0.5 * (1 - np.cos(2 * np.pi * t / frames)) if frames > 1 else 0.0  # frame 0 = end-diastole
        r_lv = r_lv0 * (1 - ef * s)
        r_epi = np.sqrt(r_lv**2 + (r_lv0 + wall) ** 2 - r_lv0**2)  # myocardial area conserved
        lv = _soft(1 - _ellipse(u, v, cu, cv, r_lv, r_lv * elong, theta), edge / r_lv)
        epi = _soft(1 - _ellipse(u, v, cu, cv, r_epi, r_epi * elong, theta), edge / r_epi)
        r_rv = (r_epi * 1.05) * (1 - 0.6 * ef * s)
        rcu, rcv = cu + 0.95 * r_epi * np.cos(rv_dir), cv + 0.95 * r_epi * np.sin(rv_dir) * elong
        rv = _soft(1 - _ellipse(u, v, rcu, rcv, r_rv, r_rv * 1.2 * elong, theta), edge / r_rv) * (1 - epi)
        img = intens["body"] * texture * body * (1 - lungs) + intens["lung"] * lungs * body
        img = img * (1 - epi) + intens["myo"] * (epi - lv) + intens["lv"] * lv
        img = img * (1 - rv) + intens["rv"] * rv
        video[t] = img * phase
    return video


def birdcage_coil_maps(coils: int, ny: int, nx: int, radius: float = 1.5) -> torch.Tensor:
    """sigpy birdcage maps ``[coils, ny, nx]`` complex64, normalised to ``sum_c |S_c|^2 = 1``."""
    maps = torch.from_numpy(sigpy.mri.birdcage_maps((coils, ny, nx), r=radius).astype(np.complex64))
    return normalize_maps(maps)


@dataclass
class SyntheticCine:
    """A synthetic case: image ``[T, S, H, W]`` complex64, maps ``[C, H, W]``, k-space ``(t, slice, coil, ky, kx)``."""

    image: torch.Tensor
    maps: torch.Tensor
    kspace: torch.Tensor


def synthetic_cine(
    ny: int = 64,
    nx: int = 64,
    coils: int = 8,
    frames: int = 12,
    slices: int = 1,
    *,
    view: str = "sax",
    noise: float = 0.005,
    seed: int = 0,
    amplitude: float = AMPLITUDE,
) -> SyntheticCine:
    """Generate one seeded case (``coils = 1`` gives single-coil data with a map of ones)."""
    rng = np.random.default_rng(seed)
    positions = np.linspace(-0.8, 0.8, slices) if slices > 1 else np.zeros(1)
    image = np.stack([beating_heart(ny, nx, frames, rng=rng, view=view, slice_pos=p) for p in positions], axis=1)
    image = torch.from_numpy((amplitude * image).astype(np.complex64))  # [T, S, H, W]
    maps = torch.ones(1, ny, nx, dtype=torch.complex64) if coils == 1 else birdcage_coil_maps(coils, ny, nx)
    kspace = fft2c(image[:, :, None] * maps)  # [T, S, C, H, W]
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    sigma = noise * float(image.abs().max())
    noise_k = torch.complex(torch.randn(kspace.shape, generator=gen), torch.randn(kspace.shape, generator=gen))
    kspace = kspace + (sigma / np.sqrt(2)) * noise_k
    return SyntheticCine(image=image, maps=maps, kspace=kspace.to(torch.complex64))


def write_synthetic_dataset(
    root: str | os.PathLike,
    patients: int = 2,
    *,
    ny: int = 64,
    nx: int = 128,
    coils: int = 8,
    frames: int = 12,
    slices: int = 3,
    views: tuple[str, ...] = ("sax", "lax"),
    coil_types: tuple[str, ...] = ("MultiCoil", "SingleCoil"),
    accelerations: tuple[int, ...] = (4, 8, 10),
    split: str = "TrainingSet",
    noise: float = 0.005,
    seed: int = 0,
) -> list[Path]:
    """Write synthetic cases in the CMRxRecon layout below ``root``; returns the written paths.

    For every patient ``P001...`` and view: ``FullSample/Pxxx/cine_{view}.mat`` (``kspace_full`` or
    ``kspace_single_full``) and per acceleration ``AccFactorXX/Pxxx/cine_{view}.mat`` (``kspace_subXX``, the masked
    k-space) with ``cine_{view}_mask.mat`` (``maskXX``, ``(ky, kx)``), using the CMRxRecon mask rule. Single-coil
    data is the k-space of the coil-combined image (the complex phantom) with its own noise draw.
    """
    root = Path(root)
    written: list[Path] = []
    for p in range(patients):
        patient = f"P{p + 1:03d}"
        for vi, view in enumerate(views):
            for coil_type in coil_types:
                case_seed = int(np.random.SeedSequence([seed, p, vi]).generate_state(1)[0])
                case = synthetic_cine(
                    ny, nx, coils if coil_type == "MultiCoil" else 1, frames, slices, view=view, noise=noise,
                    seed=case_seed,
                )
                k = case.kspace.numpy()
                single = coil_type == "SingleCoil"
                full = k[:, :, 0] if single else k
                base = root / coil_type / "Cine" / split
                path = base / "FullSample" / patient / f"cine_{view}.mat"
                written.append(write_mat73(path, {kspace_key(coil_type, None): full}))
                for acc in accelerations:
                    mask = cmrxrecon_mask(ny, nx, acc).numpy()
                    folder = base / f"AccFactor{acc:02d}" / patient
                    sub = (full * mask).astype(np.complex64)
                    written.append(write_mat73(folder / f"cine_{view}.mat", {kspace_key(coil_type, acc): sub}))
                    written.append(write_mat73(folder / f"cine_{view}_mask.mat", {f"mask{acc:02d}": mask}))
    return written


class SyntheticVideoDataset(torch.utils.data.Dataset):
    """``n`` seeded synthetic videos ``[frames, 2, size, size]`` float32 (real, imag), normalised as in
    :mod:`cardiac_mri.images` (divided by the 99th percentile of the magnitude). Item ``i`` uses seed ``(seed, i)``;
    views alternate SAX / LAX."""

    def __init__(self, n: int, size: int = 192, frames: int = 12, seed: int = 0) -> None:
        if n < 1:
            raise ValueError(f"SyntheticVideoDataset: n must be >= 1, got {n}")
        self.n, self.size, self.frames, self.seed = int(n), int(size), int(frames), int(seed)

    def __len__(self) -> int:
        return self.n

    def complex_video(self, i: int) -> torch.Tensor:
        if not 0 <= i < self.n:
            raise IndexError(f"SyntheticVideoDataset: index {i} out of range [0, {self.n})")
        rng = np.random.default_rng([self.seed, i])
        view = "sax" if i % 2 == 0 else "lax"
        pos = float(rng.uniform(-0.8, 0.8)) if view == "sax" else 0.0
        video = beating_heart(self.size, self.size, self.frames, rng=rng, view=view, slice_pos=pos)
        return torch.from_numpy(video.astype(np.complex64))

    def info(self, i: int) -> dict:
        return {"synthetic_seed": [self.seed, i], "scale": video_scale(self.complex_video(i))}

    def __getitem__(self, i: int) -> torch.Tensor:
        x = self.complex_video(i)
        return complex_to_channels(x / video_scale(x)).to(torch.float32)
