"""MCMC kernels and gradient terms for p(z0 | z_t, y) inside DAPS (paper App. A, Eq. 9-10; FACTS.md s.1).

Target: log p(z0 | z_t, y) = log p(y | decode(z0)) + log p(z0 | z_t) + const. All tensors are ``[B, T, C, H, W]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from common.denoisers import Denoiser
from common.sampling.ode import check_denoised

LogLikelihood = Callable[[torch.Tensor], torch.Tensor]
Decoder = Callable[[torch.Tensor], torch.Tensor]


def langevin_step(z: torch.Tensor, grad: torch.Tensor, lr: float, eps: torch.Tensor) -> torch.Tensor:
    """Unadjusted Langevin: ``z + lr * grad + sqrt(2 lr) * eps`` (App. A, LMC update)."""
    return z.add(grad, alpha=lr).add_(eps, alpha=math.sqrt(2.0 * lr))


def hmc_step(z: torch.Tensor, v: torch.Tensor, grad: torch.Tensor, lr: float, momentum: float,
             eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Damped Hamiltonian dynamics (Eq. 9-10) with eta = sqrt(lr) and momentum m = 1 - gamma * eta.

    ``v <- m v + sqrt(lr) grad + sqrt(2 (1 - m)) eps``; ``z <- z + sqrt(lr) v``. Returns ``(z, v)``. With m = 0
    this is exactly :func:`langevin_step`. For a Gaussian target the stationary law of z is the target up to
    O(lr * curvature); that of v is N(0, 2 / (1 + m) I), not N(0, I): the Euler discretisation of the friction in
    Eq. 9 as written (v is still redrawn from N(0, I) at every annealing step, as in the paper).
    """
    eta = math.sqrt(lr)
    v = (v * momentum).add_(grad, alpha=eta).add_(eps, alpha=math.sqrt(2.0 * (1.0 - momentum)))
    return z.add(v, alpha=eta), v


def likelihood_grad(log_likelihood: LogLikelihood, decode: Decoder | None, z: torch.Tensor,
                    clamp: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log p(y | decode(z)) [B], its gradient w.r.t. z)``; gradients flow through ``decode``.

    ``clamp`` bounds the gradient element-wise to ``[-clamp, clamp]`` (reference behaviour; see ``DAPSConfig``).
    The batch elements must be independent in the likelihood (the gradient of the sum is taken).
    """
    with torch.enable_grad():
        zr = z.detach().requires_grad_(True)
        ll = log_likelihood(zr if decode is None else decode(zr))
        if not isinstance(ll, torch.Tensor) or ll.shape != (z.shape[0],):
            found = tuple(ll.shape) if isinstance(ll, torch.Tensor) else type(ll).__name__
            raise ValueError(f"log_likelihood must return one value per batch element, shape ({z.shape[0]},); "
                             f"found {found}")
        if not ll.requires_grad:
            raise ValueError("log_likelihood output does not depend on z through autograd (detached, or computed "
                             "under torch.no_grad / in numpy?); the sampler needs its gradient")
        (g,) = torch.autograd.grad(ll.sum(), zr)
    if clamp is not None:
        g = g.clamp(-clamp, clamp)
    return ll.detach(), g


@torch.no_grad()
def exact_prior_grad(denoiser: Denoiser, z0: torch.Tensor, z_t: torch.Tensor, sigma_t: float,
                     prior_sigma: float) -> torch.Tensor:
    """``grad log p(z0 | z_t) ~= (z_t - z0) / sigma_t^2 + score(z0, prior_sigma)`` (App. A, "exact" term).

    The score is Tweedie's ``(D(z0; prior_sigma) - z0) / prior_sigma^2`` (one denoiser call, no autograd).
    """
    d = check_denoised(denoiser(z0, z0.new_full((z0.shape[0],), prior_sigma)), z0)
    return (z_t - z0).div_(sigma_t**2).add_(d - z0, alpha=1.0 / prior_sigma**2)


def gaussian_prior_grad(z0: torch.Tensor, z0_ode: torch.Tensor, r: float) -> torch.Tensor:
    """``grad log N(z0; z0_ode, r^2 I) = (z0_ode - z0) / r^2`` (DAPS's Gaussian approximation of p(z0 | z_t))."""
    return (z0_ode - z0) / r**2
