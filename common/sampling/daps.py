"""Decoupled annealing posterior sampling with a (spatio)temporal diffusion prior: paper Algorithm 1, Sec. 3.3.

Conventions (``shared/FACTS.md`` s.1-2): EDM noise ``z_t = z0 + sigma eps``; the annealing grid
``common.schedules.annealing_sigmas`` ends with 0 so the result is the last MCMC output; all tensors
``[B, T, C, H, W]`` (B independent posterior samples, T frames).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from common.denoisers import Denoiser
from common.sampling.config import DAPSConfig
from common.sampling.consistency.base import ConsistencyStep, StepState, apply_or_identity
from common.sampling.consistency.latent import LatentMCMC
from common.sampling.errors import SamplingError
from common.sampling.mcmc import Decoder, LogLikelihood
from common.sampling.noise import GeneratorSpec, PerSampleNoise, make_generators
from common.sampling.ode import pf_ode_euler
from common.sampling.progress import Callback, ProgressBar, SamplingEvent, combine
from common.schedules import annealing_sigmas, ode_sigmas


@dataclass
class DAPSResult:
    """``latent``: the final state ``[B, T, C, H, W]`` (latent, or pixels for a pixel prior); ``pixels``: the
    posterior samples in pixel space, the data-consistency step's last pixel-space draw (``decode(latent)`` for
    the latent step)."""

    latent: torch.Tensor
    pixels: torch.Tensor


def daps_sample(denoiser: Denoiser, log_likelihood: LogLikelihood, shape: Sequence[int], config: DAPSConfig, *,
                decode: Decoder | None = None, batch_consistent: bool = False, generator: GeneratorSpec = None,
                callback: Callback | None = None, device: torch.device | str | None = None,
                dtype: torch.dtype | None = None) -> torch.Tensor:
    """The paper's DAPS (latent Langevin/HMC data step, :class:`LatentMCMC`); returns the latent (or pixel)
    samples, shape ``shape``. Same arguments as :func:`daps`; for other data-consistency steps use :func:`daps`."""
    step = LatentMCMC(denoiser, log_likelihood, config, decode)
    return daps(denoiser, step, shape, config, batch_consistent=batch_consistent, generator=generator,
                callback=callback, device=device, dtype=dtype).latent


def daps(denoiser: Denoiser, step: ConsistencyStep, shape: Sequence[int], config: DAPSConfig, *,
         batch_consistent: bool = False, generator: GeneratorSpec = None, callback: Callback | None = None,
         device: torch.device | str | None = None, dtype: torch.dtype | None = None,
         report: Callable[[torch.Tensor], Mapping[str, float]] | None = None) -> DAPSResult:
    """Draw ``B`` posterior samples with DAPS (Algorithm 1) and the data-consistency step ``step``.

    Args:
        denoiser: ``D(z [B, T, C, H, W], sigma [B]) -> z0_hat``, the prior. A video denoiser is STeP; an image-mode
            one (``image_mode(model)`` or ``per_frame(denoiser)``) is the IDM baseline.
        step: the sampler of p(z0 | z_t, y) (:mod:`common.sampling.consistency`): :class:`LatentMCMC` (the
            paper's; with ``log_likelihood`` ``x -> log p(y | x)`` ``[B]`` of ``x = decode(z)``, temperature
            included), a pixel-space or a linear-Gaussian step. It carries the likelihood and the decoder.
        shape: ``[B, T, C, H, W]``, the latent shape (pixel shape for a pixel prior).
        config: :class:`DAPSConfig` (annealing and PF-ODE schedules, progress bar; the MCMC fields are the
            latent step's).
        report: optional ``x [B, ...] -> {name: value}`` shown on the progress bar after every annealing step
            (e.g. chi2 or the relative misfit of the current pixel-space estimate).
        batch_consistent: IDM+BCS (Eq. 17): the initial state and every re-noising use one ``[C, H, W]`` noise
            image per sample shared by all T frames; MCMC noise and momentum stay i.i.d.
        generator: per-sample randomness (see :mod:`common.sampling.noise`): None, an int seed s (sample k uses
            s + k), a list of B seeds, or a list of B ``torch.Generator`` on ``device``.
        callback: called with a :class:`SamplingEvent` after every MCMC update and at the end of every annealing
            step (see :class:`TraceRecorder`).
        device, dtype: where and in which precision to sample; ``device`` defaults to that of the generators, else
            of the denoiser's parameters, else CPU; ``dtype`` to that of the denoiser's floating-point parameters,
            else ``torch.get_default_dtype()`` (float32 unless changed).

    Raises:
        SamplingError: a NaN/Inf appeared; the message names the annealing and MCMC step and the culprit. No partial
            result is returned.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 5 or min(shape) < 1:
        raise ValueError(f"daps_sample: shape must be [B, T, C, H, W] with positive sizes, got {list(shape)}")
    if not isinstance(config, DAPSConfig):
        raise TypeError(f"daps_sample: config must be a DAPSConfig, got {type(config).__name__}")
    b, n = shape[0], config.annealing_steps
    device = _resolve_device(device, generator, denoiser)
    dtype = dtype if dtype is not None else _resolve_dtype(denoiser)
    gens, _ = make_generators(generator, b, device)
    noise = PerSampleNoise(gens, shape[1:], device, dtype)
    sigmas = annealing_sigmas(config.sigma_max, config.sigma_min, n, config.rho).tolist()
    bar = ProgressBar(n) if config.progress else None
    hook = combine(callback, bar)
    try:
        z = noise.randn(batch_consistent=batch_consistent) * sigmas[0]  # line 1: z_T ~ N(0, sigma_max^2 I)
        for k in range(n):
            sigma = sigmas[k]
            z0 = pf_ode_euler(denoiser, z, ode_sigmas(sigma, config.ode_sigma_min, config.ode_steps, config.rho))
            if not bool(torch.isfinite(z0).all()):  # line 3
                raise SamplingError(f"DAPS: non-finite value in the PF-ODE at annealing step {k} (sigma={sigma:.4g}), "
                                    "MCMC step None: the denoiser returned NaN/Inf", anneal_step=k, mcmc_step=None,
                                    source="denoiser")
            result = step(StepState(k, n, sigma, z, z0, noise, hook))  # lines 4-8
            ll = result.log_likelihood
            if not bool(torch.isfinite(ll).all()) or not bool(torch.isfinite(result.z0).all()):
                raise SamplingError(f"DAPS: the data-consistency step returned NaN/Inf at annealing step {k} "
                                    f"(sigma={sigma:.4g}), MCMC step None (end of step)", anneal_step=k,
                                    mcmc_step=None, source="likelihood")
            x0 = result.x0
            if hook is not None:
                extra = None
                if report is not None:
                    with torch.no_grad():
                        extra = dict(report(x0 if x0 is not None else apply_or_identity(step.decode, result.z0)))
                hook(SamplingEvent(k, n, None, sigma, result.lr, float(-ll.mean()), extra))
            sigma_next = sigmas[k + 1]  # line 9 (0 at the last step: nothing added)
            z = result.z0 + sigma_next * noise.randn(batch_consistent=batch_consistent) if sigma_next > 0 \
                else result.z0
    finally:
        if bar is not None:
            bar.close()
    z = z.detach()
    pixels = x0.detach() if x0 is not None else apply_or_identity(step.decode, z)
    return DAPSResult(latent=z, pixels=pixels)



def _module_tensors(denoiser: Denoiser) -> list[torch.Tensor]:
    module = denoiser.func if isinstance(denoiser, functools.partial) else denoiser
    if isinstance(module, nn.Module):
        return list(itertools.chain(module.parameters(), module.buffers()))
    return []


def _resolve_dtype(denoiser: Denoiser) -> torch.dtype:
    for t in _module_tensors(denoiser):
        if t.is_floating_point():
            return t.dtype
    return torch.get_default_dtype()


def _resolve_device(device: torch.device | str | None, generator: GeneratorSpec, denoiser: Denoiser) -> torch.device:
    if device is not None:
        return torch.device(device)
    if isinstance(generator, Sequence) and len(generator) and isinstance(generator[0], torch.Generator):
        return generator[0].device
    tensors = _module_tensors(denoiser)
    return tensors[0].device if tensors else torch.device("cpu")
