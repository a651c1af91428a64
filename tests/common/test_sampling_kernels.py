"""MCMC kernels, gradient terms, PF-ODE and IDM helpers of common.sampling (paper Eq. 8-10)."""

from __future__ import annotations

import math

import pytest
import torch

from common.sampling import (
    exact_prior_grad,
    gaussian_prior_grad,
    hmc_step,
    image_mode,
    langevin_step,
    likelihood_grad,
    per_frame,
    pf_ode_euler,
)
from common.schedules import poly_sigmas

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _gaussian_target(dim: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean m, covariance S (non-diagonal, eigenvalues 0.25..1) and precision of a d-dim Gaussian target."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    cov = q @ torch.diag(torch.linspace(0.25, 1.0, dim, dtype=torch.float64)) @ q.T
    mean = torch.randn(dim, generator=g, dtype=torch.float64)
    return mean, cov, torch.linalg.inv(cov)


@pytest.mark.parametrize("momentum", [0.0, 0.8])
def test_kernels_leave_gaussian_target_invariant(momentum: float) -> None:
    """Start 4000 chains from exact samples, run 300 steps: mean and covariance stay (to discretisation error)."""
    mean, cov, prec = _gaussian_target()
    g = torch.Generator().manual_seed(1)
    n, lr = 4000, 0.01
    chol = torch.linalg.cholesky(cov)
    z = mean + torch.randn(n, 4, generator=g, dtype=torch.float64) @ chol.T
    v = torch.randn(n, 4, generator=g, dtype=torch.float64)
    for _ in range(300):
        grad = -(z - mean) @ prec
        eps = torch.randn(n, 4, generator=g, dtype=torch.float64)
        if momentum == 0.0:
            z = langevin_step(z, grad, lr, eps)
        else:
            z, v = hmc_step(z, v, grad, lr, momentum, eps)
    se = (cov.diagonal() / n).sqrt()
    assert ((z.mean(0) - mean).abs() < 4 * se).all()
    ratio = torch.cov(z.T).diagonal() / cov.diagonal()
    assert ((ratio > 0.9) & (ratio < 1.1)).all(), ratio
    assert (torch.cov(z.T) - cov).abs().max() < 0.08
    if momentum:  # Eq. 9 as written: the momentum's stationary variance is 2 / (1 + m) (Euler friction), not 1
        assert abs(v.var(0).mean().item() - 2.0 / (1.0 + momentum)) < 0.05


def test_hmc_with_zero_momentum_is_langevin() -> None:
    g = torch.Generator().manual_seed(0)
    z, v, grad, eps = (torch.randn(3, 5, generator=g) for _ in range(4))
    z_h, _ = hmc_step(z, v, grad, 0.04, 0.0, eps)
    torch.testing.assert_close(z_h, langevin_step(z, grad, 0.04, eps))
    torch.testing.assert_close(langevin_step(z, grad, 0.04, eps), z + 0.04 * grad + math.sqrt(0.08) * eps)


def test_likelihood_grad_through_decoder_and_clamp() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 1, 1, 2, 2, generator=g)
    w = torch.randn(4, 4, generator=g)

    def decode(z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z.reshape(2, 4) @ w.T)

    def loglik(x: torch.Tensor) -> torch.Tensor:
        return -(x**2).sum(1) * 3.0

    ll, grad = likelihood_grad(loglik, decode, z)
    x = torch.tanh(z.reshape(2, 4) @ w.T)
    torch.testing.assert_close(ll, -(x**2).sum(1) * 3.0)
    expected = ((-6.0 * x) * (1 - x**2)) @ w  # chain rule by hand
    torch.testing.assert_close(grad.reshape(2, 4), expected)
    _, clamped = likelihood_grad(loglik, decode, z, clamp=0.5)
    torch.testing.assert_close(clamped, grad.clamp(-0.5, 0.5))
    assert grad.abs().max() > 0.5  # the clamp is active in this case


def test_likelihood_grad_rejects_bad_likelihoods() -> None:
    z = torch.zeros(3, 1, 1, 2, 2)
    with pytest.raises(ValueError, match=r"shape \(3,\); found \(\)"):
        likelihood_grad(lambda x: -(x**2).sum(), None, z)
    with pytest.raises(ValueError, match="does not depend on z"):
        likelihood_grad(lambda x: torch.zeros(3), None, z)


def test_prior_terms_by_hand() -> None:
    """Exact term (z_t - z0)/sigma^2 + (D(z0; s) - z0)/s^2 with D(z; s) = z / (1 + s^2) (N(0, I) data)."""
    g = torch.Generator().manual_seed(0)
    z0, z_t = torch.randn(2, 3, 1, 2, 2, generator=g), torch.randn(2, 3, 1, 2, 2, generator=g)
    calls = []

    def denoiser(z: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        calls.append(sigma.clone())
        return z / (1 + sigma.reshape(-1, 1, 1, 1, 1) ** 2)

    got = exact_prior_grad(denoiser, z0, z_t, 2.0, 0.1)
    torch.testing.assert_close(got, (z_t - z0) / 4.0 - z0 / 1.01, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(calls[0], torch.full((2,), 0.1))
    torch.testing.assert_close(gaussian_prior_grad(z0, z_t, 0.5), (z_t - z0) * 4.0)


def test_pf_ode_euler_follows_the_gaussian_flow() -> None:
    """For N(0, sd^2 I) data the PF-ODE (Eq. 8) is z(s) = z(s0) sqrt(sd^2 + s^2) / sqrt(sd^2 + s0^2)."""
    sd = 0.5

    def denoiser(z: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return z * sd**2 / (sd**2 + sigma.reshape(-1, 1, 1, 1, 1) ** 2)

    z = torch.randn(2, 2, 1, 3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 10
    grid = poly_sigmas(10.0, 1e-3, 400)
    out = pf_ode_euler(denoiser, z, grid)
    expected = z * math.sqrt(sd**2 + 1e-6) / math.sqrt(sd**2 + 100.0)
    torch.testing.assert_close(out, expected, rtol=2e-2, atol=1e-4)
    assert pf_ode_euler(denoiser, z, [0.5]) is z  # one-point grid: nothing to solve


def test_per_frame_and_image_mode_make_frames_independent() -> None:
    def mixing(z: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:  # a "video" denoiser that mixes frames
        return z + z.mean(1, keepdim=True) * sigma.reshape(-1, 1, 1, 1, 1)

    z = torch.randn(2, 3, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([1.0, 2.0])
    iso = per_frame(mixing)
    z2 = z.clone()
    z2[:, 0] += 5.0
    torch.testing.assert_close(iso(z, sigma)[:, 1:], iso(z2, sigma)[:, 1:])  # frame 0 does not leak
    assert not torch.allclose(mixing(z, sigma)[:, 1:], mixing(z2, sigma)[:, 1:])
    torch.testing.assert_close(iso(z, sigma), z + z * sigma.reshape(-1, 1, 1, 1, 1))

    seen = {}

    def model(z: torch.Tensor, sigma: torch.Tensor, video: bool = True) -> torch.Tensor:
        seen["video"] = video
        return z

    image_mode(model)(z, sigma)
    assert seen["video"] is False
