"""Image and video quality metrics (paper Sec. 4.1, Eq. 4), written in torch with scikit-image semantics.

Images are real tensors ``[..., H, W]``; videos ``[..., T, H, W]``. Every function reduces only the axes it names
and keeps the leading ones, so a batch of posterior samples ``[B, T, H, W]`` gives per-frame values ``[B, T]``
(``psnr``, ``ssim``) or per-video values ``[B]`` (``dpsnr``, ``dssim``, ``msnr``). Computations run in float64 on the
inputs' device. The paper evaluates images scaled to [0, 1] (``data_range = 1``).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

K1, K2 = 0.01, 0.03  # SSIM stabilising constants (Wang et al. 2004)


def _check_pair(x: torch.Tensor, y: torch.Tensor, name: str, min_ndim: int = 2) -> None:
    if x.shape != y.shape:
        raise ValueError(f"{name}: prediction and target shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.ndim < min_ndim:
        raise ValueError(f"{name}: expected at least {min_ndim} dims [..., H, W], got shape {tuple(x.shape)}")
    if x.is_complex() or y.is_complex():
        raise TypeError(f"{name}: expected real tensors; take magnitude or real/imag parts first")


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image: ``10 log10(data_range^2 / mean((x - y)^2))``.

    ``x, y``: ``[..., H, W]`` -> ``[...]``. Identical images give ``+inf`` (as scikit-image).
    """
    _check_pair(x, y, "psnr")
    mse = (x.double() - y.double()).pow(2).mean(dim=(-2, -1))
    return 10.0 * torch.log10(data_range**2 / mse)


def _window_1d(window: str, win_size: int, sigma: float, device: torch.device) -> torch.Tensor:
    if window == "uniform":
        return torch.full((win_size,), 1.0 / win_size, dtype=torch.float64, device=device)
    if window == "gaussian":
        r = torch.arange(win_size, dtype=torch.float64, device=device) - (win_size - 1) / 2
        w = torch.exp(-0.5 * (r / sigma) ** 2)
        return w / w.sum()
    raise ValueError(f"ssim: window must be 'gaussian' or 'uniform', got {window!r}")


def _filter_valid(img: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' filtering of ``img [N, 1, H, W]`` by the 1-D window ``w`` along both axes."""
    k = w.numel()
    out = F.conv2d(img, w.view(1, 1, k, 1))
    return F.conv2d(out, w.view(1, 1, 1, k))


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    window: Literal["gaussian", "uniform"] = "gaussian",
    win_size: int = 11,
    sigma: float = 1.5,
    use_sample_covariance: bool = False,
) -> torch.Tensor:
    """Structural similarity per image, equal to ``skimage.metrics.structural_similarity``.

    The defaults match the paper's evaluation (``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``;
    the Gaussian window is truncated at 3.5 sigma = 11 taps). ``window="uniform", win_size=7,
    use_sample_covariance=True`` are scikit-image's own defaults (CMRxRecon's official evaluation). The SSIM map is
    averaged over the pixels whose window lies inside the image, as scikit-image does after filtering.
    ``x, y``: ``[..., H, W]`` with ``H, W >= win_size`` -> ``[...]``.
    """
    _check_pair(x, y, "ssim")
    if win_size % 2 != 1 or win_size < 3:
        raise ValueError(f"ssim: win_size must be odd and >= 3, got {win_size}")
    if window == "gaussian" and win_size != 2 * int(3.5 * sigma + 0.5) + 1:
        raise ValueError(
            f"ssim: a Gaussian window with sigma={sigma} has {2 * int(3.5 * sigma + 0.5) + 1} taps "
            f"(truncated at 3.5 sigma, as scikit-image), got win_size={win_size}"
        )
    h, w_ = x.shape[-2:]
    if h < win_size or w_ < win_size:
        raise ValueError(f"ssim: images of {h}x{w_} px are smaller than the {win_size}x{win_size} window")
    lead = x.shape[:-2]
    a = x.double().reshape(-1, 1, h, w_)
    b = y.double().reshape(-1, 1, h, w_)
    w = _window_1d(window, win_size, sigma, a.device)
    stack = torch.cat([a, b, a * a, b * b, a * b], dim=0)
    ux, uy, uxx, uyy, uxy = _filter_valid(stack, w).chunk(5, dim=0)
    n_pix = win_size**2
    cov_norm = n_pix / (n_pix - 1) if use_sample_covariance else 1.0
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return s.mean(dim=(-3, -2, -1)).reshape(lead)


def frame_differences(video: torch.Tensor) -> torch.Tensor:
    """Consecutive-frame differences ``v[t+1] - v[t]``: ``[..., T, H, W]`` -> ``[..., T-1, H, W]``."""
    if video.ndim < 3 or video.shape[-3] < 2:
        raise ValueError(f"frame_differences: expected a video [..., T>=2, H, W], got shape {tuple(video.shape)}")
    return video[..., 1:, :, :] - video[..., :-1, :, :]


def dpsnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """d-PSNR (paper Sec. 4.1): PSNR of consecutive-frame differences, averaged over the T-1 differences.

    ``data_range`` is that of the frames (1 for frames in [0, 1]); the differences are compared as they are, not
    rescaled. ``[..., T, H, W]`` -> ``[...]``.
    """
    _check_pair(pred, target, "dpsnr", min_ndim=3)
    return psnr(frame_differences(pred), frame_differences(target), data_range).mean(dim=-1)


def dssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0, **ssim_kwargs) -> torch.Tensor:
    """d-SSIM (paper Sec. 4.1): SSIM of consecutive-frame differences, averaged over the T-1 differences.

    Same conventions as :func:`dpsnr`; ``ssim_kwargs`` go to :func:`ssim`. ``[..., T, H, W]`` -> ``[...]``.
    """
    _check_pair(pred, target, "dssim", min_ndim=3)
    return ssim(frame_differences(pred), frame_differences(target), data_range, **ssim_kwargs).mean(dim=-1)


def _symmetric_index(n: int, radius: int, device: torch.device) -> torch.Tensor:
    """Indices of an axis of length ``n`` padded by ``radius`` on each side with half-sample symmetric reflection
    (``d c b a | a b c d | d c b a``, scipy.ndimage's ``reflect``), any ``radius``."""
    i = torch.arange(-radius, n + radius, device=device) % (2 * n)
    return torch.where(i < n, i, 2 * n - 1 - i)


def gaussian_blur(img: torch.Tensor, sigma_px: float, truncate: float = 4.0) -> torch.Tensor:
    """Spatial Gaussian blur of std ``sigma_px`` pixels of each image ``[..., H, W]`` (float64), equal to
    ``scipy.ndimage.gaussian_filter(img, sigma=(0, ..., sigma_px, sigma_px))`` (``reflect`` boundaries, kernel
    truncated at ``truncate`` sigma). ``sigma_px = 0`` returns the images unchanged."""
    if not (sigma_px >= 0 and sigma_px < float("inf")):
        raise ValueError(f"gaussian_blur: sigma_px must be a finite number >= 0, got {sigma_px}")
    x = img.double()
    if sigma_px == 0:
        return x
    radius = int(truncate * sigma_px + 0.5)
    r = torch.arange(-radius, radius + 1, dtype=torch.float64, device=x.device)
    w = torch.exp(-0.5 * (r / sigma_px) ** 2)
    w = w / w.sum()
    h, w_ = x.shape[-2:]
    flat = x.reshape(-1, 1, h, w_)
    flat = flat.index_select(-2, _symmetric_index(h, radius, x.device))
    flat = flat.index_select(-1, _symmetric_index(w_, radius, x.device))
    return _filter_valid(flat, w).reshape(x.shape)


def msnr(pred: torch.Tensor, target: torch.Tensor, blur_px: float) -> torch.Tensor:
    """Motion SNR in dB per video (this project's metric, not the paper's): how well the frame-to-frame change of
    ``pred`` matches that of ``target`` at the spatial scale ``blur_px``,

        msnr = -20 log10( ||D(pred) - D(target)|| / ||D(target)|| ),   D(v) = G * (v[t+1] - v[t]),

    with ``G`` a per-frame spatial Gaussian blur of std ``blur_px`` pixels (:func:`gaussian_blur`) and the norms
    over all differences and pixels of a video. A static movie (``D(pred) = 0``) scores exactly 0 dB whatever its
    frames, so unlike d-PSNR it cannot be gamed by predicting no motion; a movie with the right motion scores
    ``+inf`` (as :func:`psnr` of identical images) whatever its static background; motion worse than none scores
    below 0. A static target (``D(target) = 0``) leaves it undefined: NaN. ``[..., T, H, W]`` -> ``[...]``.
    """
    _check_pair(pred, target, "msnr", min_ndim=3)
    dp = gaussian_blur(frame_differences(pred), blur_px)  # blur is linear: G * (v[t+1] - v[t]) = Gv[t+1] - Gv[t]
    dt = gaussian_blur(frame_differences(target), blur_px)
    err = (dp - dt).pow(2).sum(dim=(-3, -2, -1)).sqrt()
    ref = dt.pow(2).sum(dim=(-3, -2, -1)).sqrt()
    out = -20.0 * torch.log10(err / ref) + 0.0  # + 0.0: a static movie gives 0.0, not -0.0
    return torch.where(ref > 0, out, torch.full_like(out, float("nan")))


def nmse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Normalised mean squared error per image, ``||target - pred||^2 / ||target||^2``: ``[..., H, W]`` -> ``[...]``."""
    _check_pair(pred, target, "nmse")
    t = target.double()
    return (t - pred.double()).pow(2).sum(dim=(-2, -1)) / t.pow(2).sum(dim=(-2, -1))


def chi2_tilde(chi2: torch.Tensor) -> torch.Tensor:
    """Paper Eq. 4: ``chi2`` if ``chi2 >= 1`` else ``1 / chi2`` (penalises over- and under-fitting alike)."""
    chi2 = torch.as_tensor(chi2, dtype=torch.float64)
    if bool((chi2 <= 0).any()):
        raise ValueError("chi2_tilde: chi-square values must be positive")
    return torch.where(chi2 >= 1, chi2, 1.0 / chi2)


def data_misfit(predicted: torch.Tensor, measured: torch.Tensor) -> torch.Tensor:
    """Data misfit ``||A(x) - y||_2`` per batch element (paper Sec. 4.1, MRI); complex allowed.

    ``predicted = A(x)`` and ``measured = y`` of shape ``[B, ...]`` -> ``[B]``.
    """
    if predicted.shape != measured.shape:
        raise ValueError(
            f"data_misfit: predicted and measured shapes differ: {tuple(predicted.shape)} vs {tuple(measured.shape)}"
        )
    r = (predicted - measured).reshape(predicted.shape[0], -1)
    return torch.linalg.vector_norm(r, dim=1)
