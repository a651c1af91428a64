"""Figures of video reconstructions (matplotlib, Agg backend; every file written atomically).

* :func:`frame_grid`: rows of videos (truth, then samples of each method) at a few frames (paper Fig. 2/4);
* :func:`difference_grid`: the same rows as consecutive-frame differences ``x[t+1] - x[t]`` (paper Fig. 4/5), the
  place where per-frame priors show their temporal incoherence;
* :func:`mean_std_maps`: posterior mean and standard deviation at a few frames;
* :func:`write_gif`: an animated GIF with videos side by side (one per panel), shared grey scale.

All videos are real ``[T, H, W]`` arrays (pass magnitudes of complex images) in display orientation (row 0 at the
top).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common.io import atomic_path


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def pick_frames(n_frames: int, count: int = 6) -> list[int]:
    """``count`` evenly spaced frame indices in ``[0, n_frames)`` (all frames if there are fewer)."""
    if n_frames < 1:
        raise ValueError(f"pick_frames: n_frames must be >= 1, got {n_frames}")
    return sorted({int(round(v)) for v in np.linspace(0, n_frames - 1, min(count, n_frames))})


def _check_rows(rows: dict[str, np.ndarray], name: str) -> tuple[int, int, int]:
    if not rows:
        raise ValueError(f"{name}: no videos given")
    shapes = {k: np.asarray(v).shape for k, v in rows.items()}
    first = next(iter(shapes.values()))
    if len(first) != 3 or any(s != first for s in shapes.values()):
        raise ValueError(f"{name}: every video must be real [T, H, W] of one shape, got {shapes}")
    return first


def _save(fig, path: Path) -> Path:
    plt = _plt()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def frame_grid(path: str | Path, rows: dict[str, np.ndarray], frames: list[int] | None = None, title: str = "",
               frame_labels: list[str] | None = None, cmap: str = "afmhot") -> Path:
    """PNG: one row per video (label -> ``[T, H, W]``), one column per frame; each row on its own colour scale
    ``[0, max]`` of that row (the videos may differ in flux)."""
    t, _, _ = _check_rows(rows, "frame_grid")
    frames = frames if frames is not None else pick_frames(t)
    plt = _plt()
    fig, axes = plt.subplots(len(rows), len(frames), figsize=(1.6 * len(frames), 1.6 * len(rows)), squeeze=False)
    for i, (label, video) in enumerate(rows.items()):
        v = np.asarray(video, dtype=np.float64)
        vmax = float(v.max()) if v.max() > 0 else 1.0
        for j, f in enumerate(frames):
            ax = axes[i, j]
            ax.imshow(v[f], cmap=cmap, vmin=0.0, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
            if i == 0:
                ax.set_title(frame_labels[f] if frame_labels else f"frame {f}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def difference_grid(path: str | Path, rows: dict[str, np.ndarray], frames: list[int] | None = None,
                    title: str = "consecutive-frame differences x[t+1] - x[t]") -> Path:
    """PNG of ``x[t+1] - x[t]`` for every row at ``frames`` (each < T-1), symmetric colour scale per row."""
    t, _, _ = _check_rows(rows, "difference_grid")
    if t < 2:
        raise ValueError(f"difference_grid: need at least 2 frames, got {t}")
    frames = frames if frames is not None else pick_frames(t - 1)
    plt = _plt()
    fig, axes = plt.subplots(len(rows), len(frames), figsize=(1.6 * len(frames), 1.6 * len(rows)), squeeze=False)
    for i, (label, video) in enumerate(rows.items()):
        d = np.diff(np.asarray(video, dtype=np.float64), axis=0)
        lim = float(np.abs(d).max()) or 1.0
        for j, f in enumerate(frames):
            ax = axes[i, j]
            ax.imshow(d[f], cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
            if i == 0:
                ax.set_title(f"{f + 1} - {f}", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def mean_std_maps(path: str | Path, mean: np.ndarray, std: np.ndarray, frames: list[int] | None = None,
                  title: str = "", units: str = "", cmap: str = "afmhot") -> Path:
    """PNG: posterior mean (top row) and standard deviation (bottom row) ``[T, H, W]`` at ``frames``."""
    t, _, _ = _check_rows({"mean": mean, "std": std}, "mean_std_maps")
    frames = frames if frames is not None else pick_frames(t)
    plt = _plt()
    fig, axes = plt.subplots(2, len(frames), figsize=(1.7 * len(frames), 3.6), squeeze=False)
    for i, (label, v, cm) in enumerate((("mean", mean, cmap), ("std", std, "viridis"))):
        v = np.asarray(v, dtype=np.float64)
        vmax = float(v.max()) if v.max() > 0 else 1.0
        for j, f in enumerate(frames):
            im = axes[i, j].imshow(v[f], cmap=cm, vmin=0.0, vmax=vmax)
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            if j == 0:
                axes[i, j].set_ylabel(f"{label} {units}".strip(), fontsize=8)
            if i == 0:
                axes[i, j].set_title(f"frame {f}", fontsize=8)
        fig.colorbar(im, ax=list(axes[i]), fraction=0.02, pad=0.01)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def write_gif(path: str | Path, videos: list[np.ndarray], duration_ms: int = 120) -> Path:
    """Animated GIF: the videos ``[T, H, W]`` side by side (2-pixel gaps), each scaled to ``[0, its max]``."""
    from PIL import Image

    if not videos:
        raise ValueError("write_gif: no videos given")
    _check_rows({str(i): v for i, v in enumerate(videos)}, "write_gif")
    tiles = []
    for v in videos:
        v = np.asarray(v, dtype=np.float64)
        vmax = float(v.max()) if v.max() > 0 else 1.0
        tiles.append(np.clip(v / vmax, 0.0, 1.0))
    t, h, _ = tiles[0].shape
    gap = np.zeros((t, h, 2))
    strip = np.concatenate([x for tile in tiles for x in (tile, gap)][:-1], axis=2)
    frames = [Image.fromarray((255 * f).round().astype(np.uint8)) for f in strip]
    path = Path(path)
    with atomic_path(path) as tmp:
        frames[0].save(tmp, save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
    return path
