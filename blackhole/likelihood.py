"""Closure chi-squares and the black hole likelihood (paper Eq. 4 and 16; ehtim 1.3.2 conventions).

Chi-squares (ehtim's ``chisq_cphase``/``chisq_logcamp``; d = data - model):
    chi2_cp    = (2 / N_cp) sum (1 - cos d) / sigma^2          (d, sigma in radians)
    chi2_logca = (1 / N_lca) sum (d / sigma)^2
    chi2_vis   = (1 / (2 N_vis)) sum |V_data - V_model|^2 / sigma^2
    chi2_amp   = (1 / N_vis) sum ((A_data - |V_model|) / sigma)^2     (A_data debiased, ehtim's default)
On a movie ehtim takes the count-weighted mean of the per-frame values, which equals the chi-square over all data,
so that is what ``ClosureLikelihood.chisq`` returns (frames without closures contribute nothing, as in ehtim).

Data loss (paper Eq. 16, as in the STeP reference):
    L(x) = w_cp N_cp chi2_cp + w_lca N_lca chi2_logca + beta mean_f ((F_f(x) - F_f) / sigma_F)^2
           [+ w_vis N_vis chi2_vis + w_amp N_vis chi2_amp]
with w_cp = w_lca = 1, beta = 0.26, sigma_F = 2 Jy; frames with no flux estimate (NaN) are left out of the mean.
The visibility and amplitude terms (w_vis = w_amp = 0 by default) are for calibrated data only: station gains and
phases corrupt them, not the closures.

Temperature convention: ``log_likelihood(x) = -L(x) / tau^2``. The STeP reference uses tau = 0.021 (with its
sampler step size 1.2e-5, FACTS s.1), the default here. A calibrated Gaussian likelihood, -L/2, is tau = sqrt(2).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from blackhole.forward import ClosureForward, ForwardOutput
from blackhole.measurements import ClosureData, debiased_amplitude
from common.metrics import chi2_tilde

REFERENCE_TAU = 0.021
REFERENCE_FLUX_BETA = 0.26
REFERENCE_FLUX_SIGMA = 2.0


def _undefined(model: torch.Tensor) -> torch.Tensor:
    """The chi-square of an empty data set: NaN of the batch shape (there is nothing to average)."""
    return torch.full(model.shape[:-1], float("nan"), dtype=model.dtype, device=model.device)


def chisq_cphase(model: torch.Tensor, data: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """ehtim closure-phase chi-square over the last axis: (2/N) sum (1 - cos(data - model)) / sigma^2 (radians).
    Undefined (NaN) when N = 0 (fewer than 3 stations at every timestamp): callers report it as not computable
    (:func:`computable_chisq`); the data loss uses the sum, which is 0 then."""
    n = model.shape[-1]
    if n == 0:
        return _undefined(model)
    return (2.0 / n) * ((1.0 - torch.cos(data - model)) / sigma**2).sum(-1)


def chisq_logcamp(model: torch.Tensor, data: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """ehtim log-closure-amplitude chi-square over the last axis: (1/N) sum ((data - model) / sigma)^2.
    Undefined (NaN) when N = 0 (fewer than 4 stations at every timestamp), as for :func:`chisq_cphase`."""
    n = model.shape[-1]
    if n == 0:
        return _undefined(model)
    return (((data - model) / sigma) ** 2).sum(-1) / n


MIN_STATIONS = {"cphase": 3, "logcamp": 4}  # stations one closure quantity needs at a timestamp


def computable_chisq(n_data: dict[str, int]) -> dict[str, str]:
    """For each chi-square name in ``n_data`` (number of closure quantities) that cannot be computed, the reason in
    words (no closure phases: fewer than 3 stations at every timestamp; no log closure amplitudes: fewer than 4).
    An empty dict means every chi-square is defined."""
    words = {"cphase": "closure phases", "logcamp": "log closure amplitudes"}
    return {k: f"not computable: no {words.get(k, k)} (fewer than {MIN_STATIONS.get(k, 3)} stations observe "
               "together at every timestamp)" for k, n in n_data.items() if n == 0}


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
        flux_beta, flux_sigma: flux term weight and scale (0.26, 2 Jy); set flux_beta = 0 to drop the term;
        w_vis, w_amp: optional visibility / amplitude terms (0 = off).
    ``forward(x [B, T, 1, H, W]) -> [B]`` log-likelihood; ``data_loss(x) -> [B]`` is L(x).
    """

    def __init__(self, data: ClosureData, height: int, width: int, psize: float, tau: float = REFERENCE_TAU,
                 w_cp: float = 1.0, w_lca: float = 1.0, flux_beta: float = REFERENCE_FLUX_BETA,
                 flux_sigma: float = REFERENCE_FLUX_SIGMA, w_vis: float = 0.0, w_amp: float = 0.0) -> None:
        super().__init__()
        if not tau > 0:
            raise ValueError(f"ClosureLikelihood: tau must be positive, got {tau}")
        self.forward_model = ClosureForward(data, height, width, psize)
        self.tau, self.w_cp, self.w_lca = float(tau), float(w_cp), float(w_lca)
        self.flux_beta, self.flux_sigma = float(flux_beta), float(flux_sigma)
        self.w_vis, self.w_amp = float(w_vis), float(w_amp)
        f64 = torch.float64
        self.register_buffer("cphase", torch.as_tensor(data.cphase, dtype=f64))
        self.register_buffer("cphase_sigma", torch.as_tensor(data.cphase_sigma, dtype=f64))
        self.register_buffer("logcamp", torch.as_tensor(data.logcamp, dtype=f64))
        self.register_buffer("logcamp_sigma", torch.as_tensor(data.logcamp_sigma, dtype=f64))
        self.register_buffer("flux", torch.as_tensor(data.flux, dtype=f64))
        # per-baseline data in the model's padded [T*K] slot layout (unused slots: weight 0)
        slot = self.forward_model.vis_model.slot.numpy()
        n_slots = self.forward_model.vis_model.n_frames * self.forward_model.vis_model.k
        tab = data.table
        vis_data, sig, amp = np.zeros(n_slots, complex), np.ones(n_slots), np.zeros(n_slots)
        valid = np.zeros(n_slots, bool)
        vis_data[slot], sig[slot], valid[slot] = tab.vis, tab.sigma, True
        amp[slot] = debiased_amplitude(tab.vis, tab.sigma, force_nonzero=False) if data.debias else np.abs(tab.vis)
        used = np.flatnonzero(valid)
        self.register_buffer("vis_slots", torch.as_tensor(used, dtype=torch.int64), persistent=False)
        self.register_buffer("vis_re", torch.as_tensor(vis_data.real[used], dtype=f64))
        self.register_buffer("vis_im", torch.as_tensor(vis_data.imag[used], dtype=f64))
        self.register_buffer("vis_amp", torch.as_tensor(amp[used], dtype=f64))
        self.register_buffer("vis_weight", torch.as_tensor(1.0 / sig[used] ** 2, dtype=f64))
        self.n_vis = len(used)

    def chisq(self, x: torch.Tensor, out: ForwardOutput | None = None,
              with_vis: bool = False) -> dict[str, torch.Tensor]:
        """ehtim-convention chi-squares per batch element: {'cphase', 'logcamp'} (+ {'vis', 'amp'}), each [B]."""
        out = out if out is not None else self.forward_model(x)
        dt = out.cphase.dtype
        chi = {
            "cphase": chisq_cphase(out.cphase, self.cphase.to(dt), self.cphase_sigma.to(dt)),
            "logcamp": chisq_logcamp(out.logcamp, self.logcamp.to(dt), self.logcamp_sigma.to(dt)),
        }
        if with_vis:
            w = self.vis_weight.to(dt)
            re, im = out.vis_re[:, self.vis_slots], out.vis_im[:, self.vis_slots]  # real rows only, no padding
            d2 = (re - self.vis_re.to(dt)) ** 2 + (im - self.vis_im.to(dt)) ** 2
            chi["vis"] = (w * d2).sum(-1) / (2 * self.n_vis)
            amp = torch.sqrt(re**2 + im**2)
            chi["amp"] = (w * (amp - self.vis_amp.to(dt)) ** 2).sum(-1) / self.n_vis
        return chi

    def residuals(self, x: torch.Tensor) -> torch.Tensor:
        """Whitened closure residuals ``[B, N_cp + N_lca]`` whose squared norm is the closure part of L(x):
        ``sqrt(w_cp) 2 sin((data - model) / 2) / sigma`` for closure phases (so that its square is ehtim's
        ``2 (1 - cos d) / sigma^2``) and ``sqrt(w_lca) (data - model) / sigma`` for log closure amplitudes.
        The calibrated Gaussian log-likelihood of the closures is ``-||residuals||^2 / 2`` (tau = sqrt(2))."""
        out = self.forward_model(x)
        dt = out.cphase.dtype
        d_cp = self.cphase.to(dt) - out.cphase
        d_lca = self.logcamp.to(dt) - out.logcamp
        return torch.cat([(self.w_cp**0.5) * 2.0 * torch.sin(d_cp / 2.0) / self.cphase_sigma.to(dt),
                          (self.w_lca**0.5) * d_lca / self.logcamp_sigma.to(dt)], dim=-1)

    def data_loss(self, x: torch.Tensor) -> torch.Tensor:
        """L(x) of paper Eq. 16, shape [B]."""
        out = self.forward_model(x)
        chi = self.chisq(x, out, with_vis=self.w_vis > 0 or self.w_amp > 0)
        loss = torch.zeros(x.shape[0], dtype=out.cphase.dtype, device=out.cphase.device)
        if self.cphase.numel():  # an empty closure set adds nothing (its chi-square is undefined, not 0)
            loss = loss + self.w_cp * self.cphase.numel() * chi["cphase"]
        if self.logcamp.numel():
            loss = loss + self.w_lca * self.logcamp.numel() * chi["logcamp"]
        if "vis" in chi:
            loss = loss + self.n_vis * (self.w_vis * chi["vis"] + self.w_amp * chi["amp"])
        if self.flux_beta > 0:
            known = torch.isfinite(self.flux)
            if bool(known.any()):
                d = (out.flux[:, known] - self.flux[known].to(out.flux.dtype)) / self.flux_sigma
                loss = loss + self.flux_beta * (d**2).mean(-1)
        return loss

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -self.data_loss(x) / self.tau**2


def evaluate_chisq(likelihood: ClosureLikelihood, x: torch.Tensor, align: bool = False,
                   with_vis: bool = False) -> dict[str, np.ndarray]:
    """Evaluation chi-squares of movies ``x`` [B, T, 1, H, W] (no gradient), optionally after per-frame flux
    alignment (which changes only the 'vis'/'amp' values: closures are scale invariant); returns numpy arrays [B]
    for 'cphase', 'logcamp' (and 'vis', 'amp') plus each one's chi~2 (paper Eq. 4) under '<name>_tilde'."""
    with torch.no_grad():
        if align:
            x = align_flux(x, likelihood.flux)
        chi = likelihood.chisq(x, with_vis=with_vis)
    res = {k: v.double().cpu().numpy() for k, v in chi.items()}
    for k in list(res):
        res[f"{k}_tilde"] = chi2_tilde(torch.as_tensor(res[k])).numpy()
    return res


def dense_matrix_bytes(n_rows: int, height: int, width: int, itemsize: int = 16) -> int:
    """Bytes of a dense [n_rows, H*W] DFT matrix (complex128 by default), the formulation this module avoids."""
    return int(n_rows) * int(height) * int(width) * int(itemsize)


__all__ = ["ClosureLikelihood", "align_flux", "chisq_cphase", "chisq_logcamp", "computable_chisq", "evaluate_chisq",
           "dense_matrix_bytes", "REFERENCE_TAU"]
