"""Decoupled annealing posterior sampling with a (spatio)temporal diffusion prior: paper Algorithm 1, Sec. 3.3.

Conventions (``shared/FACTS.md`` s.1-2): EDM noise ``z_t = z0 + sigma eps``; the annealing grid
``common.schedules.annealing_sigmas`` ends with 0 so the result is the last MCMC output; all tensors
``[B, T, C, H, W]`` (B independent posterior samples, T frames).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence

import torch
from torch import nn

from common.denoisers import Denoiser
from common.sampling.config import DAPSConfig
from common.sampling.mcmc import (
    Decoder,
    LogLikelihood,
    exact_prior_grad,
    gaussian_prior_grad,
    hmc_step,
    langevin_step,
    likelihood_grad,
)
from common.sampling.noise import GeneratorSpec, PerSampleNoise, make_generators
from common.sampling.ode import pf_ode_euler
from common.sampling.progress import Callback, ProgressBar, SamplingEvent, combine
from common.schedules import annealing_sigmas, ode_sigmas


class SamplingError(RuntimeError):
    """A non-finite value appeared during sampling. ``anneal_step`` / ``mcmc_step`` are 0-based (``mcmc_step`` is
    None for the PF-ODE or end-of-step stage); ``source`` says what went bad ("likelihood", "prior", "state", ...)."""

    def __init__(self, message: str, *, anneal_step: int, mcmc_step: int | None, source: str) -> None:
        super().__init__(message)
        self.anneal_step, self.mcmc_step, self.source = anneal_step, mcmc_step, source


def daps_sample(denoiser: Denoiser, log_likelihood: LogLikelihood, shape: Sequence[int], config: DAPSConfig, *,
                decode: Decoder | None = None, batch_consistent: bool = False, generator: GeneratorSpec = None,
                callback: Callback | None = None, device: torch.device | str | None = None,
                dtype: torch.dtype | None = None) -> torch.Tensor:
    """Draw ``B`` posterior samples with DAPS (Algorithm 1); returns the latent (or pixel) samples, shape ``shape``.

    Args:
        denoiser: ``D(z [B, T, C, H, W], sigma [B]) -> z0_hat``, the prior. A video denoiser is STeP; an image-mode
            one (``image_mode(model)`` or ``per_frame(denoiser)``) is the IDM baseline.
        log_likelihood: ``x -> log p(y | x)`` of shape ``[B]`` with ``x = decode(z)`` (or ``z``); the batch
            elements must be independent. Any temperature (tau) belongs here, e.g. ``-||A x - y||^2 / tau^2``.
        shape: ``[B, T, C, H, W]``, the latent shape (pixel shape when ``decode`` is None).
        config: :class:`DAPSConfig` (schedules, MCMC kernel, prior term, gradient clamp, progress bar).
        decode: optional latent decoder composed into the likelihood; gradients flow through it. The returned
            tensor is the latent; decode it yourself.
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
            sigma, lr = sigmas[k], config.lr_at(k)
            z0 = pf_ode_euler(denoiser, z, ode_sigmas(sigma, config.ode_sigma_min, config.ode_steps, config.rho))
            if not bool(torch.isfinite(z0).all()):  # line 3
                raise SamplingError(f"DAPS: non-finite value in the PF-ODE at annealing step {k} (sigma={sigma:.4g}), "
                                    "MCMC step None: the denoiser returned NaN/Inf", anneal_step=k, mcmc_step=None,
                                    source="denoiser")
            z0 = _mcmc(denoiser, log_likelihood, decode, z, z0, noise, config, k, sigma, lr, hook)  # lines 4-8
            if hook is not None:
                hook(SamplingEvent(k, n, None, sigma, lr, _misfit(log_likelihood, decode, z0, k)))
            sigma_next = sigmas[k + 1]  # line 9 (0 at the last step: nothing added)
            z = z0 + sigma_next * noise.randn(batch_consistent=batch_consistent) if sigma_next > 0 else z0
    finally:
        if bar is not None:
            bar.close()
    return z.detach()


def _mcmc(denoiser: Denoiser, log_likelihood: LogLikelihood, decode: Decoder | None, z_t: torch.Tensor,
          z0: torch.Tensor, noise: PerSampleNoise, cfg: DAPSConfig, k: int, sigma: float, lr: float,
          hook: Callback | None) -> torch.Tensor:
    """M Langevin/HMC updates on log p(y | decode(z0)) + log p(z0 | z_t), started at the PF-ODE output ``z0``."""
    hmc = cfg.kernel == "hmc"
    v = noise.randn() if hmc else None  # momentum redrawn from N(0, I) at every annealing step (line 4)
    z0_ode = z0
    j = 0
    for size in noise.block_sizes(cfg.mcmc_steps):
        eps_block = noise.randn_block(size)  # line 6, drawn per sample for `size` updates at once
        for eps in eps_block:
            ll, g_lik = likelihood_grad(log_likelihood, decode, z0, cfg.grad_clamp)
            if cfg.prior_term == "exact":
                g_pri = exact_prior_grad(denoiser, z0, z_t, sigma, cfg.prior_sigma)
            else:
                g_pri = gaussian_prior_grad(z0, z0_ode, sigma)
            grad = g_lik + g_pri
            if hmc:
                z_new, v = hmc_step(z0, v, grad, lr, cfg.momentum, eps)  # Eq. 9-10
            else:
                z_new = langevin_step(z0, grad, lr, eps)
            finite = torch.isfinite(z_new).all()
            if hook is None:
                ok, misfit = bool(finite), float("nan")
            else:  # one host sync for both values
                ok_f, misfit = torch.stack([finite.to(ll.dtype), -ll.mean()]).tolist()
                ok = ok_f == 1.0
            if not ok:
                raise _diagnose(k, j, sigma, lr, z0, ll, g_lik, g_pri)
            z0 = z_new
            if hook is not None:
                hook(SamplingEvent(k, cfg.annealing_steps, j, sigma, lr, misfit))
            j += 1
    return z0


def _diagnose(k: int, j: int, sigma: float, lr: float, z: torch.Tensor, ll: torch.Tensor, g_lik: torch.Tensor,
              g_pri: torch.Tensor) -> SamplingError:
    """Name the first non-finite quantity of MCMC step ``j`` of annealing step ``k`` (``z``: state before the step)."""
    zmax = z.abs().max().item()
    where = f"at annealing step {k} (sigma={sigma:.4g}, lr={lr:.3g}, state max |z| = {zmax:.3g}), MCMC step {j}"
    if not bool(torch.isfinite(ll).all()):
        bad = (~torch.isfinite(ll)).nonzero().flatten().tolist()
        return SamplingError(f"DAPS: the likelihood returned NaN/Inf {where} for batch element(s) {bad}",
                             anneal_step=k, mcmc_step=j, source="likelihood")
    if not bool(torch.isfinite(g_lik).all()):
        return SamplingError(f"DAPS: the likelihood gradient is NaN/Inf {where} (finite likelihood value)",
                             anneal_step=k, mcmc_step=j, source="likelihood gradient")
    if not bool(torch.isfinite(g_pri).all()):
        return SamplingError(f"DAPS: the prior term (denoiser score) is NaN/Inf {where}",
                             anneal_step=k, mcmc_step=j, source="prior")
    return SamplingError(f"DAPS: the state became NaN/Inf {where} with finite gradients: the step size is too "
                         "large for the curvature of the target (lower lr or scale the likelihood)",
                         anneal_step=k, mcmc_step=j, source="state")


def _misfit(log_likelihood: LogLikelihood, decode: Decoder | None, z0: torch.Tensor, k: int) -> float:
    """-mean log p(y | decode(z0)) without gradient; non-finite raises (end-of-annealing-step check)."""
    with torch.no_grad():
        value = float(-log_likelihood(z0 if decode is None else decode(z0)).mean())
    if value != value or value in (float("inf"), float("-inf")):
        raise SamplingError(f"DAPS: the likelihood of the MCMC output is NaN/Inf at annealing step {k}, MCMC step "
                            "None (end of step)", anneal_step=k, mcmc_step=None, source="likelihood")
    return value


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
