"""Closure chi-squares and the black hole likelihood (paper Eq. 4 and 16; ehtim 1.3.2 conventions).

Chi-squares (ehtim's ``chisq_cphase``/``chisq_logcamp``; d = data - model):
    chi2_cp    = (2 / N_cp) sum (1 - cos d) / sigma^2          (d, sigma in radians)
    chi2_logca = (1 / N_lca) sum (d / sigma)^2
On a movie ehtim takes the count-weighted mean of the per-frame values, which equals the chi-square over all data,
so that is what ``closure_chisq`` returns (frames without closures contribute nothing, as in ehtim).

Data loss (paper Eq. 16, as in the STeP reference):
    L(x) = w_cp N_cp chi2_cp + w_lca N_lca chi2_logca + beta mean_f ((F_f(x) - F_f) / sigma_F)^2
with w_cp = w_lca = 1, beta = 0.26, sigma_F = 2 Jy; frames with no flux estimate (NaN) are left out of the mean.

Temperature convention: ``log_likelihood(x) = -L(x) / tau^2``. The STeP reference uses tau = 0.021 (with its
sampler step size 1.2e-5, FACTS s.1), the default here. A calibrated Gaussian likelihood, -L/2, is tau = sqrt(2).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from blackhole.forward import ClosureForward, ForwardOutput
from blackhole.measurements import ClosureData

REFERENCE_TAU = 0.021
REFERENCE_FLUX_BETA = 0.26
REFERENCE_FLUX_SIGMA = 2.0


def chisq_cphase(model: torch.Tensor, data: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """ehtim closure-phase chi-square over the last axis: (2/N) sum (1 - cos(data - model)) / sigma^2 (radians)."""
    n = model.shape[-1]
    return (2.0 / n) * ((1.0 - torch.cos(data - model)) / sigma**2).sum(-1)


def chisq_logcamp(model: torch.Tensor, data: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """ehtim log-closure-amplitude chi-square over the last axis: (1/N) sum ((data - model) / sigma)^2."""
    n = model.shape[-1]
    return (((data - model) / sigma) ** 2).sum(-1) / n


def align_flux(x: torch.Tensor, flux: torch.Tensor) -> torch.Tensor:
    """Scale each frame of ``x`` [B, T, ...] so its total equals ``flux`` [T] (Jy); NaN flux leaves a frame as is.

    Closure quantities are scale invariant, so this changes only flux-dependent terms. A frame with a non-positive
    total cannot be aligned and raises ``ValueError``.
    """
    total = x.flatten(2).sum(-1)  # [B, T]
    flux = torch.as_tensor(flux, dtype=x.dtype, device=x.device)
    known = torch.isfinite(flux)
    if bool(((total <= 0) & known).any()):
        raise ValueError("align_flux: a frame with non-positive total flux cannot be scaled to the measured flux")
    scale = torch.where(known, flux / total, torch.ones_like(total))
    return x * scale.reshape(*scale.shape, *([1] * (x.dim() - 2)))


class ClosureLikelihood(nn.Module):
    """log p(y | x) for black hole movies from closure data (module docstring gives the convention).

    Args:
        data: measured ``ClosureData``; height, width, psize: movie geometry (pixels, radians/pixel);
        tau: likelihood temperature (default 0.021, the reference's); w_cp, w_lca: closure weights (1, 1);
        flux_beta, flux_sigma: flux term weight and scale (0.26, 2 Jy); set flux_beta = 0 to drop the term.
    ``forward(x [B, T, 1, H, W]) -> [B]`` log-likelihood; ``data_loss(x) -> [B]`` is L(x).
    """

    def __init__(self, data: ClosureData, height: int, width: int, psize: float, tau: float = REFERENCE_TAU,
                 w_cp: float = 1.0, w_lca: float = 1.0, flux_beta: float = REFERENCE_FLUX_BETA,
                 flux_sigma: float = REFERENCE_FLUX_SIGMA) -> None:
        super().__init__()
        if not tau > 0:
            raise ValueError(f"ClosureLikelihood: tau must be positive, got {tau}")
        self.forward_model = ClosureForward(data, height, width, psize)
        self.tau, self.w_cp, self.w_lca = float(tau), float(w_cp), float(w_lca)
        self.flux_beta, self.flux_sigma = float(flux_beta), float(flux_sigma)
        f64 = torch.float64
        self.register_buffer("cphase", torch.as_tensor(data.cphase, dtype=f64))
        self.register_buffer("cphase_sigma", torch.as_tensor(data.cphase_sigma, dtype=f64))
        self.register_buffer("logcamp", torch.as_tensor(data.logcamp, dtype=f64))
        self.register_buffer("logcamp_sigma", torch.as_tensor(data.logcamp_sigma, dtype=f64))
        self.register_buffer("flux", torch.as_tensor(data.flux, dtype=f64))

    def chisq(self, x: torch.Tensor, out: ForwardOutput | None = None) -> dict[str, torch.Tensor]:
        """ehtim-convention chi-squares per batch element: {'cphase': [B], 'logcamp': [B]}."""
        out = out if out is not None else self.forward_model(x)
        dt = out.cphase.dtype
        return {
            "cphase": chisq_cphase(out.cphase, self.cphase.to(dt), self.cphase_sigma.to(dt)),
            "logcamp": chisq_logcamp(out.logcamp, self.logcamp.to(dt), self.logcamp_sigma.to(dt)),
        }

    def data_loss(self, x: torch.Tensor) -> torch.Tensor:
        """L(x) of paper Eq. 16, shape [B]."""
        out = self.forward_model(x)
        chi = self.chisq(x, out)
        loss = self.w_cp * self.cphase.numel() * chi["cphase"] + self.w_lca * self.logcamp.numel() * chi["logcamp"]
        if self.flux_beta > 0:
            known = torch.isfinite(self.flux)
            if bool(known.any()):
                d = (out.flux[:, known] - self.flux[known].to(out.flux.dtype)) / self.flux_sigma
                loss = loss + self.flux_beta * (d**2).mean(-1)
        return loss

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -self.data_loss(x) / self.tau**2


def evaluate_chisq(likelihood: ClosureLikelihood, x: torch.Tensor, align: bool = False) -> dict[str, np.ndarray]:
    """Evaluation chi-squares of movies ``x`` [B, T, 1, H, W] (no gradient), optionally after per-frame flux
    alignment; returns numpy arrays [B] for 'cphase' and 'logcamp' plus their chi~2 (paper Eq. 4)."""
    from common.metrics import chi2_tilde

    with torch.no_grad():
        if align:
            x = align_flux(x, likelihood.flux)
        chi = likelihood.chisq(x)
    res = {k: v.double().cpu().numpy() for k, v in chi.items()}
    for k in list(res):
        res[f"{k}_tilde"] = chi2_tilde(torch.as_tensor(res[k])).numpy()
    return res


def dense_matrix_bytes(n_rows: int, height: int, width: int, itemsize: int = 16) -> int:
    """Bytes of a dense [n_rows, H*W] DFT matrix (complex128 by default), the formulation this module avoids."""
    return int(n_rows) * int(height) * int(width) * int(itemsize)


__all__ = ["ClosureLikelihood", "align_flux", "chisq_cphase", "chisq_logcamp", "evaluate_chisq",
           "dense_matrix_bytes", "REFERENCE_TAU"]
