import numpy as np
import pytest
import torch

from cardiac_mri import GaussianLikelihood, SenseOperator
from cardiac_mri.masks import equispaced_mask
from cardiac_mri.sense import complex_to_channels


def _problem(dtype=torch.complex128, seed=0, t=4, h=8, w=10):
    gen = torch.Generator().manual_seed(seed)
    maps = torch.randn(3, h, w, dtype=dtype, generator=gen)
    op = SenseOperator(maps, equispaced_mask(h, w, 2, 2))
    x_true = torch.randn(1, t, h, w, dtype=dtype, generator=gen)
    return op, op(x_true)[0], gen


def test_value_matches_numpy():
    op, y, gen = _problem()
    lik = GaussianLikelihood(op, y, tau=0.1, scale=2.0)
    x = torch.randn(2, 4, 8, 10, dtype=torch.complex128, generator=gen)
    maps, mask = op.maps.numpy(), op.mask.numpy()
    for b in range(2):
        img = 2.0 * x[b].numpy()[:, None] * maps
        k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(img, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
        ref = -np.sum(np.abs(mask * k - y.numpy()) ** 2) / 0.1**2
        assert float(lik(x)[b]) == pytest.approx(ref, rel=1e-10)
    # real channels and complex input give the same value
    assert torch.allclose(lik(complex_to_channels(x)), lik(x))


def test_gradient_matches_finite_differences():
    op, y, gen = _problem(t=2, h=6, w=5)
    lik = GaussianLikelihood(op, y, tau=0.3, scale=0.7)
    x = torch.randn(1, 2, 2, 6, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: lik(z), (x,), eps=1e-6, atol=1e-5, rtol=1e-4)
    # and the closed form: grad = -(2 scale / tau^2) A^H (A(scale x) - y) as real channels
    g = torch.autograd.grad(lik(x).sum(), x)[0]
    closed = complex_to_channels(-(2 * 0.7 / 0.3**2) * op.adjoint(lik.residual(x.detach())))
    assert torch.allclose(g, closed, atol=1e-8)


def test_unnormalized_fft_reproduces_reference_convention():
    """Reference: -||M fft2(x) - y_ref||^2 / tau^2 with the unnormalised FFT."""
    gen = torch.Generator().manual_seed(5)
    mask = equispaced_mask(12, 12, 3, 4)
    op = SenseOperator.single_coil(mask, dtype=torch.complex128)
    x_ref = torch.randn(1, 2, 12, 12, dtype=torch.complex128, generator=gen)
    x = torch.randn(1, 2, 12, 12, dtype=torch.complex128, generator=gen)
    y_ref = mask.numpy() * np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x_ref.numpy(), axes=(-2, -1))), axes=(-2, -1))
    lik = GaussianLikelihood(op, torch.from_numpy(y_ref / 12)[0][:, None], tau=0.1, unnormalized_fft=True)
    k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x.numpy(), axes=(-2, -1))), axes=(-2, -1))
    ref = -np.sum(np.abs(mask.numpy() * k - y_ref) ** 2) / 0.01
    assert float(lik(x)[0]) == pytest.approx(ref, rel=1e-10)


def test_errors_and_device_dtype():
    op, y, _ = _problem(torch.complex64)
    with pytest.raises(ValueError, match="tau"):
        GaussianLikelihood(op, y, tau=0.0)
    with pytest.raises(ValueError, match="operator expects"):
        GaussianLikelihood(op, y[:, :2])
    lik = GaussianLikelihood(op, y).to(torch.float64)
    assert lik.y.dtype == torch.complex128 and lik.op.maps.dtype == torch.complex128
    assert torch.allclose(lik.y.to(torch.complex64), y)


def test_noise_estimate_from_the_kspace_edges():
    """Pure complex noise of std 0.02 (E|n|^2) on the measured lines: the edge MAD estimator recovers it, and
    exactly-zero edges are refused."""
    from cardiac_mri.likelihood import estimate_noise_std

    gen = torch.Generator().manual_seed(3)
    mask = equispaced_mask(32, 32, 4, 6)
    n = torch.complex(torch.randn(6, 4, 32, 32, generator=gen), torch.randn(6, 4, 32, 32, generator=gen))
    y = mask * (0.02 / 2**0.5) * n
    y[..., 8:24] += 5.0  # strong signal in the centre of the readout is ignored
    assert estimate_noise_std(y, mask) == pytest.approx(0.02, rel=0.08)
    with pytest.raises(ValueError, match="exactly zero"):
        estimate_noise_std(torch.zeros(6, 4, 32, 32, dtype=torch.complex64), mask)


def test_linear_gaussian_model_adjoint_and_likelihood():
    """The real-channel SENSE model of the linear-Gaussian step: dot-product adjoint test for the real inner
    product, and log p = -||A x - y||^2 / sigma^2 (complex noise std sigma)."""
    from cardiac_mri.likelihood import linear_gaussian_model

    op, y, gen = _problem(dtype=torch.complex64)
    lik = GaussianLikelihood(op, y, tau=0.1, scale=1.0)
    model = linear_gaussian_model(lik, noise_std=0.05)
    x = torch.randn(2, 4, 2, 8, 10, generator=gen)
    v = torch.complex(torch.randn(2, 4, 3, 8, 10, generator=gen), torch.randn(2, 4, 3, 8, 10, generator=gen))
    lhs = float((model.forward(x).conj() * v).real.sum())
    rhs = float((x * model.adjoint(v)).sum())
    assert lhs == pytest.approx(rhs, rel=1e-4)
    assert torch.allclose(model.log_likelihood(x), lik(x) * 0.1**2 / 0.05**2, rtol=1e-4)
    gram = model.adjoint(model.forward(x))  # the CG solves use model.normal (A^H A without the k-space array)
    assert torch.allclose(model.normal(x), gram, rtol=0, atol=1e-5 * float(gram.abs().max()))


def test_full_resolution_noise_matches_the_noise_on_the_model_grid():
    """Pure noise k-space at full resolution (ky 48 x kx 96), moved to a 32 x 32 grid as the STeP path does: the
    full-resolution estimate scaled by size / side equals the noise std actually found on the grid."""
    from cardiac_mri.images import to_model_grid
    from cardiac_mri.sense import fft2c, ifft2c
    from cardiac_mri.step import full_resolution_noise

    gen = torch.Generator().manual_seed(4)
    k = 0.03 / 2**0.5 * torch.complex(torch.randn(4, 3, 48, 96, generator=gen), torch.randn(4, 3, 48, 96,
                                                                                           generator=gen))
    mask = torch.ones(48, 96)
    grid_k = fft2c(to_model_grid(ifft2c(k), 32))
    on_grid = float(grid_k.abs().pow(2).mean().sqrt())
    assert full_resolution_noise(k, mask, 32) == pytest.approx(on_grid, rel=0.05)
    assert on_grid == pytest.approx(0.03 * 32 / 48, rel=0.05)


def test_single_coil_solve_needs_at_most_two_cg_iterations() -> None:
    """Single coil (A = mask x unitary FFT): A^H A / s^2 + I / r^2 has two distinct eigenvalues, so CG is exact in
    two iterations; this is why the linear-Gaussian step needs no separate closed form for diagonal operators."""
    from cardiac_mri.sense import channels_to_complex
    from common.sampling.cg import conjugate_gradient
    from common.sampling.consistency import LinearGaussian

    op = SenseOperator.single_coil(equispaced_mask(16, 16, 4, 4))
    g = torch.Generator().manual_seed(13)
    y = torch.complex(torch.randn(3, 1, 16, 16, generator=g), torch.randn(3, 1, 16, 16, generator=g)) * op.mask
    model = LinearGaussian(lambda x: op(channels_to_complex(x)),
                           lambda v: complex_to_channels(op.adjoint(v)), y, 0.1)
    w_y, w_x = 1 / 0.1**2, 1 / 0.5**2
    rhs = w_y * model.adjoint(y[None]) + w_x * torch.randn(1, 3, 2, 16, 16, generator=g)
    _, info = conjugate_gradient(lambda v: w_y * model.adjoint(model.forward(v)) + w_x * v, rhs, max_iter=50,
                                 rtol=1e-5)
    assert info.iterations <= 2 and bool(info.converged.all())


def test_model_error_ratio_sees_the_coil_map_error_and_not_the_noise():
    """Data made by the model itself plus thermal noise: ratio ~1. Data made with other coil maps: the ratio is the
    truth's own misfit over the thermal noise (a parametric bootstrap of the same CG fit, no truth needed)."""
    from cardiac_mri.likelihood import model_error_ratio

    op, _, gen = _problem(dtype=torch.complex64, seed=5, t=6, h=16, w=16)
    x = torch.randn(1, 6, 16, 16, dtype=torch.complex64, generator=gen)
    s = 0.05
    measured = op.mask.expand(6, 3, 16, 16) > 0
    noise = torch.complex(torch.randn(6, 3, 16, 16, generator=gen), torch.randn(6, 3, 16, 16, generator=gen))
    noise = noise * (s / 2**0.5) * measured
    assert model_error_ratio(op, op(x)[0] + noise, s) < 1.1
    other = SenseOperator(op.maps + 0.08 * torch.randn(3, 16, 16, dtype=torch.complex64, generator=gen), op.mask)
    y = other(x)[0] + noise
    truth = float(((op(x)[0] - y).abs() ** 2).sum() / measured.sum()) ** 0.5 / s
    assert truth > 1.5
    assert model_error_ratio(op, y, s) == pytest.approx(truth, rel=0.15)
    with pytest.raises(ValueError, match="noise_std > 0"):
        model_error_ratio(op, y, 0.0)


def test_mri_task_projects_onto_the_coil_maps_support():
    """Pixels no coil map sees do not change the data; the task's projection zeroes them (and only them), and every
    method's data step applies it (the image-prior methods' CG step here)."""
    from cardiac_mri.step import mri_task
    from common.methods.data_term import DataFit, fit_data

    op, y, gen = _problem(dtype=torch.complex64, seed=6, t=4, h=16, w=16)
    maps = op.maps.clone()
    maps[:, :3] = 0  # the first three rows: outside every coil's support
    op = SenseOperator(maps, op.mask)
    y = op(torch.randn(1, 4, 16, 16, dtype=torch.complex64, generator=gen))[0]
    y = y + 0.01 * torch.complex(torch.randn(y.shape, generator=gen), torch.randn(y.shape, generator=gen)) * (y != 0)
    assert op.support().tolist() == [[r >= 3] * 16 for r in range(16)]
    task = mri_task(GaussianLikelihood(op, y, tau=0.1, scale=1.0), 4, 16, noise_std=0.01)
    assert task.attrs["coil_support_fraction"] == pytest.approx(13 / 16)
    x = torch.randn(2, 4, 2, 16, 16, generator=gen)
    px = task.project(x)
    assert float(px[..., :3, :].abs().max()) == 0.0 and torch.equal(px[..., 3:, :], x[..., 3:, :])
    assert torch.allclose(task.linear.forward(px), task.linear.forward(x))
    fitted = fit_data(task, x, DataFit(iters=3))
    assert float(fitted[..., :3, :].abs().max()) == 0.0


def test_espirit_support_of_a_held_out_cine_holds_no_signal():
    """On the quality table's synthetic cine the ESPIRiT maps vanish on ~30 % of the grid, where the truth is 0:
    the support projection removes only what the data cannot see and the object does not have."""
    from cardiac_mri.demo import held_out_problem

    problem = held_out_problem(64, 100001)
    support = problem.likelihood(tau=0.1).op.support()
    assert 0.5 < float(support.double().mean()) < 0.9
    assert float(problem.target[..., ~support].abs().max()) == 0.0
