"""Simulated EHT measurements of a movie: ideal visibilities, thermal noise, station gains and phases (paper Eq. 12).

    V_ab = g_a g_b exp(-i (phi_a - phi_b)) (I_ab(x) + n_ab),   sigma_ab = g_a g_b sigma_th,ab

as ehtim's ``add_noise`` orders it (noise first, then gains; reported sigmas scale with the gains). Here

* I_ab(x): separable DFT with triangle pulse of the movie frame at that timestamp (``forward.VisibilityModel``, f64);
* n_ab: complex Gaussian, real and imaginary parts each N(0, sigma_th^2), sigma_th from the observation (SEFDs);
* g_a(t) = sqrt(|(1 + o_a z_a) (1 + p_a e_a(t))|): z_a ~ N(0, 1) once per station with the per-station offset o_a,
  e_a(t) a Gaussian process in time with squared-exponential covariance of scale ``gain_corr_time_hr`` (0.25 h)
  and fractional gain noise p_a (reference values below, FACTS s.4);
* phi_a(t) ~ U[0, 2 pi) per station and timestamp (unknown atmospheric phases).

All randomness comes from ``numpy.random.default_rng(seed)`` (PCG64), so a seed gives the same data in every process
(ehtim's own corruption hashes strings with Python's salted ``hash()``). Opacity is taken as calibrated (ehtim's
default ``opacitycal=True``), so the reference's opacity error ``taup`` has no effect and is not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from blackhole.forward import VisibilityModel

REFERENCE_GAIN_OFFSET = {"ALMA": 0.029, "APEX": 0.028, "SMT": 0.045, "JCMT": 0.020, "LMT": 0.147, "PV": 0.050,
                         "SMA": 0.019, "SPT": 0.052}
REFERENCE_GAIN_NOISE = {"ALMA": 0.054, "APEX": 0.045, "SMT": 0.056, "JCMT": 0.030, "LMT": 0.124, "PV": 0.075,
                        "SMA": 0.028, "SPT": 0.095}


@dataclass(frozen=True)
class Corruption:
    """What to corrupt. Gain dictionaries map station -> fraction; a station not listed gets 0."""

    thermal_noise: bool = True
    gains: bool = True
    phases: bool = True
    gain_offset: dict[str, float] = field(default_factory=lambda: dict(REFERENCE_GAIN_OFFSET))
    gain_noise: dict[str, float] = field(default_factory=lambda: dict(REFERENCE_GAIN_NOISE))
    gain_corr_time_hr: float = 0.25


def ideal_visibilities(movie: np.ndarray, psize: float, u: np.ndarray, v: np.ndarray,
                       frame: np.ndarray) -> np.ndarray:
    """Noise-free visibilities [M] (complex128, Jy) of ``movie`` [T, H, W] (Jy/pixel, ehtim orientation)."""
    movie = np.asarray(movie, dtype=np.float64)
    if movie.ndim != 3:
        raise ValueError(f"ideal_visibilities: expected a movie [T, H, W], got shape {movie.shape}")
    t, h, w = movie.shape
    model = VisibilityModel(u, v, frame, t, h, w, psize)
    with torch.no_grad():
        re, im = model(torch.as_tensor(movie)[None])
    slot = model.slot.numpy()
    return re[0].numpy()[slot] + 1j * im[0].numpy()[slot]


def station_corruptions(stations: list[str], times: np.ndarray, rng: np.random.Generator,
                        cfg: Corruption) -> tuple[np.ndarray, np.ndarray]:
    """Voltage gains and phases [S, Ntimes] for ``stations`` at unique ``times`` (hours)."""
    n_s, n_t = len(stations), len(times)
    gains = np.ones((n_s, n_t))
    phases = np.zeros((n_s, n_t))
    if cfg.gains:
        dt = times[:, None] - times[None, :]
        cov = np.exp(-0.5 * dt**2 / cfg.gain_corr_time_hr**2) if cfg.gain_corr_time_hr > 0 else np.eye(n_t)
        chol = np.linalg.cholesky(cov + 1e-9 * np.eye(n_t))
        for i, s in enumerate(stations):
            const = cfg.gain_offset.get(s, 0.0) * rng.standard_normal()
            e = chol @ rng.standard_normal(n_t)
            gains[i] = np.sqrt(np.abs((1.0 + const) * (1.0 + cfg.gain_noise.get(s, 0.0) * e)))
    if cfg.phases:
        phases = rng.uniform(0.0, 2 * np.pi, size=(n_s, n_t))
    return gains, phases


def corrupt(vis: np.ndarray, sigma: np.ndarray, time: np.ndarray, t1: np.ndarray, t2: np.ndarray,
            seed: int, cfg: Corruption | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Corrupt ideal visibilities [M]; returns (visibilities [M] complex, sigmas [M]) (module docstring model)."""
    cfg = cfg or Corruption()
    rng = np.random.default_rng(seed)
    vis = np.asarray(vis, dtype=np.complex128).copy()
    sigma = np.asarray(sigma, dtype=np.float64)
    if cfg.thermal_noise:
        vis = vis + sigma * (rng.standard_normal(vis.shape) + 1j * rng.standard_normal(vis.shape))
    stations = sorted({str(s) for s in t1} | {str(s) for s in t2})
    utimes, ti = np.unique(time, return_inverse=True)
    gains, phases = station_corruptions(stations, utimes, rng, cfg)
    idx = {s: i for i, s in enumerate(stations)}
    a = np.array([idx[str(s)] for s in t1])
    b = np.array([idx[str(s)] for s in t2])
    g = gains[a, ti] * gains[b, ti]
    vis = g * np.exp(-1j * (phases[a, ti] - phases[b, ti])) * vis
    return vis, sigma * g


def simulate_observation(movie: np.ndarray, psize: float, obs_template, seed: int,
                         cfg: Corruption | None = None):
    """Observe ``movie`` [T, H, W] (Jy/pixel; one frame per timestamp of ``obs_template``, in time order).

    Returns a new ehtim ``Obsdata`` (Stokes I in ``vis``/``sigma``; Q, U, V zero) with the corrupted data.
    """
    data = np.asarray(obs_template.data).copy()
    times, frame = np.unique(data["time"], return_inverse=True)
    movie = np.asarray(movie)
    if movie.ndim != 3 or movie.shape[0] != len(times):
        raise ValueError(f"simulate_observation: movie must be [T, H, W] with T = {len(times)} (one frame per "
                         f"timestamp), got shape {movie.shape}")
    if not np.isfinite(movie).all():
        raise ValueError("simulate_observation: movie contains NaN or Inf")
    ideal = ideal_visibilities(movie, psize, data["u"], data["v"], frame)
    vis, sigma = corrupt(ideal, data["sigma"], data["time"], data["t1"], data["t2"], seed, cfg)
    data["vis"] = vis
    data["sigma"] = sigma
    for k in ("qvis", "uvis", "vvis"):
        data[k] = 0.0
    for k in ("qsigma", "usigma", "vsigma"):
        data[k] = sigma
    obs = obs_template.copy()
    obs.data = data
    return obs
