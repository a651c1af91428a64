"""Synthetic Sgr A*-like movies: a thick, asymmetric ring with Keplerian hot spots, flux variability and texture.

Physical model (FACTS s.4; EHT Sgr A* Papers I, IV): Sgr A* has GM/c^3 ~ 20 s and an angular gravitational radius
theta_g ~ 5 uas; the ring diameter is 51.8 +- 2.3 uas, its FWHM thickness 30-50 % of the diameter. Per video we draw

* ring: diameter D ~ N(51.8, 2.3) uas, FWHM w = f D with f ~ U(0.3, 0.5), brightness asymmetry
  A ~ U(0.1, 0.8) toward position angle PA (east of north) that drifts at a random rate (+-60 deg/h);
* hot spots (0-2): orbit radius r ~ U(5, 9) in units of theta_g = D / (2 sqrt 27) (the photon-ring scale); period
  P = 2 pi r^{3/2} GM/c^3 (Keplerian: ~30 min at 6 M, ~50 min at 8 M, so a 6 M spot moves ~19 deg per 102 s frame);
  orbit inclination cos i ~ U(0.3, 1), orbit position angle, sense of rotation, FWHM size U(1, 2) theta_g, flux
  fraction U(0.03, 0.15) of the ring (Doppler-boosted by
  1 + 0.6 sin(phase));
* variability: total flux F(t) = F0 exp(s n(t) - s^2/2), F0 ~ U(1.5, 3.0) Jy, s ~ U(0.05, 0.3), n(t) a unit
  Ornstein-Uhlenbeck process with time scale ~ U(0.2, 1) h;
* texture: log-normal azimuthal and radial modulation exp(sum_m a_m cos(m (theta - Omega t) + psi_m) + ...) with
  a_m ~ m^{-1.5}, rotating at the orbital speed of the ring (optional, ``texture`` amplitude 0 switches it off).

Rendering is vectorised over a chunk of videos in torch (float32). Each video's parameters come from its own
generator ``numpy.random.default_rng([seed, index])``, so video i is the same whatever the chunk size or number of
videos. Frames are in Jy/pixel, ehtim orientation (row 0 north, column 0 east), square pixels of fov/npix.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

RADPERUAS = math.pi / 180.0 / 3600.0 / 1e6
TG_SECONDS = 20.0  # GM/c^3 of Sgr A* (4e6 solar masses)


@dataclass(frozen=True)
class MovieGeometry:
    """Movie grid: frames, pixels per side, field of view (uas), frame cadence (s)."""

    frames: int = 64
    npix: int = 64
    fov_uas: float = 128.0
    frame_dt_s: float = 102.0

    @property
    def psize_rad(self) -> float:
        return self.fov_uas * RADPERUAS / self.npix


@dataclass(frozen=True)
class HotSpot:
    radius_m: float  # orbit radius in gravitational radii
    period_s: float
    phase0_rad: float
    direction: int  # +1 counter-clockwise on the sky, -1 clockwise
    cos_incl: float
    orbit_pa_rad: float
    size_uas: float
    brightness: float  # peak flux fraction relative to the ring


@dataclass(frozen=True)
class MovieParams:
    diameter_uas: float
    width_uas: float
    asymmetry: float
    pa_rad: float
    pa_drift_rad_per_hr: float
    flux_mean_jy: float
    flux_log_sigma: float
    flux_timescale_hr: float
    texture_amp: float
    hot_spots: tuple[HotSpot, ...]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hot_spots"] = [asdict(h) for h in self.hot_spots]
        return d


def draw_params(rng: np.random.Generator, texture: float = 0.3, max_spots: int = 2) -> MovieParams:
    """Draw the physical parameters of one movie (module docstring gives the distributions)."""
    d = float(np.clip(rng.normal(51.8, 2.3), 44.0, 60.0))
    theta_g = d / (2 * math.sqrt(27.0))
    spots = []
    for _ in range(int(rng.integers(0, max_spots + 1))):
        r = float(rng.uniform(5.0, 9.0))
        spots.append(HotSpot(radius_m=r, period_s=2 * math.pi * r**1.5 * TG_SECONDS,
                             phase0_rad=float(rng.uniform(0, 2 * math.pi)), direction=int(rng.choice([-1, 1])),
                             cos_incl=float(rng.uniform(0.3, 1.0)), orbit_pa_rad=float(rng.uniform(0, 2 * math.pi)),
                             size_uas=float(rng.uniform(1.0, 2.0) * theta_g),
                             brightness=float(rng.uniform(0.03, 0.15))))
    return MovieParams(diameter_uas=d, width_uas=float(rng.uniform(0.3, 0.5) * d),
                       asymmetry=float(rng.uniform(0.1, 0.8)), pa_rad=float(rng.uniform(0, 2 * math.pi)),
                       pa_drift_rad_per_hr=float(math.radians(rng.uniform(-60, 60))),
                       flux_mean_jy=float(rng.uniform(1.5, 3.0)), flux_log_sigma=float(rng.uniform(0.05, 0.3)),
                       flux_timescale_hr=float(rng.uniform(0.2, 1.0)), texture_amp=float(texture * rng.uniform(0.5, 1)),
                       hot_spots=tuple(spots))


def _ou_path(rng: np.random.Generator, n: int, dt_hr: float, tau_hr: float) -> np.ndarray:
    """Unit-variance stationary Ornstein-Uhlenbeck samples at n steps of dt."""
    a = math.exp(-dt_hr / tau_hr)
    z = rng.standard_normal(n)
    out = np.empty(n)
    out[0] = z[0]
    for k in range(1, n):
        out[k] = a * out[k - 1] + math.sqrt(1 - a * a) * z[k]
    return out


def render(params: list[MovieParams], rngs: list[np.random.Generator], geom: MovieGeometry,
           n_modes: int = 6) -> torch.Tensor:
    """Render movies [B, T, H, W] (float32, Jy/pixel) for a chunk of parameter sets (one generator each)."""
    t, n = geom.frames, geom.npix
    c = (n - 1) / 2.0
    step = geom.fov_uas / n
    y = ((c - torch.arange(n, dtype=torch.float32)) * step)[:, None].expand(n, n)  # north, uas
    x = ((c - torch.arange(n, dtype=torch.float32)) * step)[None, :].expand(n, n)  # east, uas
    r = torch.hypot(x, y)
    th = torch.atan2(x, y)  # position angle east of north
    times_hr = torch.arange(t, dtype=torch.float32) * geom.frame_dt_s / 3600.0

    def col(vals):
        return torch.tensor(vals, dtype=torch.float32)[:, None, None, None]

    radius = col([p.diameter_uas / 2 for p in params])
    sig = col([p.width_uas / (2 * math.sqrt(2 * math.log(2))) for p in params])
    pa = col([p.pa_rad for p in params]) + col([p.pa_drift_rad_per_hr for p in params]) * times_hr[None, :, None, None]
    asym = col([p.asymmetry for p in params])
    profile = torch.exp(-0.5 * ((r - radius) / sig) ** 2)  # [B, 1, H, W]
    # cos(th - pa) = cos th cos pa + sin th sin pa: no per-frame trigonometry on the pixel grid
    img = profile * (1 + asym * (torch.cos(th) * torch.cos(pa) + torch.sin(th) * torch.sin(pa)))  # [B, T, H, W]
    # texture: azimuthal modes rotating at the ring's Keplerian angular speed, plus a radial mode
    tex_amp = col([p.texture_amp for p in params])
    if float(tex_amp.abs().max()) > 0:
        m = torch.arange(1, n_modes + 1, dtype=torch.float32)
        coef = torch.tensor(np.stack([rg.standard_normal(n_modes) for rg in rngs]), dtype=torch.float32) * m**-1.5
        psi = torch.tensor(np.stack([rg.uniform(0, 2 * np.pi, n_modes) for rg in rngs]), dtype=torch.float32)
        omega = 2 * math.pi / (2 * math.pi * math.sqrt(27.0) ** 1.5 * TG_SECONDS) * 3600.0  # rad/h at r = sqrt(27) M
        # sum_m c_m cos(m (th - omega t) + psi_m) = sum_m [cos(m th) a_m(t) - sin(m th) b_m(t)] : one matmul
        arg = psi[:, None, :] - m * omega * times_hr[None, :, None]  # [B, T, M]
        a, b = coef[:, None, :] * torch.cos(arg), coef[:, None, :] * torch.sin(arg)
        basis = torch.cat([torch.cos(m[:, None, None] * th), -torch.sin(m[:, None, None] * th)])  # [2M, H, W]
        field = (torch.cat([a, b], dim=-1) @ basis.reshape(2 * n_modes, -1)).reshape(len(params), t, n, n)
        rad_phase = torch.tensor([rg.uniform(0, 2 * np.pi) for rg in rngs], dtype=torch.float32)[:, None, None, None]
        field = field + 0.5 * torch.cos(2 * math.pi * r / (2 * radius) + rad_phase)
        img = img * torch.exp(tex_amp * field)
    img = img / img.sum(dim=(-2, -1), keepdim=True)
    # hot spots (flux fractions relative to the ring)
    for i, p in enumerate(params):
        theta_g = p.diameter_uas / (2 * math.sqrt(27.0))
        for h in p.hot_spots:
            phase = h.phase0_rad + h.direction * 2 * math.pi * times_hr * 3600.0 / h.period_s  # [T]
            ox, oy = h.radius_m * theta_g * torch.cos(phase), h.radius_m * theta_g * torch.sin(phase) * h.cos_incl
            ca, sa = math.cos(h.orbit_pa_rad), math.sin(h.orbit_pa_rad)
            sx, sy = ca * ox - sa * oy, sa * ox + ca * oy
            s = h.size_uas / (2 * math.sqrt(2 * math.log(2)))
            blob = torch.exp(-0.5 * ((x[None] - sx[:, None, None]) ** 2 + (y[None] - sy[:, None, None]) ** 2) / s**2)
            blob = blob / (2 * math.pi * (s / step) ** 2)  # unit total flux per spot
            boost = 1 + 0.6 * torch.sin(phase)
            img[i] = img[i] + h.brightness * boost[:, None, None] * blob
    flux = torch.tensor(np.stack([
        p.flux_mean_jy * np.exp(p.flux_log_sigma * _ou_path(rg, t, geom.frame_dt_s / 3600.0, p.flux_timescale_hr)
                                - 0.5 * p.flux_log_sigma**2) for p, rg in zip(params, rngs, strict=True)]),
        dtype=torch.float32)  # [B, T]
    img = img / img.sum(dim=(-2, -1), keepdim=True) * flux[:, :, None, None]
    return img


def generate_movies(n: int, geom: MovieGeometry | None = None, seed: int = 0, texture: float = 0.3,
                    chunk: int = 64, start: int = 0) -> tuple[np.ndarray, list[dict]]:
    """Make ``n`` movies; returns (array [n, T, 1, H, W] float32 Jy/pixel, per-video parameter dicts).

    Movie i uses ``numpy.random.default_rng([seed, start + i])`` only.
    """
    geom = geom or MovieGeometry()
    if n < 0 or geom.frames < 1 or geom.npix < 4:
        raise ValueError(f"generate_movies: need n >= 0, frames >= 1, npix >= 4; got {n}, {geom.frames}, {geom.npix}")
    out = np.empty((n, geom.frames, 1, geom.npix, geom.npix), dtype=np.float32)
    meta = []
    for lo in range(0, n, chunk):
        idx = range(lo, min(n, lo + chunk))
        rngs = [np.random.default_rng([seed, start + i]) for i in idx]
        params = [draw_params(rg, texture) for rg in rngs]
        out[lo:lo + len(idx), :, 0] = render(params, rngs, geom).numpy()
        meta.extend({"index": start + i, **p.to_dict()} for i, p in zip(idx, params, strict=True))
    return out, meta
