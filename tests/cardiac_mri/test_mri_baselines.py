"""SENSE, temporal-TV SENSE and L+S each beat zero-filled RSS on a synthetic cine at R = 8 (CMRxRecon mask)."""

import numpy as np
import pytest
import torch

from cardiac_mri import SenseOperator
from cardiac_mri.baselines import (
    low_rank_plus_sparse,
    operator_norm_sq,
    sense_cg,
    tv_sense,
    zero_filled_rss,
)
from cardiac_mri.coils import espirit_maps
from cardiac_mri.evaluation import image_metrics
from cardiac_mri.masks import cmrxrecon_mask


@pytest.fixture(scope="module")
def problem(cine64):
    mask = cmrxrecon_mask(64, 64, 8)
    k = cine64.kspace[:, 0] * mask  # [T, C, H, W]
    op = SenseOperator(espirit_maps(k, calib_width=24), mask)
    gt = cine64.image[:, 0].abs().numpy()
    return op, k[None], gt


def _psnr(recon, gt):
    return float(image_metrics(recon[0].abs().numpy(), gt)["psnr"].mean())


@pytest.mark.slow
def test_baselines_beat_zero_filled(problem):
    op, y, gt = problem
    zf = _psnr(zero_filled_rss(y), gt)
    results = {
        "sense": _psnr(sense_cg(op, y), gt),
        "tv": _psnr(tv_sense(op, y, iters=100), gt),
        "lps": _psnr(low_rank_plus_sparse(op, y, iters=30), gt),
    }
    print(f"\nR=8 synthetic 64x64x8 coils x 12 frames, PSNR [dB]: zf {zf:.2f} " +
          " ".join(f"{k} {v:.2f}" for k, v in results.items()))
    for name, value in results.items():
        assert value > zf + 1.0, f"{name}: {value:.2f} dB does not beat zero-filled {zf:.2f} dB"


def test_cg_solves_the_normal_equations(problem):
    op, y, _ = problem
    x = sense_cg(op, y, iters=60, lam=0.05, tol=1e-7)
    residual = op.normal(x) + 0.05 * x - op.adjoint(y)
    assert float(residual.abs().norm() / op.adjoint(y).abs().norm()) < 1e-4


def test_operator_norm_of_normalised_maps(problem):
    op, _, _ = problem
    assert operator_norm_sq(op, (1, 12, 64, 64)) == pytest.approx(1.0, abs=0.01)


def test_zero_filled_rss_single_coil_is_magnitude():
    gen = torch.Generator().manual_seed(0)
    y = torch.randn(1, 2, 1, 8, 8, dtype=torch.complex64, generator=gen)
    from cardiac_mri.sense import ifft2c

    assert np.allclose(zero_filled_rss(y)[:, :, ...].numpy(), ifft2c(y)[:, :, 0].abs().numpy(), atol=1e-6)
    with pytest.raises(ValueError, match=r"\[B, T, C, H, W\]"):
        zero_filled_rss(y[0])
