"""Exact data-consistency step for linear operators with Gaussian noise: perturb-and-solve with conjugate gradient.

Model ``y = A x + n``, ``n ~ N(0, s^2)`` per real component, prior term ``N(x_hat, r_k^2 I)`` with
``x_hat = decode(z0_hat)`` (:class:`~common.sampling.consistency.base.PixelRadius`). The conditional is Gaussian,

    p(x | x_hat, y) = N(m, P^-1),   P = A^H A / s^2 + I / r^2,   P m = A^H y / s^2 + x_hat / r^2,

and an exact draw is the solution of ``P x = A^H (y + s e_y) / s^2 + (x_hat + r e_x) / r^2`` with e_y, e_x standard
normal (perturbation-optimisation, Papandreou & Yuille 2010; Orieux et al. 2012): the right-hand side has
covariance P, so x has covariance P^-1 P P^-1 = P^-1 (``perturb="both"``). ``perturb="none"`` returns m (the
conditional mean, the "posterior-mean variant"); ``"data"`` perturbs y only (the prior side's randomness then comes
from DAPS's latent re-noising alone). ``temperature`` multiplies the noise std s (1: the model's own level).
The solve is :func:`~common.sampling.cg.conjugate_gradient`, warm-started at x_hat.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from common.sampling.consistency.base import (
    Decoder,
    PixelRadius,
    StepResult,
    StepState,
    apply_or_identity,
    check_perturb,
    per_sample,
    require_finite,
    solve_or_raise,
)


@dataclass
class LinearGaussian:
    """A linear-Gaussian likelihood ``y = A x + n``, ``n ~ N(0, noise_std^2)`` per real component.

    ``forward``: ``x [B, T, C, H, W]`` (real) -> ``[B, *y.shape]`` (real or complex, linear over the reals);
    ``adjoint``: its adjoint for the real inner product ``Re <A x, y>`` (for a complex-linear A on complex images
    stored as (real, imag) channels that is ``complex_to_channels(A^H y)``); ``y`` the measurements (no batch dim);
    ``noise_std`` s. ``log p(y | x) = -||A x - y||^2 / (2 s^2)``. ``normal``: optional ``A^H A`` (same layout as
    ``x``) when the operator has a faster one than ``adjoint(forward(x))`` (used by the CG solves).
    """

    forward: Callable[[torch.Tensor], torch.Tensor]
    adjoint: Callable[[torch.Tensor], torch.Tensor]
    y: torch.Tensor
    noise_std: float
    normal: Callable[[torch.Tensor], torch.Tensor] | None = None

    def __post_init__(self) -> None:
        if not (self.noise_std > 0 and math.isfinite(self.noise_std)):
            raise ValueError(f"LinearGaussian: noise_std must be a positive finite number, got {self.noise_std!r}")

    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """``-||A x - y||^2 / (2 s^2)`` per sample, ``[B]``."""
        r = self.forward(x) - self.y
        return -(r.abs() ** 2).flatten(1).sum(1) / (2.0 * self.noise_std**2)

    def relative_misfit(self, x: torch.Tensor) -> torch.Tensor:
        """``||A x - y|| / ||y||`` per sample, ``[B]``."""
        with torch.no_grad():
            r = (self.forward(x) - self.y).abs().flatten(1).norm(dim=1)
            return r / self.y.abs().norm().clamp_min(torch.finfo(r.dtype).tiny)


@dataclass
class LinearGaussianStep:
    """Exact (``perturb="both"``), data-perturbed or mean (``"none"``) draw from the Gaussian conditional
    (module docstring)."""

    model: LinearGaussian
    radius: PixelRadius
    decode: Decoder | None = None
    encode: Decoder | None = None
    perturb: str = "both"
    temperature: float = 1.0
    cg_iters: int = 50
    cg_rtol: float = 1e-4
    project: Callable[[torch.Tensor], torch.Tensor] | None = None

    def __post_init__(self) -> None:
        check_perturb("LinearGaussianStep", self.perturb)
        if not self.temperature > 0:
            raise ValueError(f"LinearGaussianStep: temperature must be > 0, got {self.temperature!r}")

    def __call__(self, s: StepState) -> StepResult:
        x_hat = apply_or_identity(self.decode, s.z0_hat)
        r = self.radius(s.sigma, s.z0_hat, x_hat, self.decode, s.noise)  # [B]
        with torch.no_grad():
            x = self.solve(x_hat, r, s)
            if self.project is not None:
                x = self.project(x)
            require_finite(x, "linear-Gaussian draw", s.k, s.sigma)
            ll = self.model.log_likelihood(x) / self.temperature**2
        return StepResult(z0=apply_or_identity(self.encode, x), x0=x, log_likelihood=ll, lr=float(r.mean()))

    def solve(self, x_hat: torch.Tensor, r: torch.Tensor, s: StepState) -> torch.Tensor:
        """The draw (or mean) for prior centre ``x_hat`` ``[B, ...]`` and radius ``r`` ``[B]`` (one per sample)."""
        m = self.model
        std = self.temperature * m.noise_std
        w_y, w_x = 1.0 / std**2, per_sample(1.0 / r**2, x_hat)
        y = m.y.expand(x_hat.shape[0], *m.y.shape)
        centre = x_hat
        if self.perturb in ("both", "data"):
            y = y + std * measurement_noise(s, m.y)
        if self.perturb == "both":
            centre = x_hat + per_sample(r, x_hat) * s.noise.randn_shape(x_hat.shape[1:]).to(x_hat.dtype)
        rhs = w_y * m.adjoint(y) + w_x * centre

        gram = m.normal if m.normal is not None else (lambda v: m.adjoint(m.forward(v)))

        def normal(v: torch.Tensor) -> torch.Tensor:
            return w_y * gram(v) + w_x * v

        return solve_or_raise(normal, rhs, x_hat, self.cg_iters, self.cg_rtol, "linear-Gaussian solve", s.k,
                              s.sigma)


def measurement_noise(s: StepState, y: torch.Tensor) -> torch.Tensor:
    """``[B, *y.shape]`` standard normal per real component (complex y: independent real and imaginary parts)."""
    if y.is_complex():
        e = s.noise.randn_shape((*y.shape, 2))
        return torch.view_as_complex(e.contiguous()).to(y.dtype)
    return s.noise.randn_shape(y.shape).to(y.dtype)
