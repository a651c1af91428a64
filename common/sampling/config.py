"""DAPS sampler settings: a frozen dataclass mirroring the keyword arguments of :func:`daps_sample`, loaded from YAML.

The presets ``PRESETS / "daps_blackhole.yaml"`` and ``PRESETS / "daps_mri.yaml"`` (``common/sampling/presets/``,
package data) reproduce STeP Table 3 (paper App. A) and the reference settings of ``shared/FACTS.md`` s.1. A preset
file is a YAML mapping whose keys are the fields of :class:`DAPSConfig`, plus one optional informational section
``likelihood:`` (e.g. the temperature ``tau`` that the caller's likelihood must use with this preset). The sampler
itself never reads that section: temperature belongs to the likelihood (see :func:`load_daps_preset`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PRIOR_TERMS = ("exact", "gaussian")
DATA_STEPS = ("latent", "pixel", "linear-gaussian")
PIXEL_KERNELS = ("gauss-newton", "langevin")
PERTURBATIONS = ("both", "data", "none")
RESERVED_SECTIONS = ("likelihood",)


@dataclass(frozen=True)
class DAPSConfig:
    """Settings of DAPS (paper Algorithm 1, Eq. 8-10, Table 3). Defaults are the black-hole column of Table 3.

    Annealing (outer loop): ``annealing_steps`` = N noise levels on the poly-``rho`` grid from ``sigma_max`` to
    ``sigma_min`` (first N points of an N+1 grid, then 0; :func:`common.schedules.annealing_sigmas`).
    PF-ODE (Eq. 8, inner solve, no gradient): Euler on a fresh poly-``rho`` grid of ``ode_steps`` points from the
    current annealing sigma down to ``ode_sigma_min`` (``ode_steps - 1`` denoiser calls).
    MCMC on p(z0 | z_t, y) (Eq. 9-10): ``mcmc_steps`` = M updates with step size
    ``lr_k = lr * (1 + k / (N + 1) * (lr_min_ratio - 1))`` at annealing step k (0-based). ``momentum`` m = 0 is the
    Langevin kernel ``z <- z + lr g + sqrt(2 lr) eps``; 0 < m < 1 is the HMC kernel
    ``v <- m v + sqrt(lr) g + sqrt(2 (1 - m)) eps; z <- z + sqrt(lr) v`` (Eq. 9-10 with eta = sqrt(lr),
    m = 1 - gamma eta), with v ~ N(0, I) redrawn at every annealing step.
    ``prior_term``: ``"exact"`` uses ``(z_t - z0) / sigma_k^2 + score(z0, prior_sigma)`` recomputed at every MCMC step
    (one denoiser call per step); ``"gaussian"`` uses ``(z0_ode - z0) / r_k^2`` with ``r_k = sigma_k`` (the DAPS
    reference's choice: p(z0 | z_t) ~ N(z0_ode, sigma_k^2 I); no denoiser call inside the MCMC).
    ``grad_clamp``: if set, the likelihood gradient is clamped element-wise to [-grad_clamp, grad_clamp]. The STeP
    reference clamps dL/dz of L = ||A(D(z)) - y||^2 to [-1, 1] and then divides by tau^2; with our
    ``log_likelihood = -L / tau^2`` that is exactly ``grad_clamp = 1 / tau^2``.
    ``progress``: show a tqdm bar over the annealing steps.

    Data-consistency step (:mod:`common.sampling.consistency`; the fields above from ``mcmc_steps`` to
    ``grad_clamp`` belong to the ``latent`` one): ``data_step`` ``"latent"`` (the paper's Langevin/HMC through the
    decoder), ``"pixel"`` (pixel space around the decoded estimate; ``pixel_kernel`` ``"gauss-newton"`` for
    least-squares likelihoods or ``"langevin"`` for any differentiable one) or ``"linear-gaussian"`` (exact
    perturb-and-solve draw for linear operators with Gaussian noise). Pixel-space prior radius
    ``r_k = sqrt((c g sigma_k)^2 + radius_floor^2)`` (g the measured decoder gain, network units; c =
    ``radius_scale``: 1 is the DAPS reference's std of p(z_0 | z_t) = sigma_k; a trained prior's denoising error is
    a fraction of sigma_k, but the best c depends on the data's SNR: on held-out cine c = 0.5 gained 0.45 dB PSNR at
    k-space noise 0.005 and lost 0.2-0.5 dB at 0.01-0.02, benchmarks/RESULTS.md eighth session, so the presets keep
    1); ``smooth_px``:
    std (pixels) of the Gaussian shape of the pixel Gauss-Newton step's prior correction (0: white).
    ``dc_iters``: Gauss-Newton iterations (or Langevin steps) per annealing step, ``dc_final_iters`` at the last
    one; ``cg_iters``: conjugate-gradient iterations per solve. ``perturb``: ``"both"`` (data and prior centre:
    exact for linear-Gaussian models), ``"data"`` (data only), ``"none"`` (conditional mean / mode).
    ``temperature``: multiplier of the data's own noise level (1 = calibrated: the error bars of the data, or the
    noise estimated from them) for the pixel and linear-Gaussian steps; the latent step's temperature is the
    task's reference tau (paper presets).
    """

    annealing_steps: int = 25
    sigma_max: float = 100.0
    sigma_min: float = 0.01
    ode_steps: int = 20
    mcmc_steps: int = 60
    lr: float = 1.2e-5
    lr_min_ratio: float = 0.015
    momentum: float = 0.0
    prior_term: str = "exact"
    prior_sigma: float = 0.01
    ode_sigma_min: float = 1e-5
    rho: float = 7.0
    grad_clamp: float | None = None
    progress: bool = False
    data_step: str = "latent"
    pixel_kernel: str = "gauss-newton"
    radius_floor: float = 0.03
    radius_scale: float = 1.0
    smooth_px: float = 0.0
    dc_iters: int = 4
    dc_final_iters: int = 15
    cg_iters: int = 30
    perturb: str = "data"
    temperature: float = 1.0

    def __post_init__(self) -> None:
        problems = []

        def need(ok: bool, msg: str) -> None:
            if not ok:
                problems.append(msg)

        for name in ("annealing_steps", "ode_steps", "mcmc_steps", "dc_iters", "dc_final_iters", "cg_iters"):
            v = getattr(self, name)
            need(isinstance(v, int) and not isinstance(v, bool), f"{name} must be an int, got {v!r}")
        for name in ("sigma_max", "sigma_min", "lr", "lr_min_ratio", "momentum", "prior_sigma", "ode_sigma_min", "rho",
                     "radius_floor", "radius_scale", "temperature", "smooth_px"):
            v = getattr(self, name)
            need(_is_real(v) and math.isfinite(v), f"{name} must be a finite number, got {v!r}")
        if problems:
            raise ValueError("DAPSConfig: " + "; ".join(problems))
        need(self.annealing_steps >= 1, f"annealing_steps must be >= 1, got {self.annealing_steps}")
        need(self.ode_steps >= 2, f"ode_steps must be >= 2 (grid points incl. both ends), got {self.ode_steps}")
        need(self.mcmc_steps >= 0, f"mcmc_steps must be >= 0, got {self.mcmc_steps}")
        need(self.sigma_max > self.sigma_min > 0,
             f"need sigma_max > sigma_min > 0, got {self.sigma_max}, {self.sigma_min}")
        need(self.lr > 0, f"lr must be > 0, got {self.lr}")
        need(self.lr_min_ratio > 0, f"lr_min_ratio must be > 0, got {self.lr_min_ratio}")
        need(0.0 <= self.momentum < 1.0, f"momentum must be in [0, 1), got {self.momentum}")
        need(self.prior_term in PRIOR_TERMS, f"prior_term must be one of {PRIOR_TERMS}, got {self.prior_term!r}")
        need(self.prior_sigma > 0, f"prior_sigma must be > 0, got {self.prior_sigma}")
        need(self.ode_sigma_min > 0, f"ode_sigma_min must be > 0, got {self.ode_sigma_min}")
        need(self.rho > 0, f"rho must be > 0, got {self.rho}")
        gc = self.grad_clamp
        need(gc is None or (_is_real(gc) and math.isfinite(gc) and gc > 0),
             f"grad_clamp must be None or a positive number, got {gc!r}")
        need(isinstance(self.progress, bool), f"progress must be true/false, got {self.progress!r}")
        need(self.data_step in DATA_STEPS, f"data_step must be one of {DATA_STEPS}, got {self.data_step!r}")
        need(self.pixel_kernel in PIXEL_KERNELS,
             f"pixel_kernel must be one of {PIXEL_KERNELS}, got {self.pixel_kernel!r}")
        need(self.perturb in PERTURBATIONS, f"perturb must be one of {PERTURBATIONS}, got {self.perturb!r}")
        need(self.smooth_px >= 0, f"smooth_px must be >= 0, got {self.smooth_px}")
        need(self.radius_scale > 0, f"radius_scale must be > 0, got {self.radius_scale}")
        need(self.radius_floor >= 0, f"radius_floor must be >= 0, got {self.radius_floor}")
        need(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")
        need(self.dc_iters >= 1 and self.dc_final_iters >= 1 and self.cg_iters >= 1,
             f"dc_iters, dc_final_iters and cg_iters must be >= 1, got {self.dc_iters}, {self.dc_final_iters}, "
             f"{self.cg_iters}")
        if problems:
            raise ValueError("DAPSConfig: " + "; ".join(problems))

    @property
    def kernel(self) -> str:
        """``"langevin"`` when ``momentum == 0`` (HMC with m = 0 is the same update), else ``"hmc"``."""
        return "langevin" if self.momentum == 0.0 else "hmc"

    def lr_at(self, k: int) -> float:
        """Step size of annealing step ``k`` (0-based): ``lr (1 + k / (N + 1) (lr_min_ratio - 1))`` (linear decay)."""
        return self.lr * (1.0 + k / (self.annealing_steps + 1) * (self.lr_min_ratio - 1.0))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "mapping") -> DAPSConfig:
        """Build from a mapping; unknown keys raise ``ValueError`` naming them and ``source``."""
        if not isinstance(d, dict):
            raise ValueError(f"DAPSConfig from {source}: expected a mapping of settings, found {type(d).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ValueError(f"DAPSConfig from {source}: unknown key(s) {unknown}; allowed keys are {names}")
        kw = dict(d)
        for name in ("sigma_max", "sigma_min", "lr", "lr_min_ratio", "momentum", "prior_sigma", "ode_sigma_min",
                     "rho", "grad_clamp", "radius_floor", "radius_scale", "temperature", "smooth_px"):
            if isinstance(kw.get(name), int) and not isinstance(kw.get(name), bool):
                kw[name] = float(kw[name])
        try:
            return cls(**kw)
        except ValueError as e:
            raise ValueError(f"{e} (in {source})") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> DAPSConfig:
        """Load a preset file (see module docstring); the optional ``likelihood:`` section is not part of it."""
        return load_daps_preset(path)[0]


def load_daps_preset(path: str | Path) -> tuple[DAPSConfig, dict[str, Any]]:
    """Read a YAML preset: returns the :class:`DAPSConfig` and its ``likelihood:`` section (``{}`` when absent)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ValueError(f"DAPS preset {path}: cannot read file ({e})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"DAPS preset {path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"DAPS preset {path}: expected a mapping of settings, found {type(data).__name__}")
    data = dict(data)
    lik = data.pop("likelihood", None) or {}
    if not isinstance(lik, dict):
        raise ValueError(f"DAPS preset {path}: 'likelihood' must be a mapping, found {type(lik).__name__}")
    return DAPSConfig.from_dict(data, source=str(path)), lik


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
