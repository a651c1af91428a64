"""The data-consistency step of DAPS: the sampler of p(x0 | x_t, y) (paper Algorithm 1, lines 4-8), as a protocol.

At annealing step k DAPS has the noisy state ``z_t`` (noise level ``sigma_k``) and the PF-ODE estimate ``z0_hat``
(Eq. 8). A step draws ``z0`` (the latent the sampler re-noises) and, where it works in pixel space, the pixel-space
sample ``x0`` itself, which is what the sampler returns after the last step (not ``decode(encode(x0))``).

Implementations (siblings, chosen by the likelihood's kind):

- :class:`~common.sampling.consistency.latent.LatentMCMC`: Langevin/HMC on the latent through the decoder (the
  paper's method);
- :class:`~common.sampling.consistency.pixel.PixelLangevin` /
  :class:`~common.sampling.consistency.pixel.PixelGaussNewton`:
  decode once, sample in pixel space around ``x_hat = decode(z0_hat)`` with the Gaussian
  ``N(x_hat, r_k^2 I)`` as the prior term, encode the result;
- :class:`~common.sampling.consistency.linear_gaussian.LinearGaussianStep`: an exact draw from the Gaussian
  conditional of a linear-Gaussian likelihood (perturb-and-solve with conjugate gradient).

Pixel-space radius (:class:`PixelRadius`). DAPS approximates p(z0 | z_t) by N(z0_hat, sigma_k^2 I) in its own space.
Through the decoder a latent perturbation of size sigma shrinks by the decoder's gain g (shipped black-hole prior:
g = 0.017 at the first annealing step, so r = sigma would be ~60x too wide), and the decoder cannot express
everything (the shipped VAEs' round trips of true movies reach 38 dB (black hole) and 25 dB (MRI)): so in pixel
space we use ``r_k^2 = (g sigma_k)^2 + r_floor^2``, with g measured at every step as the RMS finite-difference gain
of the decoder at ``z0_hat`` and ``r_floor`` (network units) how far the data may move the image away from what
the decoder can express, chosen per domain by ``benchmarks/sweep_consistency.py`` (black hole 0.03, MRI 0.01).
Pixel priors: g = 1, r_floor = 0, which is DAPS's ``r_k = sigma_k``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from common.sampling.cg import batch_view, conjugate_gradient
from common.sampling.config import PERTURBATIONS
from common.sampling.errors import SamplingError
from common.sampling.noise import PerSampleNoise
from common.sampling.progress import Callback

Decoder = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class StepState:
    """What DAPS hands the step at annealing step ``k`` (0-based of ``n``) with noise level ``sigma``.

    ``z_t`` noisy state and ``z0_hat`` PF-ODE estimate, both ``[B, T, C, H, W]`` (latent or pixel); ``noise`` the
    per-sample random streams (sample k's draws come from its own generator only); ``hook`` the callback, if any.
    """

    k: int
    n: int
    sigma: float
    z_t: torch.Tensor
    z0_hat: torch.Tensor
    noise: PerSampleNoise
    hook: Callback | None = None


@dataclass
class StepResult:
    """``z0``: the state to re-noise (latent), ``x0``: the pixel-space sample, or None when it is ``decode(z0)``;
    ``log_likelihood``: log p(y | x0) per sample ``[B]`` (for the progress report); ``lr``: the step size used."""

    z0: torch.Tensor
    x0: torch.Tensor | None
    log_likelihood: torch.Tensor
    lr: float = float("nan")


class ConsistencyStep(Protocol):
    """A sampler of p(x0 | x_t, y): ``step(state) -> StepResult``. ``decode``/``encode`` are None for pixel priors."""

    decode: Decoder | None

    def __call__(self, state: StepState) -> StepResult: ...


@dataclass(frozen=True)
class PixelRadius:
    """Std ``r_k`` of the pixel-space prior term N(x_hat, r_k^2 I): ``sqrt((scale g sigma_k)^2 + floor^2)`` (module
    doc; ``scale`` 1 is the DAPS reference's r = sigma).

    ``gain`` None measures g at every step, per sample (:func:`decoder_gain`); a number fixes it (1 for pixel
    priors).
    """

    floor: float = 0.0
    gain: float | None = None
    scale: float = 1.0

    def __call__(self, sigma: float, z0_hat: torch.Tensor, x_hat: torch.Tensor, decode: Decoder | None,
                 noise: PerSampleNoise) -> torch.Tensor:
        """``r_k`` per sample ``[B]`` (float64) for annealing noise ``sigma`` at the PF-ODE estimate ``z0_hat
        [B, ...]`` with ``x_hat = decode(z0_hat)``: each sample's radius depends on its own state only."""
        if self.gain is None and decode is not None:
            g = decoder_gain(decode, z0_hat, x_hat, noise)
        else:
            g = torch.full((z0_hat.shape[0],), 1.0 if self.gain is None else float(self.gain), dtype=torch.float64)
        return ((self.scale * g * sigma) ** 2 + self.floor**2).sqrt()


def per_sample(r: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``r [B]`` shaped ``[B, 1, ...]`` to broadcast against ``like [B, ...]``, in its dtype and on its device."""
    return batch_view(r, like).to(dtype=like.dtype, device=like.device)


@torch.no_grad()
def decoder_gain(decode: Decoder, z: torch.Tensor, x: torch.Tensor, noise: PerSampleNoise,
                 delta: float = 0.05) -> torch.Tensor:
    """RMS pixel change per unit of RMS latent change of ``decode`` at ``z`` (``x = decode(z)``; finite difference
    along a random direction ``u`` drawn from ``noise``): ``||decode(z + delta u) - x|| / (delta ||u||)`` per
    sample, ``[B]`` float64 (the decoder is per frame, so sample b's gain depends on sample b only). One extra
    decoder pass without gradient."""
    u = noise.randn_shape(z.shape[1:]).to(z.dtype)
    x0, x1 = x, decode(z + delta * u)
    px = x0[0].numel() / z[0].numel()  # pixels per latent element: RMS per element on both sides
    ratio = (x1 - x0).flatten(1).norm(dim=1) / (delta * u.flatten(1).norm(dim=1) * math.sqrt(px))
    return ratio.detach().double().cpu()


@torch.no_grad()
def apply_or_identity(func: Decoder | None, x: torch.Tensor) -> torch.Tensor:
    """``func(x)`` without gradient, or ``x`` when ``func`` is None (pixel priors have no decoder / encoder)."""
    return x if func is None else func(x)


def check_perturb(owner: str, perturb: str) -> None:
    """``ValueError`` unless ``perturb`` is one of :data:`~common.sampling.config.PERTURBATIONS`."""
    if perturb not in PERTURBATIONS:
        raise ValueError(f"{owner}: perturb must be one of {PERTURBATIONS}, got {perturb!r}")


def solve_or_raise(apply: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, x0: torch.Tensor | None,
                   max_iter: int, rtol: float, what: str, k: int, sigma: float) -> torch.Tensor:
    """:func:`~common.sampling.cg.conjugate_gradient`, with a non-finite residual reported as
    :class:`SamplingError` naming the annealing step and ``what`` was being solved."""
    try:
        return conjugate_gradient(apply, b, x0, max_iter=max_iter, rtol=rtol)[0]
    except FloatingPointError as exc:
        raise SamplingError(f"DAPS: {exc} in the {what} at annealing step {k} (sigma={sigma:.4g}), "
                            "data-consistency step", anneal_step=k, mcmc_step=None, source=what) from exc


def require_finite(x: torch.Tensor, what: str, k: int, sigma: float) -> None:
    """Raise :class:`SamplingError` naming the step when ``x`` has NaN/Inf."""
    if not bool(torch.isfinite(x).all()):
        raise SamplingError(f"DAPS: non-finite {what} at annealing step {k} (sigma={sigma:.4g}), data-consistency "
                            "step", anneal_step=k, mcmc_step=None, source=what)
