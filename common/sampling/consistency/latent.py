"""The paper's data-consistency step: Langevin/HMC on the latent through the decoder (Algorithm 1 lines 4-8, Eq. 9-10).

Target ``log p(z0 | z_t, y) = log p(y | decode(z0)) + log p(z0 | z_t)``, started at the PF-ODE estimate; step size,
kernel, prior term and gradient clamp from :class:`~common.sampling.config.DAPSConfig` (Table 3 presets). Every MCMC
update runs the decoder forward and backward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from common.denoisers import Denoiser
from common.sampling.config import DAPSConfig
from common.sampling.consistency.base import Decoder, StepResult, StepState
from common.sampling.errors import SamplingError
from common.sampling.mcmc import (
    LogLikelihood,
    exact_prior_grad,
    gaussian_prior_grad,
    hmc_step,
    langevin_step,
    likelihood_grad,
)
from common.sampling.progress import SamplingEvent


@dataclass
class LatentMCMC:
    """M Langevin/HMC updates of the latent (``decode`` None: of the pixels, for pixel priors)."""

    denoiser: Denoiser
    log_likelihood: LogLikelihood
    config: DAPSConfig
    decode: Decoder | None = None

    def __call__(self, s: StepState) -> StepResult:
        cfg, k, sigma = self.config, s.k, s.sigma
        lr = cfg.lr_at(k)
        hmc = cfg.kernel == "hmc"
        v = s.noise.randn() if hmc else None  # momentum redrawn from N(0, I) at every annealing step (line 4)
        z0 = s.z0_hat
        ll = None
        j = 0
        for size in s.noise.block_sizes(cfg.mcmc_steps):
            for eps in s.noise.randn_block(size):  # line 6, drawn per sample for `size` updates at once
                ll, g_lik = likelihood_grad(self.log_likelihood, self.decode, z0, cfg.grad_clamp)
                if cfg.prior_term == "exact":
                    g_pri = exact_prior_grad(self.denoiser, z0, s.z_t, sigma, cfg.prior_sigma)
                else:
                    g_pri = gaussian_prior_grad(z0, s.z0_hat, sigma)
                grad = g_lik + g_pri
                if hmc:
                    z_new, v = hmc_step(z0, v, grad, lr, cfg.momentum, eps)  # Eq. 9-10
                else:
                    z_new = langevin_step(z0, grad, lr, eps)
                finite = torch.isfinite(z_new).all()
                if s.hook is None:
                    ok, misfit = bool(finite), float("nan")
                else:  # one host sync for both values
                    ok_f, misfit = torch.stack([finite.to(ll.dtype), -ll.mean()]).tolist()
                    ok = ok_f == 1.0
                if not ok:
                    raise diagnose(k, j, sigma, lr, z0, ll, g_lik, g_pri)
                z0 = z_new
                if s.hook is not None:
                    s.hook(SamplingEvent(k, s.n, j, sigma, lr, misfit))
                j += 1
        with torch.no_grad():
            ll = self.log_likelihood(z0 if self.decode is None else self.decode(z0))
        return StepResult(z0=z0, x0=None, log_likelihood=ll.detach(), lr=lr)


def diagnose(k: int, j: int, sigma: float, lr: float, z: torch.Tensor, ll: torch.Tensor, g_lik: torch.Tensor,
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
