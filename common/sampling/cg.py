"""Batched conjugate gradient for symmetric positive definite systems ``M x = b`` (one system per batch element).

Used by the data-consistency steps (:mod:`common.sampling.consistency`) to solve the Gaussian conditional
``(A^T A / s^2 + I / r^2) x = A^T y' / s^2 + x' / r^2`` matrix-free. Every batch element (posterior sample) is its
own system with its own step lengths and its own stopping test, so sample k does not depend on the others.

The stop is on the relative residual ``||b - M x|| <= rtol ||b||`` per element; an element that has converged (or
whose right-hand side is 0) is frozen, which avoids the 0/0 of plain CG on well-conditioned systems.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class CGInfo:
    """``iterations`` made (the batch's maximum), final ``relative_residual`` ``[B]`` and ``converged`` ``[B]``."""

    iterations: int
    relative_residual: torch.Tensor
    converged: torch.Tensor


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Real inner product per batch element in float64, ``[B]`` (complex tensors: ``Re <a, b>``); float64 so that
    the tiny residuals of a converged float32 system do not underflow to 0/0."""
    if a.is_complex():
        return (a.conj() * b).real.flatten(1).double().sum(1)
    return (a * b).flatten(1).double().sum(1)


def batch_view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``v [B]`` viewed as ``[B, 1, ...]`` to broadcast against ``like [B, ...]`` (dtype and device kept)."""
    return v.reshape(-1, *([1] * (like.dim() - 1)))


def conjugate_gradient(apply: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, x0: torch.Tensor | None = None,
                       *, max_iter: int = 50, rtol: float = 1e-4) -> tuple[torch.Tensor, CGInfo]:
    """Solve ``apply(x) = b`` for each batch element (dim 0) by conjugate gradient.

    Args:
        apply: the SPD operator, batched: ``[B, ...] -> [B, ...]`` acting on each element separately.
        b: right-hand side ``[B, ...]`` (real or complex; complex systems must be Hermitian positive definite).
        x0: start (default zeros).
        max_iter: at most this many operator applications after the initial residual.
        rtol: relative-residual stop per element.
    Returns:
        ``(x, CGInfo)``. Non-finite values raise ``FloatingPointError`` naming the iteration.
    """
    if max_iter < 0 or not rtol > 0:
        raise ValueError(f"conjugate_gradient: need max_iter >= 0 and rtol > 0, got {max_iter}, {rtol}")
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - apply(x) if x0 is not None else b.clone()
    b_norm = _dot(b, b).sqrt()
    target = rtol * b_norm
    rr = _dot(r, r)
    if not bool(torch.isfinite(rr).all() and torch.isfinite(b_norm).all()):
        raise FloatingPointError("conjugate_gradient: non-finite right-hand side or initial residual (iteration 0)")
    active = rr.sqrt() > target
    p = r.clone()
    it = 0
    while it < max_iter and bool(active.any()):
        q = apply(p)
        pq = _dot(p, q)
        alpha = torch.where(active & (pq > 0), rr / torch.where(pq > 0, pq, torch.ones_like(pq)),
                            torch.zeros_like(pq))
        x = x + batch_view(alpha, x).to(x.dtype) * p
        r = r - batch_view(alpha, r).to(r.dtype) * q
        rr_new = _dot(r, r)
        if not bool(torch.isfinite(rr_new).all()):
            raise FloatingPointError(f"conjugate_gradient: non-finite residual at iteration {it + 1}")
        beta = torch.where(active & (rr > 0), rr_new / torch.where(rr > 0, rr, torch.ones_like(rr)),
                           torch.zeros_like(rr))
        p = r + batch_view(beta, p).to(p.dtype) * p
        rr = rr_new
        active = active & (rr.sqrt() > target)
        it += 1
    rel = rr.sqrt() / torch.where(b_norm > 0, b_norm, torch.ones_like(b_norm))
    return x, CGInfo(iterations=it, relative_residual=rel, converged=~active)
