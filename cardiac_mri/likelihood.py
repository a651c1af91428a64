"""Gaussian likelihood of cine k-space for posterior sampling (paper Sec. 4.3: log p(y|x) ∝ -||A(x) - y||^2).

Convention of this project::

    log_likelihood(x) = -||A(scale * x) - y||^2 / tau^2            (one value per sample, shape [B])

with ``A`` the :class:`~cardiac_mri.sense.SenseOperator` (centred *orthonormal* FFT), ``x`` the sampler's video in
network units (real ``[B, T, 2, H, W]`` with real/imag channels, or complex ``[B, T, H, W]``), ``scale`` the
normalisation of :mod:`cardiac_mri.images` (image units = ``scale`` * network units) and ``y`` the measured k-space
``[T, C, H, W]`` or ``[B, T, C, H, W]`` in the file's units. There is no factor 1/2 and ``tau`` is a likelihood
temperature, not the noise level (FACTS 1: the reference's MRI value is ``tau = 0.10``).

Reproducing the reference implementation: it multiplies images by ``1e6`` and uses an *unnormalised*
``fft2(fftshift(.))``, so its residual norm is ``sqrt(H W)`` times the orthonormal one. With ``x`` in the
reference's units (``x_ref = 1e6 * x_image``), ``scale = 1``, ``y`` the orthonormal k-space of the reference's
measurement (``y_ref / sqrt(H W)``), ``tau = 0.10`` and ``unnormalized_fft=True`` (which multiplies the squared
residual by ``H W``), :class:`GaussianLikelihood` returns the reference's ``-||M fft2(x_ref) - y_ref||^2 / tau^2``
exactly (fftshift-only versus centred FFT differ by a unit-modulus factor per k-space sample, which leaves the norm
unchanged).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cardiac_mri.sense import SenseOperator, channels_to_complex


class GaussianLikelihood(nn.Module):
    """``log p(y | x) = -w ||A(scale * x) - y||^2 / tau^2`` per sample, ``[B]``; ``w = H W`` if ``unnormalized_fft``.

    Args:
        op: the forward operator (its buffers carry device and dtype).
        y: measured k-space ``[T, C, H, W]`` (shared by the batch) or ``[B, T, C, H, W]``.
        tau: likelihood temperature (reference MRI value 0.10).
        scale: image units per network unit (see :mod:`cardiac_mri.images`).
        unnormalized_fft: weight the squared residual by ``H W`` to reproduce an unnormalised-FFT convention.
    """

    y_ri: torch.Tensor

    def __init__(
        self, op: SenseOperator, y: torch.Tensor, tau: float = 0.10, scale: float = 1.0,
        unnormalized_fft: bool = False,
    ) -> None:
        super().__init__()
        if tau <= 0 or scale <= 0:
            raise ValueError(f"GaussianLikelihood: tau and scale must be positive, got tau={tau}, scale={scale}")
        if not y.is_complex() or y.ndim not in (4, 5):
            raise ValueError(f"GaussianLikelihood: y must be complex [T, C, H, W] or [B, T, C, H, W], got "
                             f"{tuple(y.shape)} {y.dtype}")
        if tuple(y.shape[-3:]) != (op.num_coils, *op.image_shape):
            raise ValueError(f"GaussianLikelihood: y has (C, H, W) = {tuple(y.shape[-3:])}, the operator expects "
                             f"{(op.num_coils, *op.image_shape)}")
        self.op = op
        self.register_buffer("y_ri", torch.view_as_real(y.to(op.maps.dtype).contiguous()).clone())
        self.tau = float(tau)
        self.scale = float(scale)
        h, w = op.image_shape
        self.weight = float(h * w) if unnormalized_fft else 1.0

    @property
    def y(self) -> torch.Tensor:
        """Measured k-space (complex view of the real buffer ``y_ri``, which survives ``.to(float64)``)."""
        return torch.view_as_complex(self.y_ri)

    def to_complex(self, x: torch.Tensor) -> torch.Tensor:
        """Sampler video (real ``[B, T, 2, H, W]`` or complex ``[B, T, H, W]``) -> complex image units."""
        z = x if x.is_complex() else channels_to_complex(x)
        if z.ndim != 4:
            raise ValueError(
                f"GaussianLikelihood: expected [B, T, 2, H, W] or complex [B, T, H, W], got {tuple(x.shape)}"
            )
        return self.scale * z.to(self.op.maps.dtype)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """``A(scale * x) - y``: ``[B, T, C, H, W]``."""
        return self.op(self.to_complex(x)) - self.y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log-likelihood per sample, real ``[B]`` (differentiable in ``x`` by autograd)."""
        r = self.residual(x)
        return -self.weight * (r.abs() ** 2).flatten(1).sum(dim=1) / self.tau**2

    def data_misfit(self, x: torch.Tensor) -> torch.Tensor:
        """The paper's data misfit ``||A(x) - y||_2`` per sample (Sec. 4.1), ``[B]``, in k-space units."""
        return self.residual(x).abs().pow(2).flatten(1).sum(dim=1).sqrt()


def estimate_noise_std(y: torch.Tensor, mask: torch.Tensor, edge_fraction: float = 0.125) -> float:
    """Noise std per complex k-space sample (``E|n|^2``) estimated from the data alone.

    Estimator: the measured samples in the outer ``edge_fraction`` of the readout (kx, last axis, fully sampled)
    on both sides, over every frame, coil and measured ky line, carry little signal; their real and imaginary parts
    are pooled and the std per real part is ``1.4826 x`` their median absolute deviation from the median (robust to
    the remaining signal); the complex std is ``sqrt(2)`` times that. ``y`` ``[..., H, W]`` complex, ``mask``
    ``[H, W]`` or ``[T, H, W]`` (rows = ky). On the demo case (synthetic noise 0.005) it gives 0.0065 in network
    units; the truth's own residual (thermal noise plus coil-map model error) is 0.0097.
    """
    if not y.is_complex():
        raise ValueError(f"estimate_noise_std: y must be complex k-space, got {y.dtype}")
    w = y.shape[-1]
    n = max(1, int(round(w * edge_fraction)))
    m = (torch.as_tensor(mask) > 0).expand(y.shape) if mask.ndim == 2 else (torch.as_tensor(mask) > 0)[:, None]
    m = m.expand(y.shape)
    cols = torch.cat([torch.arange(n), torch.arange(w - n, w)]).to(y.device)
    v = y.index_select(-1, cols)[m.index_select(-1, cols.to(m.device))]
    if v.numel() < 16:
        raise ValueError(f"estimate_noise_std: only {v.numel()} measured samples in the k-space edges")
    parts = torch.cat([v.real, v.imag]).to(torch.float64)
    mad = (parts - parts.median()).abs().median()
    sigma = float(1.4826 * mad * 2**0.5)
    if not sigma > 0:
        raise ValueError("estimate_noise_std: the k-space edges are exactly zero (noise-free or zero-padded data); "
                         "pass the noise level explicitly")
    return sigma


def model_error_ratio(op: SenseOperator, y: torch.Tensor, noise_std: float, iters: int = 30, seed: int = 0) -> float:
    """How much larger than the thermal noise ``noise_std`` (per complex sample) the data's misfit to the SENSE model
    is, from the data alone: ``sqrt(RSS(y) / RSS(y_sim))`` (clipped below at 1), with RSS the squared residual of
    the same unregularised CG-SENSE fit (``iters`` iterations) to the data ``y`` and to simulated data ``y_sim =
    A x_fit + n``, n complex white noise of std ``noise_std`` on the measured samples (seeded by ``seed``): a
    parametric bootstrap, so the fit's incomplete convergence affects both alike and only what the model cannot
    explain (estimated coil maps, the grid's k-space crop) raises the ratio. The likelihood's noise level is
    ``noise_std x ratio`` (:func:`cardiac_mri.step.mri_task`). Held-out synthetic cine, 8x: the truth's own residual
    over the thermal estimate is 2.27 / 1.54 / 1.19 / 1.03 at k-space noise 0.002 / 0.005 / 0.01 / 0.02 (coil-map
    error dominates clean data) and this ratio 2.39 / 1.63 / 1.25 / 1.08 (benchmarks/RESULTS.md, eighth session).
    ``op`` the SENSE operator, ``y`` ``[T, C, H, W]`` complex k-space (zeros where not measured)."""
    from cardiac_mri.baselines import sense_cg

    if not (noise_std > 0 and math.isfinite(noise_std) and iters >= 1):
        raise ValueError(f"model_error_ratio: need noise_std > 0 and iters >= 1, got {noise_std!r}, {iters!r}")
    mask = op.mask > 0
    measured = (mask if mask.ndim == 2 else mask[:, None]).to(y.device)  # broadcasts over [T, C, H, W]

    def residual(data: torch.Tensor) -> tuple[float, torch.Tensor]:
        fit = op(sense_cg(op, data[None], iters=iters, lam=0.0))[0]
        return float(((fit - data).abs() ** 2).sum()), fit

    rss, fit = residual(y)
    g = torch.Generator(device=y.device).manual_seed(seed)
    noise = torch.complex(torch.randn(y.shape, generator=g, device=y.device),
                          torch.randn(y.shape, generator=g, device=y.device)).to(y.dtype)
    rss_sim, _ = residual(fit + noise * (noise_std / 2**0.5) * measured)
    if not (rss_sim > 0 and math.isfinite(rss) and math.isfinite(rss_sim)):
        raise ValueError(f"model_error_ratio: residuals must be finite and positive, got {rss} (data) and {rss_sim} "
                         "(simulated)")
    return max(1.0, (rss / rss_sim) ** 0.5)


def linear_gaussian_model(lik: GaussianLikelihood, noise_std: float):
    """The :class:`~common.sampling.consistency.LinearGaussian` of ``lik`` (network-unit videos
    ``[B, T, 2, H, W]``, its ``y`` and ``scale``) with complex noise std ``noise_std`` per k-space sample in the
    units of ``lik.y / lik.scale``, i.e. ``log p = -||A x - y / scale||^2 / noise_std^2``."""
    from cardiac_mri.sense import complex_to_channels
    from common.sampling.consistency import LinearGaussian

    op, scale = lik.op, lik.scale

    def forward(x: torch.Tensor) -> torch.Tensor:
        return op(channels_to_complex(x).to(op.maps.dtype))

    def adjoint(y: torch.Tensor) -> torch.Tensor:
        return complex_to_channels(op.adjoint(y)).to(torch.float32)

    def normal(x: torch.Tensor) -> torch.Tensor:  # A^H A without the k-space array (row masks: two DFT products)
        return complex_to_channels(op.normal(channels_to_complex(x).to(op.maps.dtype))).to(torch.float32)

    return LinearGaussian(forward=forward, adjoint=adjoint, y=lik.y / scale, noise_std=noise_std / 2**0.5,
                          normal=normal)
