"""Official CMRxRecon 2023 cine evaluation and the submission writer.

The challenge ranks ``img4ranking`` (MATLAB ``run4Ranking.m``): the magnitude of frames 1-3 of the two central
slices (MATLAB ``round(sz/2)-1 : round(sz/2)``, 1-based; every slice when there are fewer than 3, as in the
challenge's ``run4Ranking.m`` of 2024 and its ``runRecon.m``), centre-cropped to ``round(sx/3) x round(sy/2)``
(MATLAB ``crop`` centring), single precision. In h5py order ``(t, slice, ky, kx)`` that is ``(3, min(sz, 2),
round(ny/2), round(nx/3))``.

File format. The official Python scorer (``Evaluation/Main_Score.py``) reads files with ``scipy.io.loadmat`` and
falls back to h5py for MATLAB v7.3, which returns the reversed axis order: a v7.3 submission scored against v5
ground truth is dropped as "different size" and the summary becomes NaN. :func:`write_submission` therefore writes
MATLAB v5 by default (MATLAB order ``(x, y, slice, frame)``, what ``calmetric`` indexes); :func:`read_ranking` and
:func:`evaluate_dirs` read both formats.

Metrics. Ground truth is the coil root-sum-of-squares of the fully sampled images. Each 2-D image (frame, slice) of
both prediction and ground truth is divided by its own maximum; then PSNR (data range 1), SSIM (scikit-image
defaults: 7x7 uniform window, sample covariance) and NMSE ``||gt - pred||^2 / ||gt||^2``; a file's score is the
mean over its images, a table cell the mean over files. Rounding is MATLAB's (half away from zero).
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import scipy.io
import torch

from cardiac_mri.coils import rss
from cardiac_mri.data import CineFile, find_cine_files, parse_cine_path, read_kspace
from cardiac_mri.matio import MatFileError, check_mat73, read_array, write_mat73
from cardiac_mri.sense import ifft2c
from common.io import atomic_path
from common.metrics import nmse, psnr, ssim

RANKING_KEY = "img4ranking"
RANKING_FRAMES = 3
FORMATS = ("v5", "v7.3")
DEFAULT_FORMAT = "v5"
V73_WARNING = ("MATLAB v7.3 submission files: the official CMRxRecon Python scorer reads them in reversed axis order "
               "and silently drops them (NaN summary); use --format v5 (the default) for files you submit")


def matlab_round(x: float) -> int:
    """MATLAB's ``round``: half away from zero (Python's ``round`` rounds half to even)."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def ranking_slices(slices: int) -> list[int]:
    """0-based slices ``run4Ranking`` keeps: the central two (MATLAB ``round(sz/2)-1 : round(sz/2)``), or all of
    them when there are fewer than 3."""
    if slices < 1:
        raise ValueError(f"ranking_slices: need at least one slice, got {slices}")
    if slices < 3:
        return list(range(slices))
    centre = matlab_round(slices / 2)  # 1-based centre-1 : centre -> 0-based centre-2, centre-1
    return [centre - 2, centre - 1]


def ranking_shape(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Shape of ``img4ranking`` (h5py order) for images ``(t, slice, ny, nx)``; ``ValueError`` saying what is
    missing when ``run4Ranking`` cannot be applied (fewer than 3 frames, no slice, empty image)."""
    if len(shape) != 4:
        raise ValueError(f"expected images (t, slice, ny, nx), got shape {tuple(shape)}")
    t, sz, ny, nx = shape
    if t < RANKING_FRAMES or sz < 1 or matlab_round(ny / 2) < 1 or matlab_round(nx / 3) < 1:
        raise ValueError(f"run4Ranking needs >= {RANKING_FRAMES} frames, >= 1 slice and ny >= 1, nx >= 2 "
                         f"(frames 1-3 of the central slices, centre crop ny/2 x nx/3); got (t, slice, ny, nx) = "
                         f"{tuple(shape)}")
    return (RANKING_FRAMES, len(ranking_slices(sz)), matlab_round(ny / 2), matlab_round(nx / 3))


def ranking_subset(images: np.ndarray | torch.Tensor) -> np.ndarray:
    """``img4ranking`` float32 ``(3, min(slice, 2), round(ny/2), round(nx/3))`` from images ``(t, slice, ny, nx)``
    (complex or magnitude)."""
    img = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    try:
        _, _, cy, cx = ranking_shape(img.shape)
    except ValueError as exc:
        raise ValueError(f"ranking_subset: {exc}") from exc
    ny, nx = img.shape[-2:]
    sub = np.abs(img[:RANKING_FRAMES, ranking_slices(img.shape[1])])
    y0, x0 = ny // 2 - cy // 2, nx // 2 - cx // 2  # MATLAB crop: floor(n/2)+1+ceil(-m/2), 1-based
    return np.ascontiguousarray(sub[:, :, y0 : y0 + cy, x0 : x0 + cx], dtype=np.float32)


def rss_images(kspace: np.ndarray | torch.Tensor) -> np.ndarray:
    """Coil-RSS magnitude images ``(t, slice, ny, nx)`` float32 from k-space ``(t, slice, coil, ky, kx)``."""
    k = torch.as_tensor(kspace)
    if k.ndim != 5:
        raise ValueError(f"rss_images: expected k-space (t, slice, coil, ky, kx), got shape {tuple(k.shape)}")
    return rss(ifft2c(k.to(torch.complex64)), dim=2).numpy().astype(np.float32)


def image_metrics(pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
    """Official per-image metrics of magnitude images ``[..., H, W]``: each image divided by its own max.

    Returns ``{"psnr", "ssim", "nmse"}`` arrays of shape ``[...]`` (float64).
    """
    p = torch.as_tensor(np.asarray(pred, dtype=np.float64))
    g = torch.as_tensor(np.asarray(gt, dtype=np.float64))
    if p.shape != g.shape:
        raise ValueError(f"image_metrics: prediction shape {tuple(p.shape)} differs from ground truth {tuple(g.shape)}")
    p_max, g_max = p.amax(dim=(-2, -1), keepdim=True), g.amax(dim=(-2, -1), keepdim=True)
    if bool((p_max <= 0).any()) or bool((g_max <= 0).any()):
        raise ValueError("image_metrics: an image is all zero (cannot normalise by its maximum)")
    p, g = p / p_max, g / g_max
    return {
        "psnr": psnr(p, g, data_range=1.0).numpy(),
        "ssim": ssim(p, g, data_range=1.0, window="uniform", win_size=7, use_sample_covariance=True).numpy(),
        "nmse": nmse(p, g).numpy(),
    }


def submission_path(root: str | os.PathLike, case: CineFile) -> Path:
    """``root/{coil}/Cine/{split}/AccFactorXX/Pxxx/cine_{view}.mat`` for a case."""
    return Path(root) / case.relative()


def _to_matlab_order(arr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(arr.transpose(tuple(range(arr.ndim))[::-1]))


def write_mat(path: str | os.PathLike, arrays: dict[str, np.ndarray], fmt: str = DEFAULT_FORMAT) -> Path:
    """Write arrays given in h5py order (e.g. ``(t, slice, y, x)``) as a MATLAB file, atomically.

    ``fmt="v5"``: MATLAB v5 via scipy, each array transposed to MATLAB order (``(x, y, slice, t)``), which is what
    ``load`` in MATLAB and ``scipy.io.loadmat`` (the official scorer) return. ``fmt="v7.3"``: HDF5
    (:func:`cardiac_mri.matio.write_mat73`), which MATLAB reads in the same order but h5py in the reversed one.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise ValueError(f"write_mat({path}): fmt must be one of {FORMATS}, got {fmt!r}")
    for name, arr in arrays.items():
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"write_mat({path}): array {name!r} has non-finite values; nothing written")
    if fmt == "v7.3":
        return write_mat73(path, arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".tmp") as tmp, open(tmp, "wb") as fh:
        scipy.io.savemat(fh, {k: _to_matlab_order(np.asarray(v)) for k, v in arrays.items()})
    return path


def write_submission(path: str | os.PathLike, img4ranking: np.ndarray, fmt: str = DEFAULT_FORMAT) -> Path:
    """Write ``img4ranking`` (h5py order ``(3, slices, ny', nx')``) as single precision, atomically.

    ``fmt="v5"`` (default): MATLAB v5, stored in MATLAB order ``(nx', ny', slices, 3)`` (the official scorer
    indexes ``[:, :, slice, frame]`` after ``scipy.io.loadmat``). ``fmt="v7.3"``: MATLAB v7.3 / HDF5 (see the
    module docstring: the official Python scorer cannot use it).
    """
    arr = np.asarray(img4ranking, dtype=np.float32)
    if arr.ndim != 4:
        raise ValueError(f"write_submission({path}): img4ranking must be 4-D (t, slice, y, x), got shape {arr.shape}")
    return write_mat(path, {RANKING_KEY: arr}, fmt)


def read_mat_array(path: str | os.PathLike, key: str) -> np.ndarray:
    """Array ``key`` of a MATLAB v5 or v7.3 file, in h5py order (reversed MATLAB order) for either format."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if h5py.is_hdf5(path):
        return read_array(path, key)
    try:
        mat = scipy.io.loadmat(path)
    except Exception as exc:
        raise MatFileError(f"{path}: neither HDF5 nor a readable MATLAB v5 file: {exc}") from exc
    if key not in mat:
        names = sorted(k for k in mat if not k.startswith("__"))
        raise MatFileError(f"{path}: no variable {key!r}; variables: {names}")
    return _to_matlab_order(np.asarray(mat[key]))


def read_ranking(path: str | os.PathLike) -> np.ndarray:
    """Read ``img4ranking`` from a v7.3 or v5 file, returned in h5py order ``(t, slice, y, x)`` float32."""
    arr = read_mat_array(path, RANKING_KEY)
    if arr.ndim != 4 or np.iscomplexobj(arr):
        raise MatFileError(f"{path}: {RANKING_KEY!r} must be a real 4-D array, got {arr.dtype} {arr.shape}")
    return arr.astype(np.float32)


def is_mat73(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a MATLAB v7.3 (HDF5) file."""
    return h5py.is_hdf5(Path(path))


def ground_truth_ranking(path: str | os.PathLike) -> np.ndarray:
    """Ground-truth ``img4ranking`` from a file holding either ``img4ranking`` (v5 or v7.3) or fully sampled
    k-space (v7.3)."""
    path = Path(path)
    if not is_mat73(path):
        return read_ranking(path)
    with h5py.File(check_mat73(path), "r") as f:
        has_ranking = RANKING_KEY in f
    return read_ranking(path) if has_ranking else ranking_subset(rss_images(read_kspace(path)))


@dataclass
class FileScore:
    case: CineFile
    psnr: float
    ssim: float
    nmse: float


def _ground_truth_candidates(gt_root: Path, case: CineFile) -> list[Path]:
    same = gt_root / case.relative()
    full = gt_root / case.coil_type / "Cine" / case.split / "FullSample" / case.patient / case.path.name
    return [same, full]


def evaluate_dirs(pred_root: str | os.PathLike, gt_root: str | os.PathLike) -> list[FileScore]:
    """Score every submission file below ``pred_root`` against ``gt_root``.

    ``gt_root`` is a CMRxRecon root: the ground truth of ``.../AccFactorXX/Pxxx/cine_v.mat`` is the same relative
    path if it holds ``img4ranking``, else ``.../FullSample/Pxxx/cine_v.mat`` (k-space, RSS is taken).
    """
    pred_root, gt_root = Path(pred_root), Path(gt_root)
    cases = find_cine_files(pred_root)
    if not cases:
        raise FileNotFoundError(f"{pred_root}: no cine_*.mat files in the CMRxRecon layout")
    scores = []
    for case in cases:
        candidates = _ground_truth_candidates(gt_root, case)
        gt_path = next((c for c in candidates if c.is_file() and _holds_truth(c)), None)
        if gt_path is None:
            raise FileNotFoundError(f"{case.path}: no ground truth found; tried {[str(c) for c in candidates]}")
        pred, gt = read_ranking(case.path), ground_truth_ranking(gt_path)
        if pred.shape != gt.shape:
            raise ValueError(f"{case.path}: img4ranking has shape (t, slice, y, x) = {pred.shape}, the ground truth "
                             f"{gt_path} {gt.shape}; write the submission with run4Ranking's subset "
                             "(stepvip mri reconstruct does)")
        if not np.all(np.isfinite(pred)):
            raise ValueError(f"{case.path}: img4ranking has non-finite values")
        try:
            m = image_metrics(pred, gt)
        except ValueError as exc:
            raise ValueError(f"{case.path}: {exc}") from exc
        scores.append(FileScore(case, float(m["psnr"].mean()), float(m["ssim"].mean()), float(m["nmse"].mean())))
    return scores


def _holds_truth(path: Path) -> bool:
    """A ground-truth candidate: ``img4ranking`` (v5 or v7.3) or a fully sampled k-space key (v7.3)."""
    if not is_mat73(path):
        try:
            return any(v[0] == RANKING_KEY for v in scipy.io.whosmat(path))
        except (ValueError, OSError, NotImplementedError):
            return False
    with h5py.File(path, "r") as f:
        return RANKING_KEY in f or "kspace_full" in f or "kspace_single_full" in f


def summarize(scores: list[FileScore]) -> list[dict]:
    """Mean PSNR / SSIM / NMSE per (coil type, acceleration, view), as the challenge aggregates (mean of files)."""
    groups: dict[tuple, list[FileScore]] = defaultdict(list)
    for s in scores:
        groups[(s.case.coil_type, s.case.acc_dir, s.case.view)].append(s)
    rows = []
    for (coil, acc, view), items in sorted(groups.items()):
        rows.append({
            "coil_type": coil, "acceleration": acc, "view": view, "files": len(items),
            "psnr": float(np.mean([s.psnr for s in items])),
            "ssim": float(np.mean([s.ssim for s in items])),
            "nmse": float(np.mean([s.nmse for s in items])),
        })
    return rows


def format_table(rows: list[dict]) -> str:
    """Plain-text table of :func:`summarize` rows."""
    head = f"{'coil':<11}{'acc':<12}{'view':<5}{'files':>6}{'PSNR':>9}{'SSIM':>8}{'NMSE':>10}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['coil_type']:<11}{r['acceleration']:<12}{r['view']:<5}{r['files']:>6}"
                     f"{r['psnr']:>9.3f}{r['ssim']:>8.4f}{r['nmse']:>10.5f}")
    return "\n".join(lines)


__all__ = [
    "DEFAULT_FORMAT", "FORMATS", "FileScore", "evaluate_dirs", "format_table", "ground_truth_ranking",
    "image_metrics", "is_mat73", "matlab_round", "parse_cine_path", "ranking_shape", "ranking_slices",
    "ranking_subset", "read_mat_array", "read_ranking", "rss_images", "submission_path", "summarize", "write_mat",
    "write_submission",
]
