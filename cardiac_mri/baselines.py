"""Classical dynamic MRI reconstructions on the same :class:`~cardiac_mri.sense.SenseOperator`.

All take measurements ``y`` complex ``[B, T, C, H, W]`` and return images ``[B, T, H, W]`` (complex, except the
zero-filled RSS which is real). Regularisation weights are *relative*, so they do not depend on the data's units:

- :func:`zero_filled_rss`: root-sum-of-squares of the coil images of the zero-filled k-space.
- :func:`sense_cg`: conjugate gradient on ``(A^H A + lam I) x = A^H y`` (Tikhonov weight ``lam`` absolute,
  dimensionless because ``A`` is scaled to norm <= 1 for normalised maps).
- :func:`tv_sense`: ``min 1/2 ||A x - y||^2 + lam ||D_t x||_1`` with ``D_t`` the periodic temporal difference (the
  cardiac cycle is periodic) and ``lam = lam_rel * max|A^H y|``; solved by primal-dual hybrid gradient
  (Chambolle & Pock 2011).
- :func:`low_rank_plus_sparse`: L+S of Otazo et al. 2015,
  ``min 1/2 ||A(L + S) - y||^2 + lam_L ||L||_* + lam_S ||T S||_1`` with ``T`` the orthonormal temporal FFT and
  ``L`` the Casorati matrix ``[H W, T]``; iterative soft thresholding of singular values and temporal-Fourier
  coefficients, ``lam_L`` relative to the largest singular value of the current ``M - S``, ``lam_S`` relative to
  ``max |T A^H y|``.
"""

from __future__ import annotations

import math

import torch

from cardiac_mri.coils import rss
from cardiac_mri.sense import SenseOperator, ifft2c
from common.sampling.cg import batch_view


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample real inner product ``Re <a, b>`` over all axes but the first: ``[B]``."""
    return (a.conj() * b).real.flatten(1).sum(dim=1)


def check_settings(method: str, iters: int, **weights: float) -> None:
    """``ValueError`` naming ``method`` unless ``iters`` >= 1 and every weight is a finite number >= 0 (0 iterations
    return the starting point, all zeros; a negative or NaN weight makes the solvers diverge to NaN)."""
    if int(iters) < 1:
        raise ValueError(f"{method}: iters must be >= 1, got {iters}")
    for name, w in weights.items():
        if not (math.isfinite(w) and w >= 0):
            raise ValueError(f"{method}: {name} must be a finite number >= 0, got {w}")


def zero_filled_rss(y: torch.Tensor) -> torch.Tensor:
    """Zero-filled coil-RSS image ``[B, T, H, W]`` (real) from k-space ``[B, T, C, H, W]``."""
    if y.ndim != 5 or not y.is_complex():
        raise ValueError(f"zero_filled_rss: expected complex [B, T, C, H, W], got {tuple(y.shape)} {y.dtype}")
    return rss(ifft2c(y), dim=2)


def operator_norm_sq(op: SenseOperator, shape: tuple[int, ...], iters: int = 30, seed: int = 0) -> float:
    """``||A||^2`` by power iteration on ``A^H A`` with a seeded start; ``shape`` is ``[B, T, H, W]``."""
    gen = torch.Generator(device=op.maps.device).manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=op.maps.dtype, device=op.maps.device)
    x = x / x.abs().pow(2).sum().sqrt()
    norm = torch.zeros(())
    for _ in range(iters):
        z = op.normal(x)
        norm = z.abs().pow(2).sum().sqrt()
        x = z / norm
    return float(norm)


def sense_cg(
    op: SenseOperator, y: torch.Tensor, iters: int = 10, lam: float = 0.01, x0: torch.Tensor | None = None,
    tol: float = 1e-6,
) -> torch.Tensor:
    """CG-SENSE: solve ``(A^H A + lam I) x = A^H y`` per sample, from ``x0`` (default 0); ``[B, T, H, W]``.

    Stops early when every sample's residual norm falls below ``tol`` times its initial norm.
    """
    check_settings("sense_cg", iters, lam=lam)
    b = op.adjoint(y)
    x = torch.zeros_like(b) if x0 is None else x0.to(b.dtype).clone()
    r = b - (op.normal(x) + lam * x)
    p = r.clone()
    rs = _dot(r, r)
    rs0 = rs.clone()
    for _ in range(iters):
        if bool((rs <= tol**2 * rs0).all()):
            break
        ap = op.normal(p) + lam * p
        alpha = rs / _dot(p, ap).clamp_min(torch.finfo(rs.dtype).tiny)
        x = x + batch_view(alpha, x) * p
        r = r - batch_view(alpha, r) * ap
        rs_new = _dot(r, r)
        beta = rs_new / rs.clamp_min(torch.finfo(rs.dtype).tiny)
        p = r + batch_view(beta, p) * p
        rs = rs_new
    return x


def _dt(x: torch.Tensor) -> torch.Tensor:
    """Periodic temporal forward difference over axis 1."""
    return torch.roll(x, -1, dims=1) - x


def _dt_adjoint(q: torch.Tensor) -> torch.Tensor:
    return torch.roll(q, 1, dims=1) - q


def _project_l_inf(q: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Project complex entries onto the disk ``|q| <= radius``."""
    return q / (q.abs() / radius).clamp_min(1.0)


def tv_sense(op: SenseOperator, y: torch.Tensor, lam_rel: float = 0.003, iters: int = 150) -> torch.Tensor:
    """Temporal-TV SENSE by PDHG; ``[B, T, H, W]`` complex. ``lam = lam_rel * max|A^H y|`` per sample."""
    check_settings("tv_sense", iters, lam_rel=lam_rel)
    aty = op.adjoint(y)
    lam = batch_view(lam_rel * aty.abs().flatten(1).amax(dim=1), aty)
    norm_sq = operator_norm_sq(op, tuple(aty.shape)) + 4.0  # ||D_t||^2 <= 4
    tau = sigma = 0.99 / norm_sq**0.5
    x = aty.clone()
    x_bar = x.clone()
    p = torch.zeros_like(y)
    q = torch.zeros_like(x)
    for _ in range(iters):
        p = (p + sigma * (op(x_bar) - y)) / (1 + sigma)
        q = q + sigma * _dt(x_bar)
        q = _project_l_inf(q, lam)
        x_new = x - tau * (op.adjoint(p) + _dt_adjoint(q))
        x_bar = 2 * x_new - x
        x = x_new
    return x


def _soft(z: torch.Tensor, thr: torch.Tensor) -> torch.Tensor:
    """Complex soft thresholding ``z * max(|z| - thr, 0) / |z|``."""
    mag = z.abs()
    return z * ((mag - thr).clamp_min(0) / mag.clamp_min(torch.finfo(mag.dtype).tiny))


def low_rank_plus_sparse(
    op: SenseOperator, y: torch.Tensor, lam_l: float = 0.003, lam_s: float = 0.02, iters: int = 50,
) -> torch.Tensor:
    """L+S reconstruction (Otazo et al. 2015, Eq. 7 solved as in their Algorithm 1); returns ``L + S``."""
    check_settings("low_rank_plus_sparse", iters, lam_l=lam_l, lam_s=lam_s)
    aty = op.adjoint(y)
    bsz, frames, h, w = aty.shape
    step = 1.0 / max(operator_norm_sq(op, tuple(aty.shape)), 1e-12)
    thr_s = batch_view(lam_s * torch.fft.fft(aty, dim=1, norm="ortho").abs().flatten(1).amax(dim=1), aty)
    m = aty.clone()
    l_prev = m.clone()
    s = torch.zeros_like(m)
    for _ in range(iters):
        casorati = (m - s).reshape(bsz, frames, h * w).transpose(1, 2)  # [B, HW, T]
        u, sv, vh = torch.linalg.svd(casorati, full_matrices=False)
        sv = (sv - lam_l * sv[:, :1]).clamp_min(0)
        low = (u * sv[:, None, :].to(u.dtype)) @ vh
        lr = low.transpose(1, 2).reshape(bsz, frames, h, w)
        s = torch.fft.ifft(_soft(torch.fft.fft(m - l_prev, dim=1, norm="ortho"), thr_s), dim=1, norm="ortho")
        x = lr + s
        m = x - step * op.adjoint(op(x) - y)
        l_prev = lr
    return lr + s
