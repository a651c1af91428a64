"""Metrics against scikit-image (the oracle the paper's and CMRxRecon's numbers come from)."""

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from common import metrics


def _pair(seed: int, shape=(3, 40, 36)):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[-2], : shape[-1]]
    base = 0.5 + 0.4 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    truth = np.clip(base + 0.05 * rng.standard_normal(shape), 0, 1)
    pred = np.clip(truth + 0.08 * rng.standard_normal(shape), 0, 1)
    return pred, truth


def test_psnr_matches_skimage():
    pred, truth = _pair(0)
    ours = metrics.psnr(torch.from_numpy(pred), torch.from_numpy(truth))
    ref = [peak_signal_noise_ratio(truth[i], pred[i], data_range=1.0) for i in range(len(truth))]
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-10)


@pytest.mark.parametrize(
    "kwargs, sk_kwargs",
    [
        ({}, dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)),
        (dict(window="uniform", win_size=7, use_sample_covariance=True), {}),
        (dict(window="uniform", win_size=7, use_sample_covariance=False), dict(use_sample_covariance=False)),
    ],
)
def test_ssim_matches_skimage(kwargs, sk_kwargs):
    pred, truth = _pair(1)
    ours = metrics.ssim(torch.from_numpy(pred).float(), torch.from_numpy(truth).float(), data_range=1.0, **kwargs)
    ref = [structural_similarity(truth[i], pred[i], data_range=1.0, **sk_kwargs) for i in range(len(truth))]
    assert ours.shape == (3,)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-6)


def test_ssim_keeps_leading_axes_and_rejects_bad_input():
    x = torch.rand(2, 4, 16, 16)
    assert metrics.ssim(x, x).shape == (2, 4)
    torch.testing.assert_close(metrics.ssim(x, x), torch.ones(2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.ssim(x, x[:, :3])
    with pytest.raises(ValueError, match="smaller than"):
        metrics.ssim(torch.rand(8, 8), torch.rand(8, 8))
    with pytest.raises(ValueError, match="taps"):
        metrics.ssim(x, x, win_size=7)


def test_dpsnr_dssim_are_metrics_of_frame_differences():
    pred, truth = _pair(2, shape=(5, 32, 32))
    d_pred, d_truth = np.diff(pred, axis=0), np.diff(truth, axis=0)
    ref_p = np.mean([peak_signal_noise_ratio(d_truth[i], d_pred[i], data_range=1.0) for i in range(4)])
    ref_s = np.mean(
        [
            structural_similarity(d_truth[i], d_pred[i], data_range=1.0, gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False)
            for i in range(4)
        ]
    )
    p, t = torch.from_numpy(pred)[None], torch.from_numpy(truth)[None]
    np.testing.assert_allclose(metrics.dpsnr(p, t).numpy(), [ref_p], rtol=1e-10)
    np.testing.assert_allclose(metrics.dssim(p, t).numpy(), [ref_s], atol=1e-6)


def test_nmse_chi2_tilde_and_misfit():
    t = torch.tensor([[[3.0, 4.0]]])
    p = torch.tensor([[[3.0, 3.0]]])
    torch.testing.assert_close(metrics.nmse(p, t), torch.tensor([1.0 / 25.0], dtype=torch.float64))
    torch.testing.assert_close(
        metrics.chi2_tilde(torch.tensor([0.5, 1.0, 2.0])), torch.tensor([2.0, 1.0, 2.0], dtype=torch.float64)
    )
    with pytest.raises(ValueError):
        metrics.chi2_tilde(torch.tensor([0.0]))
    y = torch.zeros(2, 3, dtype=torch.complex64)
    ax = torch.tensor([[3j, 4.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.complex64)
    torch.testing.assert_close(metrics.data_misfit(ax, y), torch.tensor([5.0, 1.0]))


def _moving_blob(frames: int = 6, n: int = 32, seed: int = 0) -> np.ndarray:
    """A Gaussian hot spot moving 2 px per frame over a textured static background, ``[T, n, n]``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n]
    background = 0.2 + 0.1 * rng.random((n, n))
    return np.stack([background + np.exp(-((xx - 8 - 2 * t) ** 2 + (yy - 14) ** 2) / 8.0) for t in range(frames)])


@pytest.mark.parametrize("sigma", [0.0, 1.0, 4.0, 20.0])
def test_gaussian_blur_matches_scipy(sigma):
    from scipy.ndimage import gaussian_filter

    x = np.random.default_rng(3).random((2, 3, 17, 21))
    ours = metrics.gaussian_blur(torch.from_numpy(x), sigma).numpy()
    np.testing.assert_allclose(ours, gaussian_filter(x, sigma=(0, 0, sigma, sigma)), atol=1e-12)
    with pytest.raises(ValueError, match="sigma_px"):
        metrics.gaussian_blur(torch.from_numpy(x), -1.0)


def test_msnr_against_scipy_oracle_and_its_anchors():
    from scipy.ndimage import gaussian_filter

    truth = _moving_blob()
    rng = np.random.default_rng(1)
    t = torch.from_numpy(truth)

    def oracle(pred, blur):
        def d(v):  # blur each frame, then difference (the definition; msnr differences first)
            b = gaussian_filter(v, sigma=(0, blur, blur))
            return b[1:] - b[:-1]

        return -20 * np.log10(np.linalg.norm(d(pred) - d(truth)) / np.linalg.norm(d(truth)))

    noisy = truth + 0.05 * rng.standard_normal(truth.shape)
    for blur in (1.0, 4.0):
        assert float(metrics.msnr(torch.from_numpy(noisy), t, blur)) == pytest.approx(oracle(noisy, blur), abs=1e-9)
    # a static movie scores exactly 0 dB whatever its frames (time average, first frame, noise)
    static = np.stack([truth.mean(0)] * len(truth))
    frozen = np.stack([rng.random(truth.shape[1:])] * len(truth))
    scores = metrics.msnr(torch.from_numpy(np.stack([static, frozen])), t.expand(2, *t.shape), 4.0)
    assert scores.shape == (2,) and scores.tolist() == [0.0, 0.0]
    # the truth: +inf; right motion on a wrong static background: as good; added white noise: lower, more noise lower
    assert float(metrics.msnr(t, t, 4.0)) == float("inf")
    shifted = truth + 0.5 * rng.random(truth.shape[1:])
    assert float(metrics.msnr(torch.from_numpy(shifted), t, 4.0)) > 100
    assert 0 < float(metrics.msnr(torch.from_numpy(noisy), t, 4.0)) < 100
    noisier = truth + 0.2 * rng.standard_normal(truth.shape)
    assert float(metrics.msnr(torch.from_numpy(noisier), t, 4.0)) < float(metrics.msnr(torch.from_numpy(noisy), t, 4.0))
    # d-PSNR, in contrast, rewards the static movie over a noisy but moving one
    assert float(metrics.dpsnr(torch.from_numpy(static), t)) > float(metrics.dpsnr(torch.from_numpy(noisier), t))
    # a static target leaves it undefined
    assert np.isnan(float(metrics.msnr(torch.from_numpy(static), torch.from_numpy(static), 4.0)))
