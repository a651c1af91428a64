"""Data-consistency steps of DAPS against closed forms (issue 10).

The conditional the steps sample is p(x | x_hat, y) with prior N(x_hat, r^2 I) and a linear Gaussian likelihood
y = A x + n, n ~ N(0, s^2): Gaussian with precision P = A^T A / s^2 + I / r^2 and mean P^-1 (A^T y / s^2 +
x_hat / r^2). Many independent draws (one per batch element, each from its own generator) are whitened with the
closed-form mean and covariance; their mean must be ~0 and their covariance ~I.
"""

from __future__ import annotations

import math

import pytest
import torch

from common.sampling import DAPSConfig, daps
from common.sampling.cg import conjugate_gradient
from common.sampling.consistency import (
    LinearGaussian,
    LinearGaussianStep,
    PixelGaussNewton,
    PixelLangevin,
    PixelRadius,
    StepState,
    decoder_gain,
    make_step,
)
from common.sampling.noise import PerSampleNoise, make_generators

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHAPE = (2, 1, 2, 3)  # [T, C, H, W]: 12 dimensions
DIM = 12
N_DRAWS = 3000


class Problem:
    """A fixed random linear-Gaussian conditional (float64 closed form, float32 in the steps)."""

    def __init__(self, seed: int = 0, m: int = 8, s: float = 0.3, r: float = 0.5) -> None:
        g = torch.Generator().manual_seed(seed)
        self.a = torch.randn(m, DIM, generator=g, dtype=torch.float64) / math.sqrt(DIM) * 2.0
        self.y = torch.randn(m, generator=g, dtype=torch.float64)
        self.x_hat = torch.randn(DIM, generator=g, dtype=torch.float64)
        self.s, self.r = s, r
        prec = self.a.T @ self.a / s**2 + torch.eye(DIM, dtype=torch.float64) / r**2
        self.cov = torch.linalg.inv(prec)
        self.mean = self.cov @ (self.a.T @ self.y / s**2 + self.x_hat / r**2)
        self._a, self._y = self.a.float(), self.y.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], DIM) @ self._a.T

    def adjoint(self, v: torch.Tensor) -> torch.Tensor:
        return (v @ self._a).reshape(v.shape[0], *SHAPE)

    def model(self) -> LinearGaussian:
        return LinearGaussian(self.forward, self.adjoint, self._y, self.s)

    def residuals(self, x: torch.Tensor) -> torch.Tensor:
        return ((self.forward(x) - self._y) / self.s).to(torch.float64)

    def state(self, batch: int) -> StepState:
        gens, _ = make_generators(7, batch, "cpu")
        noise = PerSampleNoise(gens, SHAPE, "cpu", torch.float32)
        x_hat = self.x_hat.float().reshape(1, *SHAPE).expand(batch, *SHAPE).contiguous()
        return StepState(k=0, n=1, sigma=0.01, z_t=x_hat, z0_hat=x_hat, noise=noise)

    def whitened(self, x: torch.Tensor) -> tuple[float, torch.Tensor]:
        """(max |mean| of the whitened draws, their covariance)."""
        chol = torch.linalg.cholesky(self.cov)
        w = torch.linalg.solve_triangular(chol, (x.reshape(x.shape[0], DIM).double() - self.mean).T, upper=False).T
        return float(w.mean(0).abs().max()), torch.cov(w.T)


def radius(r: float) -> PixelRadius:
    return PixelRadius(floor=r, gain=0.0)  # r_k = r whatever sigma


def check_exact(prob: Problem, x: torch.Tensor) -> None:
    mean_err, cov = prob.whitened(x)
    tol = 4.0 / math.sqrt(N_DRAWS)
    assert mean_err < tol, f"whitened mean {mean_err:.3f} >= {tol:.3f}"
    eig = torch.linalg.eigvalsh(cov)
    assert 0.85 < float(eig.min()) and float(eig.max()) < 1.15, f"whitened covariance eigenvalues {eig.tolist()}"


def test_cg_matches_a_dense_solve_per_batch_element() -> None:
    g = torch.Generator().manual_seed(1)
    mats = []
    for k in range(3):
        q = torch.randn(20, 20, generator=g, dtype=torch.float64)
        mats.append(q @ q.T + (k + 1) * torch.eye(20, dtype=torch.float64))
    m = torch.stack(mats)
    b = torch.randn(3, 20, generator=g, dtype=torch.float64)
    b[2] = 0.0  # a zero right-hand side stays exactly zero (no 0/0)
    x, info = conjugate_gradient(lambda v: torch.einsum("bij,bj->bi", m, v), b, max_iter=200, rtol=1e-10)
    ref = torch.linalg.solve(m, b.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(x, ref, rtol=1e-7, atol=1e-9)
    assert bool(info.converged.all()) and float(x[2].abs().max()) == 0.0


def test_cg_complex_hermitian_system() -> None:
    g = torch.Generator().manual_seed(2)
    q = torch.randn(2, 10, 10, generator=g, dtype=torch.complex128)
    m = q @ q.conj().transpose(-1, -2) + torch.eye(10, dtype=torch.complex128)
    b = torch.randn(2, 10, generator=g, dtype=torch.complex128)
    x, _ = conjugate_gradient(lambda v: torch.einsum("bij,bj->bi", m, v), b, max_iter=100, rtol=1e-12)
    assert torch.allclose(x, torch.linalg.solve(m, b.unsqueeze(-1)).squeeze(-1), atol=1e-9)


def test_linear_gaussian_draws_are_exact() -> None:
    prob = Problem()
    step = LinearGaussianStep(prob.model(), radius(prob.r), perturb="both", cg_iters=100, cg_rtol=1e-8)
    check_exact(prob, step(prob.state(N_DRAWS)).x0)


def test_linear_gaussian_mean_variant_is_the_conditional_mean() -> None:
    prob = Problem(seed=3)
    step = LinearGaussianStep(prob.model(), radius(prob.r), perturb="none", cg_iters=100, cg_rtol=1e-8)
    x = step(prob.state(2)).x0
    assert torch.allclose(x.reshape(2, DIM).double(), prob.mean.expand(2, DIM), atol=1e-4)


def test_linear_gaussian_projection_onto_the_seen_pixels_is_the_exact_conditional() -> None:
    """An operator blind to some pixels (zero columns of A), whose values are known to be 0 (MRI: outside the coil
    maps' support): the projected draw is 0 there and, on the seen pixels, an exact draw of the conditional, which
    is the seen block of the unprojected one (the precision is block diagonal)."""
    prob = Problem(seed=5)
    blind = torch.zeros(DIM, dtype=torch.bool)
    blind[[1, 4, 7, 10]] = True
    prob.a[:, blind] = 0.0
    prec = prob.a.T @ prob.a / prob.s**2 + torch.eye(DIM, dtype=torch.float64) / prob.r**2
    prob.cov = torch.linalg.inv(prec)
    prob.mean = prob.cov @ (prob.a.T @ prob.y / prob.s**2 + prob.x_hat / prob.r**2)
    prob._a = prob.a.float()
    keep = (~blind).float().reshape(SHAPE)
    step = LinearGaussianStep(prob.model(), radius(prob.r), perturb="both", cg_iters=100, cg_rtol=1e-8,
                              project=lambda x: x * keep)
    x = step(prob.state(N_DRAWS)).x0.reshape(N_DRAWS, DIM)
    assert float(x[:, blind].abs().max()) == 0.0
    seen = ~blind
    cov, mean = prob.cov[seen][:, seen], prob.mean[seen]
    w = torch.linalg.solve_triangular(torch.linalg.cholesky(cov), (x[:, seen].double() - mean).T, upper=False).T
    assert float(w.mean(0).abs().max()) < 4.0 / math.sqrt(N_DRAWS)
    eig = torch.linalg.eigvalsh(torch.cov(w.T))
    assert 0.85 < float(eig.min()) and float(eig.max()) < 1.15, eig.tolist()
    # without the projection the blind pixels keep the prior's spread around x_hat
    free = LinearGaussianStep(prob.model(), radius(prob.r), perturb="both", cg_iters=100, cg_rtol=1e-8)
    x_free = free(prob.state(N_DRAWS)).x0.reshape(N_DRAWS, DIM)
    assert float(x_free[:, blind].std(0).mean()) == pytest.approx(prob.r, rel=0.1)


def test_linear_gaussian_temperature_scales_the_noise() -> None:
    prob = Problem(seed=4, s=0.3)
    hot = Problem(seed=4, s=0.6)  # same A, y, x_hat; twice the noise std
    step = LinearGaussianStep(prob.model(), radius(prob.r), perturb="both", temperature=2.0, cg_iters=100,
                              cg_rtol=1e-8)
    check_exact(hot, step(prob.state(N_DRAWS)).x0)


def test_pixel_gauss_newton_is_exact_for_linear_residuals() -> None:
    prob = Problem(seed=5)
    step = PixelGaussNewton(prob.residuals, radius(prob.r), perturb="both", gn_iters=10, final_iters=10,
                            cg_iters=100, cg_rtol=1e-8)
    check_exact(prob, step(prob.state(N_DRAWS)).x0)


def test_pixel_gauss_newton_mode_and_projection() -> None:
    prob = Problem(seed=6)
    mode = PixelGaussNewton(prob.residuals, radius(prob.r), perturb="none", gn_iters=10, final_iters=10,
                            cg_iters=100, cg_rtol=1e-8)
    x = mode(prob.state(1)).x0
    assert torch.allclose(x.reshape(DIM).double(), prob.mean, atol=1e-4)
    proj = PixelGaussNewton(prob.residuals, radius(prob.r), perturb="both", project=lambda v: v.clamp(min=0))
    assert float(proj(prob.state(5)).x0.min()) >= 0.0


def test_pixel_langevin_samples_the_gaussian_conditional() -> None:
    prob = Problem(seed=8, s=1.0, r=0.5)  # well conditioned: the stability-bound step mixes in a few hundred steps
    lik = prob.model().log_likelihood
    step = PixelLangevin(lik, radius(prob.r), steps=400, step_fraction=0.1, power_iters=20)
    x = step(prob.state(N_DRAWS)).x0
    mean_err, cov = prob.whitened(x)
    assert mean_err < 0.15
    eig = torch.linalg.eigvalsh(cov)
    assert 0.8 < float(eig.min()) and float(eig.max()) < 1.25, eig.tolist()  # O(lr) discretisation bias


def test_decoder_gain_of_a_scaled_upsampler() -> None:
    def decode(z: torch.Tensor) -> torch.Tensor:
        return 0.03 * torch.repeat_interleave(torch.repeat_interleave(z, 4, -1), 4, -2)

    gens, _ = make_generators(0, 2, "cpu")
    noise = PerSampleNoise(gens, (3, 1, 4, 4), "cpu", torch.float32)
    z = torch.randn(2, 3, 1, 4, 4)
    assert decoder_gain(decode, z, decode(z), noise).tolist() == pytest.approx([0.03, 0.03], rel=1e-4)
    assert PixelRadius(floor=0.04, gain=0.03)(2.0, z, decode(z), decode, noise).tolist() == pytest.approx(
        [0.0721110255] * 2)


def test_decoder_gain_and_radius_are_per_sample() -> None:
    """A decoder whose gain depends on the latent (x = z^3 / 3: gain z^2 at small steps): each sample's gain is its
    own, whatever else is in the batch (a batch-averaged gain coupled the samples of one DAPS call)."""
    def decode(z: torch.Tensor) -> torch.Tensor:
        return z**3 / 3

    z = torch.stack([torch.full((3, 1, 4, 4), 0.5), torch.full((3, 1, 4, 4), 2.0)])
    gens, _ = make_generators(0, 2, "cpu")
    both = decoder_gain(decode, z, decode(z), PerSampleNoise(gens, (3, 1, 4, 4), "cpu", torch.float32), delta=1e-3)
    assert both.tolist() == pytest.approx([0.25, 4.0], rel=1e-2)
    gens, _ = make_generators(0, 1, "cpu")  # sample 0 alone, same stream: the same gain
    alone = decoder_gain(decode, z[:1], decode(z[:1]), PerSampleNoise(gens, (3, 1, 4, 4), "cpu", torch.float32),
                         delta=1e-3)
    assert alone.tolist() == pytest.approx([float(both[0])], rel=1e-6)
    radius = PixelRadius()(2.0, z, decode(z), decode, PerSampleNoise(make_generators(0, 2, "cpu")[0], (3, 1, 4, 4),
                                                                      "cpu", torch.float32))
    assert radius.tolist() == pytest.approx([0.5, 8.0], rel=2e-2)  # g * sigma per sample (floor 0)


def test_make_step_names_what_is_missing() -> None:
    prob = Problem()
    with pytest.raises(ValueError, match="linear-gaussian.*not one"):
        make_step(DAPSConfig(data_step="linear-gaussian"), None, log_likelihood=prob.model().log_likelihood)
    with pytest.raises(ValueError, match="gauss-newton.*least-squares"):
        make_step(DAPSConfig(data_step="pixel"), None, log_likelihood=prob.model().log_likelihood)
    assert isinstance(make_step(DAPSConfig(data_step="pixel", pixel_kernel="langevin"), None,
                                log_likelihood=prob.model().log_likelihood), PixelLangevin)
    with pytest.raises(ValueError, match="data_step must be one of"):
        DAPSConfig(data_step="pixels")


def test_daps_returns_the_pixel_space_sample_not_a_round_trip() -> None:
    """A lossy 'VAE' (2x average pooling / nearest upsampling): the returned pixels are the data step's own
    output, which fits the data far better than decode(encode(x))."""
    g = torch.Generator().manual_seed(9)
    shape = (1, 1, 4, 4)
    a = torch.randn(12, 16, generator=g)
    truth = torch.randn(16, generator=g)
    y = a @ truth

    def forward(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], 16) @ a.T

    def adjoint(v: torch.Tensor) -> torch.Tensor:
        return (v @ a).reshape(v.shape[0], *shape)

    def decode(z: torch.Tensor) -> torch.Tensor:
        return torch.repeat_interleave(torch.repeat_interleave(z, 2, -1), 2, -2)

    def encode(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(x.flatten(0, 1), 2).reshape(x.shape[0], x.shape[1], 1, 2, 2)

    model = LinearGaussian(forward, adjoint, y, 0.01)
    step = LinearGaussianStep(model, PixelRadius(floor=1.0), decode, encode, perturb="none", cg_iters=100)
    cfg = DAPSConfig(annealing_steps=3, sigma_max=5.0, ode_steps=3)
    res = daps(lambda z, s: z * 0.0, step, (2, 1, 1, 2, 2), cfg, generator=0)
    assert res.pixels.shape == (2, 1, 1, 4, 4) and res.latent.shape == (2, 1, 1, 2, 2)
    fit = model.relative_misfit(res.pixels)
    round_trip = model.relative_misfit(decode(res.latent))
    assert bool((fit < 0.05).all()) and bool((round_trip > 5 * fit).all())


def test_gaussian_smoother_is_self_adjoint_and_keeps_white_noise_std() -> None:
    from common.sampling.consistency.pixel import gaussian_smoother

    b = gaussian_smoother(2.0)
    g = torch.Generator().manual_seed(10)
    u, v = torch.randn(2, 3, 1, 32, 32, generator=g), torch.randn(2, 3, 1, 32, 32, generator=g)
    assert float((b(u) * v).sum()) == pytest.approx(float((u * b(v)).sum()), rel=1e-5)
    w = torch.randn(64, 1, 1, 32, 32, generator=g)
    assert float(b(w).std()) == pytest.approx(1.0, rel=0.03)
    flat = b(torch.ones(1, 1, 1, 32, 32))
    assert float(flat.std() / flat.mean()) < 1e-5  # a constant stays constant (low-pass)


def test_pixel_gauss_newton_with_smooth_prior_is_exact_for_linear_residuals() -> None:
    """x = x_hat + B u, u ~ N(0, r^2 I): the conditional of x is Gaussian with prior covariance r^2 B B^T."""
    from common.sampling.consistency.pixel import gaussian_smoother

    prob = Problem(seed=11)
    b = gaussian_smoother(0.7)
    eye = torch.eye(DIM).reshape(DIM, *SHAPE)
    bmat = b(eye).reshape(DIM, DIM).double().T  # columns: B e_i
    prior_cov = prob.r**2 * bmat @ bmat.T
    prec = prob.a.T @ prob.a / prob.s**2 + torch.linalg.inv(prior_cov)
    prob.cov = torch.linalg.inv(prec)
    prob.mean = prob.cov @ (prob.a.T @ prob.y / prob.s**2 + torch.linalg.solve(prior_cov, prob.x_hat))
    step = PixelGaussNewton(prob.residuals, radius(prob.r), perturb="both", smooth=b, gn_iters=10, final_iters=10,
                            cg_iters=100, cg_rtol=1e-8)
    check_exact(prob, step(prob.state(N_DRAWS)).x0)


def test_progress_bar_shows_the_report_in_user_units(capsys) -> None:
    from common.sampling.progress import ProgressBar, SamplingEvent

    bar = ProgressBar(1)
    bar(SamplingEvent(0, 1, None, 0.5, 0.1, 3.98e9, {"chi2_cp": 1.234, "chi2_logca": 1.1}))
    text = str(bar.bar)
    bar.close()
    assert "chi2_cp=1.234" in text and "3.98e+09" not in text


def test_a_non_finite_solve_is_a_sampling_error_naming_the_step() -> None:
    from common.sampling import SamplingError

    prob = Problem(seed=12)
    model = prob.model()
    bad = LinearGaussian(lambda x: model.forward(x) * float("nan"), model.adjoint, model.y, model.noise_std)
    step = LinearGaussianStep(bad, radius(prob.r), perturb="none")
    with pytest.raises(SamplingError, match="linear-Gaussian solve at annealing step 0") as info:
        step(prob.state(2))
    assert info.value.anneal_step == 0 and info.value.source == "linear-Gaussian solve"

