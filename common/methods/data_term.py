"""The data step of the image-prior methods (SVI, VISION-XL, TCVR), for both kinds of likelihood a task offers.

Linear operators with Gaussian noise (MRI, ``task.linear``): ``l`` conjugate-gradient iterations on the normal
equations ``A^T A x = A^T y`` started at the denoised estimate, which is the minimiser of ``||y - A x||^2`` over
``x_hat + K_l`` (the Krylov subspace; SVI Eq. 18, VISION-XL Eq. 5, decomposed diffusion sampling): no regulariser,
early stopping is the regulariser.

Least-squares likelihoods (black hole closures, ``task.residuals``: whitened residuals rho with
``log p = -||rho||^2 / 2``): the papers have no nonlinear data step; this toolkit's extension is the same number ``l``
of Levenberg-Marquardt Gauss-Newton iterations on ``||rho(project(x))||^2 / 2`` started at the denoised estimate,
each a CG solve of ``(J^T J + mu I) d = -J^T rho`` (J applied by autodiff, :func:`~common.sampling.consistency.pixel.
linearise`); mu starts at ``1 / radius^2`` and is divided by 10 after a step that lowers the misfit, multiplied by 4
(and the step retried, at most 3 times) otherwise. For linear residuals and ``mu -> 0`` one iteration is a full
least-squares solve; the damping keeps the step inside the region where the linearisation of the wrapped closure
phases holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from common.recon.errors import DemoError
from common.recon.task import ReconTask
from common.sampling.cg import conjugate_gradient
from common.sampling.consistency import LinearGaussian
from common.sampling.consistency.pixel import linearise

Residuals = Callable[[torch.Tensor], torch.Tensor]
MAX_DAMPING_FACTOR = 1e8


@dataclass(frozen=True)
class DataFit:
    """``iters`` = l (CG iterations for a linear task, Gauss-Newton iterations for a residual one); ``cg_iters``:
    CG iterations of each Gauss-Newton solve; ``radius``: network units, the initial Levenberg-Marquardt damping is
    ``1 / radius^2`` (a first step of about ``radius`` per pixel)."""

    iters: int = 5
    cg_iters: int = 30
    radius: float = 0.03

    def __post_init__(self) -> None:
        if self.iters < 0 or self.cg_iters < 1 or not self.radius > 0:
            raise ValueError(f"DataFit: need iters >= 0, cg_iters >= 1, radius > 0, got {self}")


def least_squares_cg(model: LinearGaussian, x0: torch.Tensor, iters: int) -> torch.Tensor:
    """``iters`` CG iterations on ``A^T A x = A^T y`` from ``x0 [B, T, C, H, W]`` (per sample): the minimiser of
    ``||y - A x||`` over ``x0 + K_iters`` (SVI Eq. 18). Stops early only at a relative residual of 1e-10."""
    with torch.no_grad():
        y = model.y.expand(x0.shape[0], *model.y.shape)
        rhs = model.adjoint(y)
        x, _ = conjugate_gradient(lambda v: model.adjoint(model.forward(v)), rhs, x0, max_iter=iters, rtol=1e-10)
    return x


def gauss_newton_fit(residuals: Residuals, x0: torch.Tensor, iters: int, cg_iters: int = 30, radius: float = 0.03,
                     project: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """``iters`` Levenberg-Marquardt Gauss-Newton iterations on ``||residuals(project(x))||^2 / 2`` from ``x0``
    (module docstring); returns ``project(x)`` ``[B, ...]``."""
    proj = project if project is not None else (lambda v: v)

    def f(x: torch.Tensor) -> torch.Tensor:
        return residuals(proj(x))

    def objective(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return 0.5 * (f(x) ** 2).sum(1)

    x = x0.detach()
    phi = objective(x)
    mu0 = 1.0 / radius**2
    mu = torch.full_like(phi, mu0)
    for _ in range(iters):
        rho, jvp, jt = linearise(f, x)
        grad = jt(rho)
        todo = torch.ones_like(phi, dtype=torch.bool)
        for _ in range(4):
            damp = mu.reshape(-1, *([1] * (x.dim() - 1))).to(x.dtype)

            def normal(v: torch.Tensor, damp: torch.Tensor = damp, jt=jt, jvp=jvp) -> torch.Tensor:
                return jt(jvp(v)) + damp * v

            d, _ = conjugate_gradient(normal, -grad, None, max_iter=cg_iters, rtol=1e-3)
            trial = x + d
            phi_t = objective(trial)
            ok = todo & torch.isfinite(phi_t) & (phi_t < phi)
            x = torch.where(ok.reshape(-1, *([1] * (x.dim() - 1))), trial, x)
            phi = torch.where(ok, phi_t, phi)
            mu = torch.where(ok, mu / 10.0, torch.where(todo, mu * 4.0, mu)).clamp(max=MAX_DAMPING_FACTOR * mu0)
            todo = todo & ~ok
            if not bool(todo.any()):
                break
    with torch.no_grad():
        return proj(x)


def fit_data(task: ReconTask, x: torch.Tensor, fit: DataFit) -> torch.Tensor:
    """The data step of ``task`` from ``x [B, T, C, H, W]`` (network units): CG on a linear task, Gauss-Newton on a
    residual one (module docstring); the result is projected by ``task.project`` when the task has one."""
    require_data_model(task)
    if task.linear is not None:
        x = least_squares_cg(task.linear, x, fit.iters)
        return task.project(x) if task.project is not None else x
    return gauss_newton_fit(task.residuals, x, fit.iters, fit.cg_iters, fit.radius, task.project)


def whitened_misfit(task: ReconTask, x: torch.Tensor) -> torch.Tensor:
    """``-log p(y | x)`` at the data's own noise, per sample ``[B]``: ``||A x - y||^2 / (2 s^2)`` or
    ``||rho(x)||^2 / 2`` (differentiable)."""
    require_data_model(task)
    if task.linear is not None:
        return -task.linear.log_likelihood(x)
    return 0.5 * (task.residuals(x) ** 2).flatten(1).sum(1)


def measurement_count(task: ReconTask) -> int:
    """Number of real measurement components of ``task`` (whitened residuals; for a linear task every real component
    of ``y``, masked zeros included): the normaliser of TCVR's data loss."""
    if task.linear is not None:
        y = task.linear.y
        return int(y.numel() * (2 if y.is_complex() else 1))
    with torch.no_grad():
        c, h, w = task.image_shape
        return int(task.residuals(torch.ones(1, task.frames, c, h, w)).shape[1])


def require_data_model(task: ReconTask) -> None:
    """``DemoError`` unless the task offers a linear-Gaussian model or whitened residuals."""
    if task.linear is None and task.residuals is None:
        raise DemoError(f"{task.name}: SVI, VISION-XL and TCVR need a linear-Gaussian model (task.linear) or "
                        "whitened residuals (task.residuals); this task gives only a log-likelihood")
