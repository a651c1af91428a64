"""SVI, VISION-XL and TCVR do what their papers say (tiny random networks, closed-form checks where they exist)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from common.methods import METHODS
from common.methods.data_term import DataFit, fit_data, gauss_newton_fit, least_squares_cg
from common.methods.ddim import ddim_step, renoise, sampling_grid, shared_frame_noise, tweedie
from common.methods.flow import non_occlusion, tvl1_flows, warp
from common.methods.svi import SVIConfig, sample_svi
from common.methods.tcvr import SeedVideo, TCVRConfig, fit_seeds, frames_of
from common.methods.vision_xl import VisionXLConfig, gaussian_lowpass, inversion_start
from common.nets.config import UNetConfig, VAEConfig
from common.nets.unet import VideoUNet
from common.nets.vae import FrameVAE
from common.recon.errors import DemoError
from common.recon.prior_set import Priors
from common.recon.task import ReconTask
from common.sampling import image_mode
from common.sampling.consistency import LinearGaussian

pytestmark = pytest.mark.usefixtures("one_torch_thread")
T, C, H = 3, 1, 16


def tiny_priors(latent: bool, seed: int = 0) -> Priors:
    """Untrained priors with small random output layers: pixel space (``latent=False``) or a 2x VAE."""
    torch.manual_seed(seed)
    vae = FrameVAE(VAEConfig(in_channels=C, latent_channels=1, channels=(8, 8), mid_attention=False)) if latent \
        else None
    size = H // 2 if latent else H
    cfg = UNetConfig(in_channels=1, image_size=size, channels=(8, 8), attn_levels=(), temporal_attn_levels=(),
                     temporal=False)
    image, video = VideoUNet(cfg), VideoUNet(dataclasses.replace(cfg, temporal=True))
    with torch.no_grad():
        for net in (image, video):
            for p in net.parameters():
                if p.ndim > 1 and not bool(p.any()):
                    p.normal_(0.0, 0.02)
    for net in (vae, image, video):
        if net is not None:
            net.eval().requires_grad_(False)
    return Priors(vae=vae, image=image, video=video, paths={"image": "tiny", "video": "tiny", "vae": "tiny"})


def dense_model(seed: int = 0, m: int = 20, noise: float = 0.1, hw: int = H) -> tuple[LinearGaussian, torch.Tensor]:
    """A dense random linear-Gaussian model on videos ``[B, T, C, hw, hw]`` and its matrix ``[m, n]``."""
    g = torch.Generator().manual_seed(seed)
    n = T * C * hw * hw
    mat = torch.randn(m, n, generator=g, dtype=torch.float64) / math.sqrt(n)
    y = torch.randn(m, generator=g, dtype=torch.float64)
    fwd = lambda x: x.flatten(1).double() @ mat.T  # noqa: E731
    adj = lambda r: (r @ mat).reshape(-1, T, C, hw, hw).float()  # noqa: E731
    return LinearGaussian(forward=fwd, adjoint=adj, y=y, noise_std=noise), mat


def toy_task(linear: LinearGaussian | None = None, residuals=None, project=None) -> ReconTask:
    return ReconTask(name="toy", frames=T, image_shape=(C, H, H), log_likelihood=lambda x: -x.flatten(1).sum(1),
                     to_physical=lambda x: x[:, :, 0].numpy(), data_fit=lambda x: {}, metric_images=np.abs, units="",
                     coords={}, linear=linear, residuals=residuals, project=project)


# --- data step (SVI Eq. 18 / VISION-XL Eq. 5) ------------------------------------------------------------------


def test_cg_step_is_the_krylov_least_squares_solution_and_reaches_the_dense_solve():
    """l CG steps from x0 = argmin ||y - A x|| over x0 + K_l(A^T A, A^T (y - A x0)) (dense check), and with enough
    steps the dense least-squares solution of the consistent normal equations."""
    model, mat = dense_model(m=100, hw=4)  # overdetermined: n = 48 unknowns, unique least-squares solution
    a = mat.double()
    x0 = torch.randn(1, T, C, 4, 4, generator=torch.Generator().manual_seed(3)) * 0.1
    x0v = x0.flatten().double()
    r0 = a.T @ (model.y - a @ x0v)
    for l in (1, 3, 6):
        basis = torch.stack([torch.linalg.matrix_power(a.T @ a, j) @ r0 for j in range(l)], 1)
        coef = torch.linalg.lstsq(a @ basis, model.y - a @ x0v).solution
        want = x0v + basis @ coef
        got = least_squares_cg(model, x0, l).flatten().double()
        torch.testing.assert_close(got, want, rtol=2e-4, atol=2e-5)
    dense = torch.linalg.lstsq(a, model.y).solution
    torch.testing.assert_close(least_squares_cg(model, x0, 200).flatten().double(), dense, rtol=1e-4, atol=1e-4)


def test_gauss_newton_data_step_reaches_the_least_squares_solution_for_linear_residuals():
    model, mat = dense_model(m=100, hw=4)
    rho = lambda x: (model.forward(x) - model.y) / model.noise_std  # noqa: E731
    x0 = torch.zeros(1, T, C, 4, 4)
    got = gauss_newton_fit(rho, x0, iters=15, cg_iters=100, radius=10.0).flatten().double()
    torch.testing.assert_close(got, torch.linalg.lstsq(mat, model.y).solution, rtol=1e-3, atol=1e-3)
    # the projection is part of the map: the result satisfies it
    pos = gauss_newton_fit(rho, x0, iters=3, cg_iters=30, radius=1.0, project=lambda v: v.clamp(min=0))
    assert (pos >= 0).all()


def test_fit_data_needs_a_data_model():
    with pytest.raises(DemoError, match="linear-Gaussian model .* or whitened residuals"):
        fit_data(toy_task(), torch.zeros(1, T, C, H, H), DataFit())


# --- DDIM in EDM variables -------------------------------------------------------------------------------------


def test_tweedie_and_ddim_step_with_a_gaussian_prior():
    """Prior N(0, s^2 I): D(z, sigma) = s^2 z / (s^2 + sigma^2) in closed form; DDIM's z' = x0 + sigma' eps."""
    s2 = 0.7
    den = lambda z, sig: s2 * z / (s2 + sig.reshape(-1, 1, 1, 1, 1) ** 2)  # noqa: E731
    z = torch.randn(2, T, C, 4, 4, dtype=torch.float64)
    x0, eps = tweedie(den, z, 2.0)
    torch.testing.assert_close(x0, s2 * z / (s2 + 4.0))
    torch.testing.assert_close(eps, (z - x0) / 2.0)
    torch.testing.assert_close(ddim_step(den, z, 2.0, 0.5), x0 + 0.5 * eps)
    e = torch.randn_like(z)
    torch.testing.assert_close(renoise(x0, eps, 0.5, 0.15, e), x0 + 0.5 * (0.15 * e + math.sqrt(1 - 0.15**2) * eps))
    torch.testing.assert_close(renoise(x0, eps, 0.0, 0.15, e), x0)
    assert sampling_grid(20, 80.0, 0.002)[-1] == 0.0 and len(sampling_grid(20, 80.0, 0.002)) == 21


def test_shared_frame_noise_is_one_image_per_sample():
    e = shared_frame_noise((2, 5, 1, 4, 4), torch.Generator().manual_seed(0), torch.device("cpu"), torch.float32)
    assert torch.equal(e, e[:, :1].expand_as(e)) and not torch.equal(e[0], e[1])


# --- SVI ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("latent", [False, True])
def test_svi_noise_is_shared_across_frames(latent: bool):
    """Without a data step nothing distinguishes the frames: with batch-consistent start and re-noising and a
    per-frame denoiser, every frame of an SVI sample is the same image. The data step then makes them differ."""
    priors = tiny_priors(latent)
    model, _ = dense_model()
    task = toy_task(linear=model)
    cfg = SVIConfig(steps=4, fit=DataFit(iters=0))
    x = sample_svi(task, priors, cfg, 2, seed=1)
    assert x.shape == (2, T, C, H, H)
    torch.testing.assert_close(x, x[:, :1].expand_as(x), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(x[0], x[1])
    y = sample_svi(task, priors, dataclasses.replace(cfg, fit=DataFit(iters=3)), 1, seed=1)
    assert not torch.allclose(y[0, 0], y[0, 1])
    torch.testing.assert_close(sample_svi(task, priors, cfg, 1, seed=2), x[1:])  # sample k from seed + k


def test_svi_samples_fit_the_data_better_than_the_prior():
    priors = tiny_priors(False)
    model, _ = dense_model()
    task = toy_task(linear=model)
    free = sample_svi(task, priors, SVIConfig(steps=3, fit=DataFit(iters=0)), 1, seed=0)
    fitted = sample_svi(task, priors, SVIConfig(steps=3, fit=DataFit(iters=5)), 1, seed=0)
    assert model.log_likelihood(fitted) > model.log_likelihood(free)


# --- VISION-XL ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("latent", [False, True])
def test_vision_xl_inversion_start_is_identical_across_frames(latent: bool):
    priors = tiny_priors(latent)
    model, _ = dense_model()
    task = toy_task(linear=model)
    cfg = VisionXLConfig(steps=3, fit=DataFit(iters=2))
    z = inversion_start(task, priors, cfg, torch.Generator().manual_seed(0))
    f = 2 if latent else 1
    assert z.shape == (1, T, 1, H // f, H // f)
    assert torch.equal(z, z[:, :1].expand_as(z))
    # it is the DDIM inversion of frame 0 of the data step applied to the prior's mean guess
    den = image_mode(priors.image)
    g = torch.Generator().manual_seed(0)
    start = cfg.sigma_max * shared_frame_noise((1, T, 1, H // f, H // f), g, torch.device("cpu"), torch.float32)
    frame = fit_data(task, priors.decode(tweedie(den, start, cfg.sigma_max)[0]), cfg.fit)[:, :1]
    zz = priors.encode(frame)
    up = sampling_grid(cfg.steps + 1, cfg.start_sigma, cfg.sigma_min)[:-1][::-1]
    assert up[-1] == pytest.approx(cfg.start_sigma) and len(up) == cfg.steps + 1
    for s, s_next in zip(up[:-1], up[1:], strict=True):
        zz = ddim_step(den, zz, s, s_next)
    torch.testing.assert_close(z[:, :1], zz)


def test_lowpass_is_a_unit_gain_gaussian():
    from scipy.ndimage import gaussian_filter

    x = torch.rand(1, 2, 1, 32, 32, dtype=torch.float64)
    got = gaussian_lowpass(x, 1.5)
    want = gaussian_filter(x.numpy(), sigma=(0, 0, 0, 1.5, 1.5), mode="wrap", truncate=8.0)
    np.testing.assert_allclose(got.numpy(), want, atol=2e-4)
    torch.testing.assert_close(got.mean(), x.mean())
    assert torch.equal(gaussian_lowpass(x, 0.0), x)


# --- TCVR --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("latent", [False, True])
def test_tcvr_frames_are_decoded_reverse_process_of_the_seeds(latent: bool):
    """x_n = D(R(sigma_max (z_shared + r_n))), R = ``steps`` deterministic DDIM steps of the image prior."""
    priors = tiny_priors(latent)
    cfg = TCVRConfig(steps=3)
    f = 2 if latent else 1
    video = SeedVideo(T, (1, H // f, H // f), 2, torch.Generator().manual_seed(0), torch.float32,
                      torch.device("cpu"))
    with torch.no_grad():
        video.B.normal_(0.0, 0.1)
    z = video.z_shared[None, None] + video.A @ video.B  # [1, T, C', h, w]
    den = image_mode(priors.image)
    grid = sampling_grid(cfg.steps, cfg.sigma_max, cfg.sigma_min)
    state = cfg.sigma_max * z
    for s, s_next in zip(grid[:-1], grid[1:], strict=True):
        x0 = den(state, state.new_full((1,), s))
        state = x0 + s_next * (state - x0) / s
    with torch.no_grad():
        torch.testing.assert_close(frames_of(toy_task(), priors, video, cfg), priors.decode(state))


def test_tcvr_residuals_stay_low_rank_and_inside_the_ball():
    priors = tiny_priors(False)
    model, _ = dense_model()
    cfg = TCVRConfig(iters=4, steps=2, rank=2, radius=0.01, lr_residual=0.5, lr_shared=0.1, warp_start=2,
                     flow_every=1)
    x, video = fit_seeds(toy_task(linear=model), priors, cfg, torch.Generator().manual_seed(0))
    r = video.residuals().detach()
    bound = cfg.radius * math.sqrt(C * H * H)
    assert (r.flatten(1).norm(dim=1) <= bound * (1 + 1e-5)).all()
    assert r.abs().max() > 0  # the residuals moved (large learning rate), then were projected
    assert all(int(torch.linalg.matrix_rank(r[n, c])) <= cfg.rank for n in range(T) for c in range(C))
    assert x.shape == (1, T, C, H, H) and torch.isfinite(x).all()


def test_tcvr_projection_is_eq13():
    video = SeedVideo(2, (1, 4, 4), 2, torch.Generator().manual_seed(0), torch.float64, torch.device("cpu"))
    with torch.no_grad():
        video.B.normal_()
        video.B[1] *= 1e-3  # frame 1 inside the ball: untouched
    before = video.residuals().detach().clone()
    bound = float(before[0].norm()) / 4
    video.project(bound)
    after = video.residuals().detach()
    torch.testing.assert_close(after[0], before[0] / 4)
    torch.testing.assert_close(after[1], before[1])


# --- optical flow ------------------------------------------------------------------------------------------------


def test_warp_and_tvl1_flow_recover_a_shift():
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    blob = lambda cx: torch.exp(-((yy - 16) ** 2 + (xx - cx) ** 2) / 20.0)  # noqa: E731
    frames = torch.stack([blob(14.0), blob(16.0)])[:, None]  # x_1 = x_0 moved 2 px right
    fwd, bwd = tvl1_flows(frames)
    centre = (slice(None), slice(None), slice(12, 20), slice(10, 20))
    assert fwd[centre][:, 1].mean() == pytest.approx(2.0, abs=0.4)
    assert bwd[centre][:, 1].mean() == pytest.approx(-2.0, abs=0.4)
    torch.testing.assert_close(warp(frames[1:], fwd)[..., 8:24, 8:24], frames[:1, ..., 8:24, 8:24], atol=0.05,
                               rtol=0)
    shift = torch.zeros(1, 2, 32, 32)
    shift[:, 1] = 3.0  # integer flow: warping is a shift
    torch.testing.assert_close(warp(frames[1:], shift)[..., :20], frames[1:, ..., 3:23])
    assert non_occlusion(shift, -shift).min() == 1.0
    assert non_occlusion(shift, shift).max() == 0.0


# --- registry and settings ----------------------------------------------------------------------------------------


def test_registry_and_paper_presets():
    assert list(METHODS) == ["STeP", "IDM+BCS", "IDM", "SVI", "VISION-XL", "TCVR"]
    svi = METHODS["SVI"].presets("paper", "mri")
    assert (svi.steps, svi.eta, svi.fit.iters) == (20, 0.15, 5)  # seed 001 Sec. 4: l = 5, eta = 0.15, 20 NFE
    vxl = METHODS["VISION-XL"].presets("paper", "blackhole")
    assert (vxl.lam, vxl.fit.iters, vxl.steps) == (2.0, 10, 8)  # seed 002 Sec. 4.1: lambda = 2, l = 10, 0.3 x 25
    tcvr = METHODS["TCVR"].presets("paper", "mri")
    assert (tcvr.steps, tcvr.lr_residual, tcvr.radius) == (4, 1e-3, 1.0)  # seed 004 Sec. 3.3, Table 8
    assert all(METHODS[m].uses_daps for m in ("STeP", "IDM+BCS", "IDM"))
    with pytest.raises(ValueError, match="setting"):
        METHODS["SVI"].presets("best", "mri")
    with pytest.raises(ValueError, match="domain"):
        METHODS["TCVR"].presets("default", "mri_cine")
    # the paper's settings are the same on both domains; TCVR's default learning rates are per domain
    for name in ("SVI", "VISION-XL", "TCVR"):
        assert METHODS[name].presets("paper", "mri") == METHODS[name].presets("paper", "blackhole")
    bh, mri = METHODS["TCVR"].presets("default", "blackhole"), METHODS["TCVR"].presets("default", "mri")
    assert (bh.lr_shared, bh.lr_residual, mri.lr_shared, mri.lr_residual) == (0.3, 0.1, 0.1, 0.03)
    with pytest.raises(ValueError, match="eta"):
        SVIConfig(eta=1.5)
