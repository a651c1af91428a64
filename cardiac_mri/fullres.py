"""From the prior's grid back to the acquisition: upsampling and the final data-consistency solve.

A diffusion prior works on a small square grid (:func:`cardiac_mri.images.to_model_grid`: centre crop along the
readout, Fourier resize). Its samples are moved back to the data's matrix ``(ny, nx)`` by :func:`from_model_grid`
(Fourier zero-padding to ``min(ny, nx)``, then zero-padding along the readout), which keeps pixel values (image
units), and then made consistent with every measured k-space sample at full resolution by :func:`data_consistency`:

    x = argmin ||A x - y||^2 + lam ||x - x_up||^2,   i.e.  (A^H A + lam I) x = A^H y + lam x_up,

solved by conjugate gradient started from ``x_up`` (``A`` the full-resolution SENSE operator with orthonormal FFT
and ``sum_c |S_c|^2 = 1`` maps, so ``lam`` is dimensionless and ``||A|| <= 1``). Large ``lam`` keeps the prior's
sample, small ``lam`` approaches CG-SENSE; ``DEFAULT_LAMBDA`` and ``DEFAULT_ITERS`` were chosen on held-out
synthetic cines (``benchmarks/RESULTS.md``, issue 12).
"""

from __future__ import annotations

import torch

from cardiac_mri.images import fourier_resize
from cardiac_mri.sense import SenseOperator
from common.sampling.cg import CGInfo, conjugate_gradient

DEFAULT_LAMBDA = 0.01
DEFAULT_ITERS = 30


def from_model_grid(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Complex ``[..., size, size]`` on the model grid -> ``[..., ny, nx]`` (inverse of ``to_model_grid`` up to the
    discarded readout margins and k-space corners): Fourier resize to ``side = min(ny, nx)``, then zero-pad the
    longer axis with ``center_crop``'s centring (start ``n // 2 - side // 2``)."""
    ny, nx = shape
    side = min(ny, nx)
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"from_model_grid: expected square frames [..., size, size], got {tuple(x.shape)}")
    sq = fourier_resize(x.to(torch.complex64), side)
    out = sq.new_zeros((*sq.shape[:-2], ny, nx))
    y0, x0 = ny // 2 - side // 2, nx // 2 - side // 2
    out[..., y0 : y0 + side, x0 : x0 + side] = sq
    return out


def data_consistency(op: SenseOperator, y: torch.Tensor, x0: torch.Tensor, lam: float = DEFAULT_LAMBDA,
                     iters: int = DEFAULT_ITERS, rtol: float = 1e-5) -> tuple[torch.Tensor, CGInfo]:
    """Solve ``(A^H A + lam I) x = A^H y + lam x0`` per sample by CG from ``x0`` (module docstring).

    Args:
        op: full-resolution operator (maps ``[C, ny, nx]``, mask).
        y: measured k-space ``[T, C, ny, nx]`` (zeros where not sampled), data units.
        x0: starting images and Tikhonov centres ``[S, T, ny, nx]`` complex, image units.
        lam: Tikhonov weight (> 0, dimensionless).
        iters: at most this many CG iterations.
    Returns:
        ``(x [S, T, ny, nx] complex64, CGInfo)``.
    """
    if not lam > 0:
        raise ValueError(f"data_consistency: lam must be > 0, got {lam}")
    if x0.ndim != 4 or not x0.is_complex() or tuple(x0.shape[-2:]) != op.image_shape:
        raise ValueError(f"data_consistency: x0 must be complex [S, T, {op.image_shape[0]}, {op.image_shape[1]}], "
                         f"got {tuple(x0.shape)} {x0.dtype}")
    with torch.no_grad():
        x0 = x0.to(op.maps.dtype)
        rhs = op.adjoint(y.to(op.maps.dtype)[None].expand(x0.shape[0], *y.shape)) + lam * x0

        def normal(v: torch.Tensor) -> torch.Tensor:
            return op.normal(v).add_(v, alpha=lam)

        return conjugate_gradient(normal, rhs, x0, max_iter=iters, rtol=rtol)
