"""Official CMRxRecon 2023 cine evaluation and the submission writer.

The challenge ranks ``img4ranking`` (MATLAB ``run4Ranking.m``): the magnitude of frames 1-3 of the two central
slices (MATLAB ``round(sz/2)-1 : round(sz/2)``, 1-based), centre-cropped to ``round(sx/3) x round(sy/2)`` (MATLAB
``crop`` centring), single precision. In h5py order ``(t, slice, ky, kx)`` that is ``(3, 2, round(ny/2),
round(nx/3))``. Ground truth is the coil root-sum-of-squares of the fully sampled images. Each 2-D image (frame,
slice) of both prediction and ground truth is divided by its own maximum; then PSNR (data range 1), SSIM
(scikit-image defaults: 7x7 uniform window, sample covariance) and NMSE ``||gt - pred||^2 / ||gt||^2``; a file's
score is the mean over its images, a table cell the mean over files. Rounding is MATLAB's (half away from zero).
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


def matlab_round(x: float) -> int:
    """MATLAB's ``round``: half away from zero (Python's ``round`` rounds half to even)."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def ranking_subset(images: np.ndarray | torch.Tensor) -> np.ndarray:
    """``img4ranking`` float32 ``(3, 2, round(ny/2), round(nx/3))`` from images ``(t, slice, ny, nx)``."""
    img = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if img.ndim != 4:
        raise ValueError(f"ranking_subset: expected images (t, slice, ny, nx), got shape {img.shape}")
    t, sz, ny, nx = img.shape
    centre = matlab_round(sz / 2)  # MATLAB 1-based slices centre-1 : centre -> 0-based centre-2, centre-1
    if t < RANKING_FRAMES or centre < 2:
        raise ValueError(
            f"ranking_subset: run4Ranking needs >= {RANKING_FRAMES} frames and >= 3 slices (slices "
            f"round(sz/2)-1 : round(sz/2), 1-based), got shape {img.shape}"
        )
    sub = np.abs(img[:RANKING_FRAMES, centre - 2 : centre])
    cy, cx = matlab_round(ny / 2), matlab_round(nx / 3)
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


def write_submission(path: str | os.PathLike, img4ranking: np.ndarray, fmt: str = "v7.3") -> Path:
    """Write ``img4ranking`` (h5py order ``(3, 2, ny', nx')``) as single precision, atomically.

    ``fmt="v7.3"``: MATLAB v7.3 / HDF5 (what h5py reads). ``fmt="v5"``: MATLAB v5 via scipy, stored in MATLAB order
    ``(nx', ny', 2, 3)`` (the official scorer indexes ``[:, :, slice, frame]`` after ``scipy.io.loadmat``).
    """
    arr = np.asarray(img4ranking, dtype=np.float32)
    if arr.ndim != 4:
        raise ValueError(f"write_submission({path}): img4ranking must be 4-D (t, slice, y, x), got shape {arr.shape}")
    path = Path(path)
    if fmt == "v7.3":
        return write_mat73(path, {RANKING_KEY: arr})
    if fmt != "v5":
        raise ValueError(f"write_submission: fmt must be 'v7.3' or 'v5', got {fmt!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".tmp") as tmp, open(tmp, "wb") as fh:
        scipy.io.savemat(fh, {RANKING_KEY: arr.transpose(3, 2, 1, 0)})
    return path


def read_ranking(path: str | os.PathLike) -> np.ndarray:
    """Read ``img4ranking`` from a v7.3 or v5 file, returned in h5py order ``(t, slice, y, x)`` float32."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if h5py.is_hdf5(path):
        arr = read_array(path, RANKING_KEY)
    else:
        try:
            mat = scipy.io.loadmat(path)
        except Exception as exc:
            raise MatFileError(f"{path}: neither HDF5 nor a readable MATLAB v5 file: {exc}") from exc
        if RANKING_KEY not in mat:
            raise MatFileError(f"{path}: no variable {RANKING_KEY!r}; variables: {sorted(mat)}")
        arr = np.asarray(mat[RANKING_KEY]).transpose(3, 2, 1, 0)
    if arr.ndim != 4 or np.iscomplexobj(arr):
        raise MatFileError(f"{path}: {RANKING_KEY!r} must be a real 4-D array, got {arr.dtype} {arr.shape}")
    return arr.astype(np.float32)


def ground_truth_ranking(path: str | os.PathLike) -> np.ndarray:
    """Ground-truth ``img4ranking`` from a file holding either ``img4ranking`` or fully sampled k-space."""
    path = check_mat73(path)
    with h5py.File(path, "r") as f:
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
            raise ValueError(f"{case.path}: img4ranking shape {pred.shape} differs from the ground truth's {gt.shape}"
                             f" ({gt_path})")
        m = image_metrics(pred, gt)
        scores.append(FileScore(case, float(m["psnr"].mean()), float(m["ssim"].mean()), float(m["nmse"].mean())))
    return scores


def _holds_truth(path: Path) -> bool:
    """A ground-truth candidate: ``img4ranking`` or a fully sampled k-space key."""
    if not h5py.is_hdf5(path):
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
    "FileScore", "evaluate_dirs", "format_table", "ground_truth_ranking", "image_metrics", "matlab_round",
    "parse_cine_path", "ranking_subset", "read_ranking", "rss_images", "submission_path", "summarize",
    "write_submission",
]
