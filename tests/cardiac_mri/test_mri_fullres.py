"""Grid -> acquisition matrix: upsampling and the final full-resolution data-consistency solve."""

import pytest
import torch

from cardiac_mri.fullres import data_consistency, from_model_grid
from cardiac_mri.images import fourier_resize, to_model_grid
from cardiac_mri.masks import cmrxrecon_mask
from cardiac_mri.sense import SenseOperator


def _randn_complex(shape, gen):
    return torch.randn(shape, generator=gen, dtype=torch.complex64)


@pytest.mark.parametrize("ny, nx", [(48, 48), (48, 96), (40, 50)])
def test_from_model_grid_inverts_to_model_grid_on_band_limited_images(ny, nx):
    gen = torch.Generator().manual_seed(0)
    side = min(ny, nx)
    small = _randn_complex((2, 3, 16, 16), gen)
    square = fourier_resize(small, side)  # band-limited to the 16 x 16 grid
    x = torch.zeros(2, 3, ny, nx, dtype=torch.complex64)
    y0, x0 = ny // 2 - side // 2, nx // 2 - side // 2
    x[..., y0 : y0 + side, x0 : x0 + side] = square
    grid = to_model_grid(x, 32)
    back = from_model_grid(grid, (ny, nx))
    assert back.shape == (2, 3, ny, nx)
    torch.testing.assert_close(back, x, rtol=0, atol=1e-5 * float(x.abs().max()))
    with pytest.raises(ValueError, match="square"):
        from_model_grid(torch.zeros(1, 1, 8, 6, dtype=torch.complex64), (16, 16))


def test_data_consistency_solves_the_tikhonov_normal_equations():
    gen = torch.Generator().manual_seed(1)
    ny, nx, t, c = 48, 64, 4, 4
    maps = _randn_complex((c, ny, nx), gen)
    maps = maps / (maps.abs() ** 2).sum(0, keepdim=True).sqrt()
    op = SenseOperator(maps, cmrxrecon_mask(ny, nx, 4))
    truth = _randn_complex((1, t, ny, nx), gen)
    y = op(truth)[0]
    x0 = truth + 0.3 * _randn_complex((3, t, ny, nx), gen)
    lam = 0.1
    x, info = data_consistency(op, y, x0, lam=lam, iters=200, rtol=1e-6)
    rhs = op.adjoint(y[None].expand(3, *y.shape)) + lam * x0
    res = op.normal(x) + lam * x - rhs
    assert float(res.abs().norm() / rhs.abs().norm()) < 1e-5 and bool(info.converged.all())
    fit_before = (op(x0) - y).abs().norm()
    assert (op(x) - y).abs().norm() < 0.2 * fit_before  # the measured lines are honoured
    same, _ = data_consistency(op, y, x0, lam=1e6, iters=5)
    torch.testing.assert_close(same, x0, rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="lam must be > 0"):
        data_consistency(op, y, x0, lam=0.0)
    with pytest.raises(ValueError, match=r"x0 must be complex \[S, T, 48, 64\]"):
        data_consistency(op, y, x0[..., :32])
