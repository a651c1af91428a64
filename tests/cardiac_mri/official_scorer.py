"""The official CMRxRecon cine scorer's logic, reimplemented from its published formulas (not vendored).

Source read: ``CmrxRecon/CMRxRecon``, ``Evaluation/Main_Score.py`` (``check_mat_files``, ``CalValue``),
``Evaluation/loadFun.py`` (``loadmat``) and ``Evaluation/Evaluation.py`` (``calmetric``):

- a file is read with ``scipy.io.loadmat(...)["img4ranking"]``; only if that raises ``NotImplementedError`` (a
  MATLAB v7.3 file) with ``h5py.File(...)["img4ranking"][:]``, which gives the reversed axis order;
- a submission whose ``len()`` (first axis) differs from the ground truth's is dropped ("different_sizes");
- ``calmetric`` loops over ``[:, :, i, j]`` (slice i, frame j) and scores ``gt / gt.max()`` against
  ``pred / pred.max()`` with scikit-image PSNR and SSIM (``data_range = gt.max()`` of the normalised image, i.e. 1,
  default 7x7 uniform window) and NMSE ``||gt - pred||^2 / ||gt||^2``;
- a file's score is the mean over its images, a cell the mean over the kept files (NaN when none is kept).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import scipy.io
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def official_loadmat(path: Path) -> np.ndarray:
    try:
        return scipy.io.loadmat(path)["img4ranking"]
    except NotImplementedError:
        with h5py.File(path, "r") as f:
            return f["img4ranking"][:]


def official_calmetric(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    shape = gt.shape[-2:]
    psnr, ssim, nmse = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    for i in range(shape[0]):
        for j in range(shape[1]):
            p, g = pred[:, :, i, j], gt[:, :, i, j]
            g1, p1 = g / g.max(), p / p.max()
            psnr[i, j] = peak_signal_noise_ratio(g1, p1, data_range=g1.max())
            ssim[i, j] = structural_similarity(g1, p1, data_range=g1.max())
            nmse[i, j] = np.linalg.norm(g1 - p1) ** 2 / np.linalg.norm(g1) ** 2
    return psnr, ssim, nmse


def official_score(pairs: list[tuple[Path, Path]]) -> dict[str, float]:
    """``pairs`` of (ground truth, submission) files of one cell -> ``{"psnr", "ssim", "nmse", "kept"}``."""
    kept, values = 0, {"psnr": [], "ssim": [], "nmse": []}
    for gt_path, pred_path in pairs:
        gt, pred = official_loadmat(gt_path), official_loadmat(pred_path)
        if len(gt) != len(pred):
            continue
        kept += 1
        for name, arr in zip(("psnr", "ssim", "nmse"), official_calmetric(pred, gt), strict=True):
            values[name].append(float(np.mean(arr)))
    out = {k: float(np.mean(v)) if v else float("nan") for k, v in values.items()}
    out["kept"] = kept
    return out
