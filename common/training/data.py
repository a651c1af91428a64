"""Training data for the prior: array-file datasets, the image set, seeded batch drawing and augmentation.

Project-wide convention: a map-style ``torch.utils.data.Dataset`` of *frames* returns float32 ``[C, H, W]``; one of
*videos* returns float32 ``[T, C, H, W]``. Domain packages plug their loaders in by providing such datasets, or by
writing generic array files:

- videos file: ``.npy`` (memory-mapped) or HDF5 (``.h5``/``.hdf5``, dataset ``videos``), float32 ``[N, T, C, H, W]``;
- frames file: ``.npy`` or HDF5 (dataset ``frames``), float32 ``[N, C, H, W]`` (extra images).

The image set of the paper (App. C) is all frames of the videos plus the extra images (``image_set``).
Batches are drawn with replacement by an explicit ``torch.Generator`` (so a resumed run draws the same batches).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import ConcatDataset, Dataset

H5_SUFFIXES = (".h5", ".hdf5", ".hdf")


def open_array(path: str | Path, key: str, ndim: int) -> np.ndarray:
    """Memory-map ``.npy`` or open HDF5 dataset ``key``; check ``ndim`` and a float dtype, naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found (expected a .npy or HDF5 file of {key})")
    if path.suffix == ".npy":
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            raise ValueError(f"{path}: not a plain .npy array ({exc})") from exc
    elif path.suffix in H5_SUFFIXES:
        import h5py

        f = h5py.File(path, "r")
        if key not in f:
            raise KeyError(f"{path}: HDF5 file has no dataset '{key}' (found {sorted(f.keys())})")
        arr = f[key]
    else:
        raise ValueError(f"{path}: unsupported suffix {path.suffix!r}; use .npy or one of {H5_SUFFIXES}")
    layout = "[N, T, C, H, W]" if ndim == 5 else "[N, C, H, W]"
    if arr.ndim != ndim:
        raise ValueError(f"{path}: {key} must have shape {layout}, found shape {tuple(arr.shape)}")
    if arr.dtype.kind != "f":
        raise ValueError(f"{path}: {key} must be floating point (float32), found dtype {arr.dtype}")
    if arr.shape[0] < 1:
        raise ValueError(f"{path}: {key} is empty")
    return arr


class ArrayVideos(Dataset):
    """Videos ``[T, C, H, W]`` from a ``[N, T, C, H, W]`` array file (see module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.array = open_array(self.path, "videos", 5)

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self.array[i], dtype=np.float32))


class ArrayFrames(Dataset):
    """Frames ``[C, H, W]`` from a ``[N, C, H, W]`` array file (see module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.array = open_array(self.path, "frames", 4)

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self.array[i], dtype=np.float32))


class FramesOfVideos(Dataset):
    """Every frame of a video dataset as a frame dataset; assumes all videos have the same number of frames."""

    def __init__(self, videos: Dataset) -> None:
        self.videos = videos
        self.frames = int(videos[0].shape[0])

    def __len__(self) -> int:
        return len(self.videos) * self.frames

    def __getitem__(self, i: int) -> torch.Tensor:
        v, t = divmod(int(i), self.frames)
        return self.videos[v][t]


def image_set(videos: Dataset | None, frames: Dataset | None) -> Dataset:
    """The paper's image set: all frames of ``videos`` plus the extra ``frames`` (either may be None, not both)."""
    parts = [d for d in (FramesOfVideos(videos) if videos is not None else None, frames) if d is not None]
    if not parts:
        raise ValueError("image_set: need a videos and/or a frames dataset, got neither")
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)


def draw_batch(dataset: Dataset, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """Stack ``batch_size`` items drawn uniformly with replacement: ``[B, *item_shape]`` float32."""
    idx = torch.randint(len(dataset), (batch_size,), generator=generator)
    items = [dataset[int(i)] for i in idx]
    shapes = {tuple(x.shape) for x in items}
    if len(shapes) != 1:
        raise ValueError(f"draw_batch: items of different shapes {sorted(shapes)} cannot be batched")
    return torch.stack(items).float()


def draw_pseudo_videos(frames: Dataset, batch_size: int, num_frames: int, generator: torch.Generator) -> torch.Tensor:
    """Pseudo-videos ``[B, T, C, H, W]`` whose frames are independent random images (paper Sec. 3.2 (P3))."""
    return draw_batch(frames, batch_size * num_frames, generator).reshape(batch_size, num_frames,
                                                                          *frames[0].shape)


def random_clip(videos: torch.Tensor, length: int | None, generator: torch.Generator) -> torch.Tensor:
    """A random window of ``length`` consecutive frames of each video ``[B, T, ...]`` (None: all frames)."""
    if length is None or length == videos.shape[1]:
        return videos
    if length > videos.shape[1]:
        raise ValueError(f"random_clip: clip of {length} frames from videos of {videos.shape[1]} frames")
    starts = torch.randint(videos.shape[1] - length + 1, (videos.shape[0],), generator=generator)
    return torch.stack([v[s:s + length] for v, s in zip(videos, starts.tolist(), strict=True)])


def augment(x: torch.Tensor, generator: torch.Generator, hflip: bool = True, vflip: bool = True,
            zoom: float = 0.0, phase_rotation: bool = False) -> torch.Tensor:
    """Random flips and zoom in/out (App. C), one transform per sample shared by all its frames.

    ``x [B, C, H, W]`` or ``[B, T, C, H, W]``; the zoom factor is uniform in ``[1 - zoom, 1 + zoom]`` (> 1 zooms
    in), applied by bilinear resampling about the image centre with zero padding. ``phase_rotation`` (complex
    images stored as 2 channels (real, imag)): multiply each sample by ``exp(i theta)``, theta uniform in
    ``[0, 2 pi)``; an MR image's global phase carries no information, so this only removes a nuisance.
    Randomness from ``generator``.
    """
    if not 0.0 <= zoom < 1.0:
        raise ValueError(f"augment: zoom must be in [0, 1), got {zoom}")
    video = x.ndim == 5
    v = x if video else x[:, None]
    b, t, c, h, w = v.shape
    if phase_rotation and c != 2:
        raise ValueError(f"augment: phase_rotation needs 2-channel (real, imag) images, got {c} channels")
    draws = torch.rand(b, 3, generator=generator)  # [hflip, vflip, zoom] uniforms, always drawn (fixed RNG use)
    if phase_rotation:
        theta = 2.0 * torch.pi * torch.rand(b, generator=generator, dtype=torch.float64)
        cos, sin = theta.cos().to(v.dtype).to(v.device), theta.sin().to(v.dtype).to(v.device)
        re, im = v[:, :, 0], v[:, :, 1]
        cos, sin = cos.view(b, 1, 1, 1), sin.view(b, 1, 1, 1)
        v = torch.stack([cos * re - sin * im, sin * re + cos * im], dim=2)
    dev = v.device
    if hflip:  # one batched select per transform: a few kernels whatever the batch (GPU training)
        v = torch.where((draws[:, 0] < 0.5).to(dev).view(b, 1, 1, 1, 1), v.flip(-1), v)
    if vflip:
        v = torch.where((draws[:, 1] < 0.5).to(dev).view(b, 1, 1, 1, 1), v.flip(-2), v)
    if zoom > 0:
        inv_scale = 1.0 / (1.0 + zoom * (2.0 * draws[:, 2].double() - 1.0))  # [B], > 1 zooms in
        theta = torch.zeros(b, 2, 3, dtype=v.dtype)
        theta[:, 0, 0] = theta[:, 1, 1] = inv_scale.to(v.dtype)
        theta = theta.to(dev).repeat_interleave(t, dim=0)  # one transform per sample, shared by its frames
        grid = F.affine_grid(theta, [b * t, c, h, w], align_corners=False)
        v = F.grid_sample(v.reshape(b * t, c, h, w), grid, mode="bilinear", padding_mode="zeros",
                          align_corners=False).reshape(b, t, c, h, w)
    return v if video else v[:, 0]
