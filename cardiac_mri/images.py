"""From cine k-space to the images a diffusion prior sees: coil combination, model grid, normalisation, Datasets.

Pipeline for one slice of k-space ``(t, coil, ky, kx)``:

1. **Coil combination** to one complex video ``[T, ky, kx]``: single-coil data is ``ifft2c``; multi-coil data is
   combined with ESPIRiT maps (``sum_c conj(S_c) x_c``, maps with ``sum_c |S_c|^2 = 1``), which keeps the phase.
2. **Model grid** (:func:`to_model_grid`): centre crop to a square of side ``min(ky, kx)`` (the readout direction is
   2x oversampled in CMRxRecon, and the official ranking crop keeps only its central third), then Fourier resampling
   to ``size x size`` (default 192, paper Sec. 4.3): central k-space crop or zero-pad, scaled by ``size / n`` so that
   pixel values are unchanged.
3. **Normalisation**: ``x_net = x_image / scale`` with ``scale`` = the 99th percentile of ``|x_image|`` over the video
   (:func:`video_scale`). ``x_image = scale * x_net`` is in the file's image units (orthonormal FFT of its k-space),
   so ``fft2c(scale * x_net)`` is k-space in the file's units on the model grid. At reconstruction time compute the
   scale the same way from a zero-filled or SENSE estimate.
4. **Network boundary**: two real channels, frames ``[2, H, W]`` and videos ``[T, 2, H, W]`` float32.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from cardiac_mri.coils import espirit_maps, sense_combine
from cardiac_mri.data import KSPACE_KEYS, find_cine_files, read_kspace
from cardiac_mri.matio import check_mat73
from cardiac_mri.sense import complex_to_channels, fft2c, ifft2c
from common.io import atomic_path, atomic_write_text

DEFAULT_SIZE = 192
SCALE_QUANTILE = 0.99


def combine_coils(kspace: np.ndarray | torch.Tensor, calib_width: int = 24) -> torch.Tensor:
    """Complex coil-combined video ``[T, ky, kx]`` from fully sampled k-space ``(t, coil, ky, kx)`` of one slice."""
    k = torch.as_tensor(kspace)
    if k.ndim != 4 or not k.is_complex():
        raise ValueError(f"combine_coils: expected complex (t, coil, ky, kx), got {tuple(k.shape)} {k.dtype}")
    images = ifft2c(k.to(torch.complex64))
    if k.shape[1] == 1:
        return images[:, 0]
    maps = espirit_maps(k, calib_width=min(calib_width, k.shape[-2], k.shape[-1]))
    return sense_combine(images, maps)


def center_crop(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Centre crop of the last two axes with MATLAB's ``crop`` centring (start = ``n // 2 - m // 2``)."""
    (n0, n1), (m0, m1) = x.shape[-2:], shape
    if m0 > n0 or m1 > n1:
        raise ValueError(f"center_crop: cannot crop {(n0, n1)} to {(m0, m1)}")
    s0, s1 = n0 // 2 - m0 // 2, n1 // 2 - m1 // 2
    return x[..., s0 : s0 + m0, s1 : s1 + m1]


def _center_pad(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    (n0, n1), (m0, m1) = x.shape[-2:], shape
    out = x.new_zeros((*x.shape[:-2], m0, m1))
    s0, s1 = m0 // 2 - n0 // 2, m1 // 2 - n1 // 2
    out[..., s0 : s0 + n0, s1 : s1 + n1] = x
    return out


def fourier_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resample complex square images ``[..., n, n]`` to ``[..., size, size]`` by k-space crop / zero-pad.

    Scaled by ``size / n`` so pixel values (e.g. a constant image) are preserved.
    """
    n = x.shape[-1]
    if x.shape[-2] != n:
        raise ValueError(f"fourier_resize: expected square images, got {tuple(x.shape[-2:])}")
    if size == n:
        return x
    k = fft2c(x)
    k = center_crop(k, (size, size)) if size < n else _center_pad(k, (size, size))
    return ifft2c(k) * (size / n)


def to_model_grid(x: torch.Tensor, size: int = DEFAULT_SIZE) -> torch.Tensor:
    """Complex ``[..., ky, kx]`` -> ``[..., size, size]``: square centre crop, then :func:`fourier_resize`."""
    side = min(x.shape[-2:])
    return fourier_resize(center_crop(x, (side, side)), size)


def video_scale(x: torch.Tensor, quantile: float = SCALE_QUANTILE) -> float:
    """Normalisation scale of a complex video ``[T, H, W]``: the ``quantile`` of ``|x|`` (must be positive)."""
    mag = x.detach().abs().reshape(-1).to(torch.float64).cpu().numpy()
    scale = float(np.quantile(mag, quantile))
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"video_scale: the video has no signal (scale {scale})")
    return scale


class CineVideoDataset(Dataset):
    """Videos ``[T, 2, size, size]`` float32 (real, imag; normalised) from fully sampled CMRxRecon files.

    One item per (file, slice). ``files`` is a dataset root (every FullSample file below it is used) or a list of
    paths. Multi-coil data is combined with ESPIRiT maps (seconds per slice): for training, export once with
    :func:`write_training_array`. ``info(i)`` gives the source file, slice and normalisation scale.
    """

    def __init__(
        self,
        files: str | os.PathLike | Sequence[str | os.PathLike],
        size: int = DEFAULT_SIZE,
        views: Sequence[str] = ("sax", "lax"),
        coil_types: Sequence[str] = ("MultiCoil", "SingleCoil"),
    ) -> None:
        if isinstance(files, (str, os.PathLike)):
            found = [f for f in find_cine_files(files) if f.acc is None]
            paths = [f.path for f in found if f.view in views and f.coil_type in coil_types]
            if not paths:
                raise FileNotFoundError(f"{files}: no FullSample cine files for views {views}, coils {coil_types}")
        else:
            paths = [Path(p) for p in files]
        self.size = int(size)
        self.index: list[tuple[Path, int]] = []
        for p in paths:
            n_slices = _num_slices(p)
            self.index.extend((p, s) for s in range(n_slices))
        self._cache: tuple[Path, np.ndarray] | None = None
        self._last: tuple[int, torch.Tensor] | None = None  # info(i) after [i] reuses the combined video

    def __len__(self) -> int:
        return len(self.index)

    def complex_video(self, i: int) -> torch.Tensor:
        """Un-normalised complex video ``[T, size, size]`` in the file's image units."""
        if self._last is not None and self._last[0] == i:
            return self._last[1]
        path, s = self.index[i]
        if self._cache is None or self._cache[0] != path:
            self._cache = (path, read_kspace(path))
        video = to_model_grid(combine_coils(self._cache[1][:, s]), self.size)
        self._last = (i, video)
        return video

    def info(self, i: int) -> dict:
        path, s = self.index[i]
        return {"path": str(path), "slice": s, "scale": video_scale(self.complex_video(i))}

    def __getitem__(self, i: int) -> torch.Tensor:
        x = self.complex_video(i)
        return complex_to_channels(x / video_scale(x)).to(torch.float32)


class CineFrameDataset(Dataset):
    """Frames ``[2, H, W]`` float32 of a video dataset (``[T, 2, H, W]`` items) or a ``videos.npy`` array."""

    def __init__(self, videos: Dataset | str | os.PathLike) -> None:
        if isinstance(videos, (str, os.PathLike)):
            videos = VideoArrayDataset(videos)
        self.videos = videos
        self.frames = int(videos[0].shape[0])

    def __len__(self) -> int:
        return len(self.videos) * self.frames

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.videos[i // self.frames][i % self.frames]


class VideoArrayDataset(Dataset):
    """Videos ``[T, 2, H, W]`` float32 from ``DIR/videos.npy`` (``[N, T, 2, H, W]``, memory-mapped)."""

    def __init__(self, path: str | os.PathLike) -> None:
        path = Path(path)
        if path.is_dir():
            path = path / "videos.npy"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (expected videos.npy [N, T, 2, H, W] float32)")
        self.array = np.load(path, mmap_mode="r", allow_pickle=False)
        if self.array.ndim != 5 or self.array.shape[2] != 2 or self.array.dtype != np.float32:
            raise ValueError(f"{path}: expected float32 [N, T, 2, H, W], got {self.array.dtype} {self.array.shape}")

    def __len__(self) -> int:
        return self.array.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self.array[i]))


def write_training_array(out_dir: str | os.PathLike, videos: Dataset, metadata: dict | None = None) -> Path:
    """Write ``out_dir/videos.npy`` float32 ``[N, T, 2, H, W]`` (atomically) and ``videos.json`` (sources, scales).

    ``videos`` yields ``[T, 2, H, W]`` tensors; its optional ``info(i)`` dicts are recorded per video.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = len(videos)
    if n == 0:
        raise ValueError("write_training_array: the dataset is empty")
    first = videos[0]
    if first.ndim != 4 or first.shape[1] != 2:
        raise ValueError(f"write_training_array: items must be [T, 2, H, W], got {tuple(first.shape)}")
    target = out_dir / "videos.npy"
    infos = []
    with atomic_path(target) as tmp:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, *first.shape))
        for i in range(n):
            item = first if i == 0 else videos[i]
            if tuple(item.shape) != tuple(first.shape):
                raise ValueError(f"write_training_array: item {i} has shape {tuple(item.shape)}, item 0 {first.shape}")
            if not bool(torch.isfinite(item).all()):
                raise ValueError(f"write_training_array: item {i} contains NaN or Inf")
            arr[i] = item.numpy()
            if hasattr(videos, "info"):
                infos.append(videos.info(i))
        arr.flush()
        del arr
    meta = {"shape": [n, *first.shape], "layout": "[N, T, 2 (real, imag), H, W]", "scale_quantile": SCALE_QUANTILE}
    meta.update(metadata or {})
    if infos:
        meta["videos"] = infos
    atomic_write_text(out_dir / "videos.json", json.dumps(meta, indent=1))
    return target


def _num_slices(path: Path) -> int:
    with h5py.File(check_mat73(path), "r") as f:
        keys = [k for k in KSPACE_KEYS if k in f]
        if len(keys) != 1:
            raise ValueError(f"{path}: expected one CMRxRecon k-space key, found {keys}")
        shape = f[keys[0]].shape
    if len(shape) not in (4, 5):
        raise ValueError(f"{path}: k-space {keys[0]!r} has shape {shape}; expected (t, slice, [coil,] ky, kx)")
    return int(shape[1])


__all__ = [
    "CineFrameDataset",
    "CineVideoDataset",
    "VideoArrayDataset",
    "center_crop",
    "combine_coils",
    "fourier_resize",
    "to_model_grid",
    "video_scale",
    "write_training_array",
]
