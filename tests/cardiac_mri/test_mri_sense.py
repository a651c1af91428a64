import numpy as np
import pytest
import sigpy
import sigpy.mri
import torch

from cardiac_mri import SenseOperator
from cardiac_mri.masks import equispaced_mask
from cardiac_mri.sense import channels_to_complex, complex_to_channels, fft2c, ifft2c


def _randn_complex(shape, gen, dtype=torch.complex64):
    return torch.randn(shape, generator=gen, dtype=dtype)


@pytest.mark.parametrize("dtype, tol", [(torch.complex64, 1e-5), (torch.complex128, 1e-12)])
@pytest.mark.parametrize("per_frame", [False, True])
@pytest.mark.parametrize("h, w", [(20, 18), (15, 12), (11, 9)])
def test_adjoint_dot_product(dtype, tol, per_frame, h, w):
    gen = torch.Generator().manual_seed(0)
    c, t = 5, 6
    maps = _randn_complex((c, h, w), gen, dtype)
    mask = equispaced_mask(h, w, 3, 4, frames=t if per_frame else None, kt_shift=per_frame)
    op = SenseOperator(maps, mask)
    x = _randn_complex((2, t, h, w), gen, dtype)
    y = _randn_complex((2, t, c, h, w), gen, dtype)
    lhs = torch.vdot(op(x).flatten(), y.flatten())
    rhs = torch.vdot(x.flatten(), op.adjoint(y).flatten())
    assert abs(lhs - rhs) / abs(lhs) < tol
    assert torch.allclose(op.normal(x), op.adjoint(op(x)), rtol=0, atol=tol * 10 * float(x.abs().max()) * c)


def test_linearity_and_shapes():
    gen = torch.Generator().manual_seed(1)
    op = SenseOperator(_randn_complex((3, 8, 8), gen), equispaced_mask(8, 8, 2, 2))
    x1, x2 = _randn_complex((1, 4, 8, 8), gen), _randn_complex((1, 4, 8, 8), gen)
    a = 0.3 - 1.2j
    assert torch.allclose(op(a * x1 + x2), a * op(x1) + op(x2), atol=1e-5)
    assert op(x1).shape == (1, 4, 3, 8, 8) and op(x1).dtype == torch.complex64
    with pytest.raises(ValueError, match=r"\[B, T, H, W\]"):
        op(x1[0])
    with pytest.raises(ValueError, match="complex"):
        op(x1.real)
    with pytest.raises(ValueError, match="mask must be"):
        SenseOperator(_randn_complex((3, 8, 8), gen), torch.ones(8, 9))
    with pytest.raises(ValueError, match="frames"):
        SenseOperator(_randn_complex((3, 8, 8), gen), torch.ones(5, 8, 8))(x1)


def test_fft_matches_numpy_centred_orthonormal():
    gen = torch.Generator().manual_seed(2)
    x = _randn_complex((3, 15, 12), gen, torch.complex128)
    ref = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x.numpy(), axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    np.testing.assert_allclose(fft2c(x).numpy(), ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ifft2c(fft2c(x)).numpy(), x.numpy(), atol=1e-12)


def test_equals_sigpy_sense_per_frame(cine64):
    maps = cine64.maps
    mask = equispaced_mask(64, 64, 8, 24, frames=12, kt_shift=True)
    op = SenseOperator(maps, mask)
    x = cine64.image[:, 0][None]  # [1, 12, 64, 64]
    y = op(x)[0]
    xa = op.adjoint(op(x))[0]
    for t in range(12):
        s = sigpy.mri.linop.Sense(maps.numpy(), weights=mask[t].numpy())
        ys = s(x[0, t].numpy())
        xs = s.H(ys)
        assert np.linalg.norm(y[t].numpy() - ys) / np.linalg.norm(ys) < 1e-5
        assert np.linalg.norm(xa[t].numpy() - xs) / np.linalg.norm(xs) < 1e-5


@pytest.mark.parametrize("h, w", [(16, 16), (14, 10), (8, 10), (6, 8), (15, 16), (16, 13), (9, 7)])
@pytest.mark.parametrize("coils", [1, 3])
def test_forward_equals_numpy_centred_fft(h, w, coils):
    """Even sizes take the folded (checkerboard, sign (-1)^(h/2 + w/2)) path, odd ones the fftshift path."""
    gen = torch.Generator().manual_seed(3)
    mask = equispaced_mask(h, w, 4, 4)
    maps = torch.ones(1, h, w, dtype=torch.complex128) if coils == 1 else _randn_complex((coils, h, w), gen,
                                                                                          torch.complex128)
    op = SenseOperator.single_coil(mask, dtype=torch.complex128) if coils == 1 else SenseOperator(maps, mask)
    x = _randn_complex((2, 3, h, w), gen, torch.complex128)
    img = x.numpy()[:, :, None] * maps.numpy()
    ref = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(img, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    np.testing.assert_allclose(op(x).numpy(), mask.numpy() * ref, atol=1e-12)
    y = _randn_complex((2, 3, coils, h, w), gen, torch.complex128)
    back = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(mask.numpy() * y.numpy(), axes=(-2, -1)), norm="ortho"),
                           axes=(-2, -1))
    np.testing.assert_allclose(op.adjoint(y).numpy(), (np.conj(maps.numpy()) * back).sum(axis=2), atol=1e-12)
    np.testing.assert_allclose(op.adjoint(op(x)).numpy(), op.normal(x).numpy(), atol=1e-12)
    assert op.num_coils == coils


def test_buffers_follow_to():
    op = SenseOperator(torch.ones(2, 4, 4, dtype=torch.complex64), torch.ones(4, 4))
    names = {n for n, _ in op.named_buffers()}
    assert names == {"maps_ri", "mask"}
    op64 = op.to(torch.float64)
    assert op64.maps.dtype == torch.complex128 and op64.mask.dtype == torch.float64
    x = torch.ones(1, 2, 4, 4, dtype=torch.complex128)
    assert op64(x).dtype == torch.complex128
    state = op.state_dict()
    assert set(state) == {"maps_ri", "mask"}


def test_channel_conversion_round_trip():
    gen = torch.Generator().manual_seed(4)
    x = _randn_complex((2, 3, 5, 6), gen)
    ch = complex_to_channels(x)
    assert ch.shape == (2, 3, 2, 5, 6) and not ch.is_complex()
    assert torch.equal(channels_to_complex(ch), x)
    with pytest.raises(ValueError, match="2, H, W"):
        channels_to_complex(torch.zeros(2, 3, 4, 4))


def _both_paths(op: SenseOperator, x: torch.Tensor, y: torch.Tensor):
    """(fast, FFT) results of forward, adjoint and normal: recording a gradient forces the FFT path."""
    fast = (op(x), op.adjoint(y), op.normal(x))
    xr, yr = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    slow = tuple(v.detach() for v in (op(xr), op.adjoint(yr), op.normal(xr)))
    return fast, slow


@pytest.mark.parametrize("ny, nx", [(48, 36), (45, 20), (246, 40), (64, 64)])
@pytest.mark.parametrize("dtype, tol", [(torch.complex64, 1e-5), (torch.complex128, 1e-12)])
@pytest.mark.parametrize("per_frame", [False, True])
def test_row_fast_path_equals_fft_path_and_is_adjoint(ny, nx, dtype, tol, per_frame):
    """Row masks (CMRxRecon rule, weights, one pattern for every frame) take the pruned-DFT path; it must be the
    same operator as the FFT path (odd ny, several Cooley-Tukey factorisations) and exactly adjoint."""
    from cardiac_mri.masks import cmrxrecon_mask

    gen = torch.Generator().manual_seed(5)
    t, c = 3, 4
    mask = cmrxrecon_mask(ny, nx, 4) * (0.5 + torch.rand(ny, 1, generator=gen))  # row weights
    if per_frame:
        mask = mask.expand(t, ny, nx)
    op = SenseOperator(_randn_complex((c, ny, nx), gen, dtype), mask)
    assert op.row_plan() is not None
    x, y = _randn_complex((2, t, ny, nx), gen, dtype), _randn_complex((2, t, c, ny, nx), gen, dtype)
    fast, slow = _both_paths(op, x, y)
    for f, s in zip(fast, slow, strict=True):
        assert float((f - s).abs().norm() / s.abs().norm()) < tol
    lhs, rhs = torch.vdot(fast[0].flatten(), y.flatten()), torch.vdot(x.flatten(), fast[1].flatten())
    assert abs(lhs - rhs) / abs(lhs) < tol
    y1 = op(x).clone()
    op(2 * x)  # the workspaces are reused: an earlier result must not change
    assert torch.equal(op(x), y1)


@pytest.mark.parametrize("frames_per_block", [1, 3, 100])
def test_row_fast_path_in_frame_blocks(frames_per_block):
    """On the CPU the fast path runs coil by coil on blocks of frames (``RowSparsePlan.chunk_bytes``); several
    blocks, a shorter last block and one block for all frames must give the same operator as the FFT path."""
    from cardiac_mri.masks import cmrxrecon_mask

    gen = torch.Generator().manual_seed(8)
    b, t, c, ny, nx = 2, 5, 3, 40, 24
    op = SenseOperator(_randn_complex((c, ny, nx), gen), cmrxrecon_mask(ny, nx, 4))
    op.row_plan().chunk_bytes = frames_per_block * ny * nx * 8  # 10 frames: blocks of 1, of 3 (3, 3, 3, 1), one
    x, y = _randn_complex((b, t, ny, nx), gen), _randn_complex((b, t, c, ny, nx), gen)
    fast, slow = _both_paths(op, x, y)
    for f, s in zip(fast, slow, strict=True):
        assert float((f - s).abs().norm() / s.abs().norm()) < 1e-5


def test_row_fast_path_equals_sigpy(cine64):
    """Independent oracle for the fast path: sigpy's Sense frame by frame with the CMRxRecon R = 8 mask."""
    from cardiac_mri.masks import cmrxrecon_mask

    maps, mask = cine64.maps, cmrxrecon_mask(64, 64, 8)
    op = SenseOperator(maps, mask)
    assert op.row_plan() is not None
    x = cine64.image[:, 0][None]
    y, xa = op(x)[0], op.normal(x)[0]
    s = sigpy.mri.linop.Sense(maps.numpy(), weights=mask.numpy())
    for t in range(12):
        ys = s(x[0, t].numpy())
        assert np.linalg.norm(y[t].numpy() - ys) / np.linalg.norm(ys) < 1e-5
        xs = s.H(ys)
        assert np.linalg.norm(xa[t].numpy() - xs) / np.linalg.norm(xs) < 1e-5


def test_pruned_dft_rows_equal_the_dense_centred_dft():
    from cardiac_mri.pruned_dft import PrunedDFT

    gen = torch.Generator().manual_seed(6)
    for n in (192, 246, 15, 64, 7):
        rows = torch.nonzero(torch.rand(n, generator=gen) < 0.3).flatten()
        rows = torch.unique(torch.cat([rows, torch.arange(n // 2 - 2, n // 2 + 2)]))
        w = 0.5 + torch.rand(len(rows), generator=gen, dtype=torch.float64)
        eye = torch.eye(n, dtype=torch.complex128)
        dense = w[:, None] * torch.fft.fftshift(torch.fft.fft(torch.fft.ifftshift(eye, dim=0), dim=0, norm="ortho"),
                                                dim=0)[rows]
        d = PrunedDFT(n, rows, w, torch.complex128)
        v = _randn_complex((n, 5), gen, torch.complex128)
        k = _randn_complex((len(rows), 5), gen, torch.complex128)
        out, back = torch.empty(len(rows), 5, dtype=torch.complex128), torch.empty(n, 5, dtype=torch.complex128)
        dense = dense[d.order]  # outputs in the DFT's group order
        torch.testing.assert_close(d.forward(v, out), dense @ v, rtol=0, atol=1e-12)
        torch.testing.assert_close(d.adjoint(k, back), dense.conj().T @ k, rtol=0, atol=1e-12)
