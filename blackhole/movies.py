"""GRMHD-style movie loaders and torch Datasets for training (frames ``[1, H, W]``, videos ``[T, 1, H, W]``).

Accepted layouts for one movie (all give an ehtim-oriented float32 array [T, H, W]):
* a folder with one ``.npy`` (2-D) per frame, or one ``.fits`` per frame, taken in natural name order;
* an ``.npy`` array [T, H, W]; an ``.npz`` with key ``frames`` (or exactly one array);
* an HDF5 file (``.h5``/``.hdf5``) with a dataset ``frames`` (or exactly one dataset) [T, H, W].
A collection of movies is a ``videos.npy`` array [N, T, 1, H, W] (the project-wide training format, memory-mapped)
or a folder of such movie sources.

Preprocessing (``prepare_movie``): temporal subsampling to ``frames`` frames (evenly spaced indices over the whole
movie, as the paper downsamples 1000 GRMHD frames to 64), area resizing to ``npix`` x ``npix`` (flux preserving,
torch ``interpolate(mode='area')`` times the pixel-area ratio), then normalisation:
* ``"max"`` (default, training): divide the whole video by its maximum, so pixels lie in [0, 1] (one scale per
  video, so relative brightness between frames, i.e. the flux variability, is kept);
* ``"flux"``: scale every frame to total flux ``flux_jy`` (Jy), the physical units of the forward model;
* ``"none"``.
The paper does not spell out its normalisation; per-video max scaling is the convention of this project.
"""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

NORMALISATIONS = ("max", "flux", "none")


def _natural_key(p: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def load_movie(path: str | Path) -> np.ndarray:
    """Load one movie as float32 [T, H, W] from any layout in the module docstring; errors name the file."""
    path = Path(path)
    if path.is_dir():
        npys = sorted(path.glob("*.npy"), key=_natural_key)
        fitss = sorted([*path.glob("*.fits"), *path.glob("*.fit")], key=_natural_key)
        if npys and fitss:
            raise ValueError(f"movie folder {path}: holds both .npy and .fits frames; keep one kind")
        if not npys and not fitss:
            raise ValueError(f"movie folder {path}: no .npy or .fits frames found")
        frames = []
        for f in npys or fitss:
            if npys:
                arr = np.load(f, allow_pickle=False)
            else:
                from blackhole.fits_io import read_fits_frame  # astropy only for FITS folders

                arr = read_fits_frame(f)[0]
            if arr.ndim != 2:
                raise ValueError(f"movie frame {f}: expected a 2-D image, got shape {arr.shape}")
            if frames and arr.shape != frames[0].shape:
                raise ValueError(f"movie frame {f}: shape {arr.shape} differs from the first frame's {frames[0].shape}")
            frames.append(arr)
        movie = np.stack(frames)
    elif not path.is_file():
        raise FileNotFoundError(f"movie {path}: no such file or folder")
    elif path.suffix == ".npy":
        movie = np.load(path, allow_pickle=False)
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            key = "frames" if "frames" in keys else (keys[0] if len(keys) == 1 else None)
            if key is None:
                raise ValueError(f"movie {path}: .npz needs a 'frames' array or exactly one array, found {keys}")
            movie = z[key]
    elif path.suffix in (".h5", ".hdf5"):
        with h5py.File(path, "r") as f:
            names = [k for k in f.keys() if isinstance(f[k], h5py.Dataset)]
            key = "frames" if "frames" in names else (names[0] if len(names) == 1 else None)
            if key is None:
                raise ValueError(f"movie {path}: HDF5 needs a 'frames' dataset or exactly one dataset, found {names}")
            movie = f[key][()]
    else:
        raise ValueError(f"movie {path}: unknown format {path.suffix!r} (use a folder, .npy, .npz, .h5/.hdf5)")
    movie = np.asarray(movie)
    if movie.ndim == 4 and movie.shape[1] == 1:
        movie = movie[:, 0]
    if movie.ndim != 3:
        raise ValueError(f"movie {path}: expected an array [T, H, W], got shape {movie.shape}")
    if not np.isfinite(movie).all():
        raise ValueError(f"movie {path}: contains NaN or Inf values")
    return movie.astype(np.float32)


def prepare_movie(movie: np.ndarray, frames: int | None = None, npix: int | None = None, normalize: str = "max",
                  flux_jy: float = 2.0) -> np.ndarray:
    """Subsample in time, resize and normalise a movie [T, H, W] -> float32 [frames, npix, npix] (module doc)."""
    if normalize not in NORMALISATIONS:
        raise ValueError(f"normalize must be one of {NORMALISATIONS}, got {normalize!r}")
    m = torch.from_numpy(np.array(movie, dtype=np.float32))  # a copy: memory-mapped input stays read-only
    if frames is not None:
        if frames > m.shape[0]:
            raise ValueError(f"prepare_movie: asked for {frames} frames but the movie has {m.shape[0]}")
        idx = torch.as_tensor(np.round(np.linspace(0, m.shape[0] - 1, frames)).astype(np.int64))
        m = m[idx]
    if npix is not None and tuple(m.shape[1:]) != (npix, npix):
        area = m.shape[1] * m.shape[2] / npix**2
        m = torch.nn.functional.interpolate(m[:, None], size=(npix, npix), mode="area")[:, 0] * area
    if normalize == "max":
        peak = float(m.max())
        if not peak > 0:
            raise ValueError("prepare_movie: cannot max-normalise a movie whose maximum is <= 0")
        m = m / peak
    elif normalize == "flux":
        tot = m.sum(dim=(-2, -1), keepdim=True)
        if bool((tot <= 0).any()):
            raise ValueError("prepare_movie: cannot flux-normalise a frame with total <= 0")
        m = m / tot * flux_jy
    return m.numpy()


def _sources(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    subs = sorted([p for p in root.iterdir() if p.is_dir() or p.suffix in (".npy", ".npz", ".h5", ".hdf5")],
                  key=_natural_key)
    if not subs:
        raise ValueError(f"movie collection {root}: no movie folders or files found")
    return subs


class MovieVideos(Dataset):
    """Videos ``[T, 1, H, W]`` float32 from a ``videos.npy`` [N, T, 1, H, W] (memory-mapped) or a folder of movies.

    Args: root; frames, npix, normalize, flux_jy as in ``prepare_movie`` (applied on the fly to each item;
    a ``videos.npy`` is used as stored unless these are given).
    """

    def __init__(self, root: str | Path, frames: int | None = None, npix: int | None = None,
                 normalize: str | None = None, flux_jy: float = 2.0) -> None:
        self.root = Path(root)
        self.frames, self.npix, self.flux_jy = frames, npix, flux_jy
        self.array = None
        if self.root.is_file() and self.root.suffix == ".npy":
            arr = np.load(self.root, mmap_mode="r", allow_pickle=False)
            if arr.ndim != 5 or arr.shape[2] != 1:
                raise ValueError(f"video array {self.root}: expected [N, T, 1, H, W], got shape {arr.shape}")
            self.array = arr
            self.normalize = normalize or "none"
        else:
            self.sources = _sources(self.root)
            self.normalize = normalize or "max"

    def __len__(self) -> int:
        return len(self.array) if self.array is not None else len(self.sources)

    def __getitem__(self, i: int) -> torch.Tensor:
        movie = np.asarray(self.array[i, :, 0]) if self.array is not None else load_movie(self.sources[i])
        if self.array is not None and not np.isfinite(movie).all():
            raise ValueError(f"video array {self.root}: video {i} contains NaN or Inf")
        m = prepare_movie(movie, self.frames, self.npix, self.normalize, self.flux_jy)
        return torch.from_numpy(np.ascontiguousarray(m))[:, None]


class MovieFrames(Dataset):
    """Single frames ``[1, H, W]`` of every video of a ``MovieVideos`` collection (index = video * T + frame)."""

    def __init__(self, videos: MovieVideos) -> None:
        self.videos = videos
        self.t = videos[0].shape[0] if len(videos) else 0

    def __len__(self) -> int:
        return len(self.videos) * self.t

    def __getitem__(self, i: int) -> torch.Tensor:
        v, f = divmod(i, self.t)
        return self.videos[v][f]
