"""Build the data-consistency step that a :class:`~common.sampling.config.DAPSConfig` names (``data_step``)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from common.denoisers import Denoiser
from common.sampling.config import DAPSConfig
from common.sampling.consistency.base import ConsistencyStep, Decoder, PixelRadius
from common.sampling.consistency.latent import LatentMCMC
from common.sampling.consistency.linear_gaussian import LinearGaussian, LinearGaussianStep
from common.sampling.consistency.pixel import (
    PixelGaussNewton,
    PixelLangevin,
    Residuals,
    gaussian_smoother,
    whitened_gaussian,
)
from common.sampling.mcmc import LogLikelihood


def make_step(config: DAPSConfig, denoiser: Denoiser, *, log_likelihood: LogLikelihood,
              decode: Decoder | None = None, encode: Decoder | None = None, residuals: Residuals | None = None,
              linear: LinearGaussian | None = None,
              project: Callable[[torch.Tensor], torch.Tensor] | None = None) -> ConsistencyStep:
    """A fresh step object for one sampler call (pixel steps keep warm-start state across annealing steps).

    ``log_likelihood``: the latent step's (reference temperature), also used by pixel Langevin when neither
    ``residuals`` nor ``linear`` are given (else their calibrated likelihood at ``config.temperature``);
    ``residuals``: whitened residuals of a least-squares likelihood (pixel Gauss-Newton,
    and pixel Langevin at the calibrated temperature); ``linear``: the linear-Gaussian model; ``project``: a
    constraint projection for pixel Gauss-Newton (e.g. non-negativity) and the linear-Gaussian step (e.g. the coil
    maps' support). ``ValueError`` names what is missing.
    """
    kind = config.data_step
    if kind == "latent":
        return LatentMCMC(denoiser, log_likelihood, config, decode)
    # measured decoder gain; 1 without a decoder
    radius = PixelRadius(floor=config.radius_floor, scale=config.radius_scale)
    if kind == "linear-gaussian":
        if linear is None:
            raise ValueError("data_step 'linear-gaussian' needs a linear operator with Gaussian noise; this "
                             "likelihood is not one (use data_step 'pixel' or 'latent')")
        return LinearGaussianStep(linear, radius, decode, encode, perturb=config.perturb,
                                  temperature=config.temperature, cg_iters=config.cg_iters, project=project)
    if config.pixel_kernel == "gauss-newton":
        if residuals is None:
            raise ValueError("pixel_kernel 'gauss-newton' needs a least-squares likelihood (whitened residuals); "
                             "use pixel_kernel 'langevin'")
        return PixelGaussNewton(residuals, radius, decode, encode, temperature=config.temperature,
                                gn_iters=config.dc_iters, final_iters=config.dc_final_iters,
                                cg_iters=config.cg_iters, perturb=config.perturb, project=project,
                                smooth=gaussian_smoother(config.smooth_px) if config.smooth_px > 0 else None)
    if residuals is not None:
        lik = whitened_gaussian(residuals, config.temperature)
    elif linear is not None:
        def lik(x: torch.Tensor, t: float = config.temperature) -> torch.Tensor:
            return linear.log_likelihood(x) / t**2
    else:
        lik = log_likelihood
    return PixelLangevin(lik, radius, config.dc_iters, decode, encode, final_steps=config.dc_final_iters)
