"""Ring features of black hole images, in the spirit of the EHT's REx (ring extractor) and VIDA.

Definitions (an image ``[H, W]`` in ehtim orientation: row 0 north, column 0 east; pixel size in micro-arcseconds;
polar angle theta measured east of north):

* **centre** (x0, y0): the point, searched on a grid refined twice around the image's centroid, that minimises the
  radial spread of the ring, ``std_theta r_peak(theta)``, where ``r_peak(theta)`` is the radius of peak brightness
  along the ray at angle theta between 5 uas and 0.4 of the field of view (REx's centre criterion);
* **diameter** d = 2 r_pk, r_pk the radius of peak brightness of the azimuthally averaged profile
  ``I(r) = mean_theta I(r, theta)`` about that centre (parabolic refinement between samples), uas;
* **fractional width** = FWHM / d, FWHM the full width at half maximum of ``I(r)`` around its peak (linear
  interpolation of the half-maximum crossings; on the inner side the profile at r = 0 bounds it);
* **position angle** PA = arg sum_theta B(theta) e^{i theta} of the ring brightness ``B(theta)`` (the image
  averaged over radii r_pk +- FWHM / 2 along each ray): the direction of the brightness peak, degrees east of north
  in (-180, 180];
* **asymmetry** A = (B_bright - B_dim) / (B_bright + B_dim), B_bright the ring brightness summed over the half
  within 90 degrees of PA and B_dim over the other half: the contrast of the brightest half (0 for a uniform ring;
  2a/pi for ``B = 1 + a cos(theta - PA)``).

``fit_ring(image, psize_uas)`` returns a ``RingFit``; ``fit_rings(movies, psize_uas)`` fits ``[..., H, W]`` stacks.
Frames with no positive flux give NaN for every feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import map_coordinates

N_THETA = 72
R_MIN_UAS = 5.0
FEATURES = ("diameter", "fractional_width", "position_angle", "asymmetry")
UNITS = {"diameter": "uas", "fractional_width": "1", "position_angle": "deg east of north", "asymmetry": "1"}


@dataclass(frozen=True)
class RingFit:
    """Ring features of one image (module docstring): diameter and FWHM in uas, PA in degrees east of north,
    centre offsets (east, north) in uas from the image centre."""

    diameter: float
    fwhm: float
    position_angle: float
    asymmetry: float
    centre_east: float
    centre_north: float

    @property
    def fractional_width(self) -> float:
        return self.fwhm / self.diameter if self.diameter > 0 else float("nan")

    def as_dict(self) -> dict[str, float]:
        return {"diameter": self.diameter, "fractional_width": self.fractional_width,
                "position_angle": self.position_angle, "asymmetry": self.asymmetry}


_NAN = RingFit(*(float("nan"),) * 6)


def _polar(image: np.ndarray, row: float, col: float, radii_px: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Image sampled on rays from (row, col): ``[len(theta), len(radii)]`` (bilinear; 0 outside the image)."""
    rows = row - np.cos(theta)[:, None] * radii_px[None, :]  # north = decreasing row
    cols = col - np.sin(theta)[:, None] * radii_px[None, :]  # east = decreasing column
    return map_coordinates(image, [rows.ravel(), cols.ravel()], order=1, mode="constant",
                           cval=0.0).reshape(rows.shape)


def _peak(profile: np.ndarray, radii: np.ndarray) -> float:
    """Radius of the maximum of a 1-D profile with a parabolic refinement between samples."""
    k = int(np.argmax(profile))
    if 0 < k < len(profile) - 1:
        a, b, c = profile[k - 1], profile[k], profile[k + 1]
        den = a - 2 * b + c
        shift = 0.5 * (a - c) / den if den < 0 else 0.0
        return float(radii[k] + shift * (radii[1] - radii[0]))
    return float(radii[k])


def _radial_spread(image: np.ndarray, row: float, col: float, radii_px: np.ndarray, theta: np.ndarray) -> float:
    """std over rays of the radius of peak brightness (radii_px excludes the smallest radii: a centre on the ring
    itself would otherwise peak at r = 0 on every ray)."""
    polar = _polar(image, row, col, radii_px, theta)
    peaks = radii_px[np.argmax(polar, axis=1)]
    return float(np.std(peaks))


def _fwhm(profile: np.ndarray, radii: np.ndarray, r_pk: float) -> float:
    """Full width at half maximum of ``profile`` around its peak (linear interpolation of the crossings)."""
    k = int(np.argmax(profile))
    half = 0.5 * profile[k]
    outer = radii[-1]
    for j in range(k, len(profile) - 1):
        if profile[j + 1] < half <= profile[j]:
            outer = radii[j] + (profile[j] - half) / (profile[j] - profile[j + 1]) * (radii[j + 1] - radii[j])
            break
    inner = radii[0]
    for j in range(k, 0, -1):
        if profile[j - 1] < half <= profile[j]:
            inner = radii[j] - (profile[j] - half) / (profile[j] - profile[j - 1]) * (radii[j] - radii[j - 1])
            break
    return float(outer - inner)


def fit_ring(image: np.ndarray, psize_uas: float, r_max_uas: float | None = None, n_theta: int = N_THETA,
             r_min_uas: float = R_MIN_UAS) -> RingFit:
    """Ring features of ``image`` [H, W] (ehtim orientation, any positive units) with pixels of ``psize_uas``
    micro-arcseconds (module docstring: definitions). ``r_max_uas``: largest radius searched (default: 0.4 of the
    field of view); ``r_min_uas``: smallest radius of the per-ray peaks in the centre search (REx's search
    annulus, default 5 uas)."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"fit_ring: expected an image [H, W], got shape {img.shape}")
    if not psize_uas > 0:
        raise ValueError(f"fit_ring: psize_uas must be positive, got {psize_uas}")
    img = np.where(np.isfinite(img), np.clip(img, 0.0, None), 0.0)
    total = img.sum()
    if not total > 0:
        return _NAN
    h, w = img.shape
    r_max_px = (0.4 * min(h, w) * psize_uas if r_max_uas is None else r_max_uas) / psize_uas
    radii = np.arange(0.0, r_max_px, 0.25)
    theta = np.arange(n_theta) * (2 * np.pi / n_theta)
    rr, cc = np.mgrid[:h, :w]
    row, col = float((rr * img).sum() / total), float((cc * img).sum() / total)
    annulus = radii[radii * psize_uas >= r_min_uas]
    for step, half in ((2.0, 3), (0.5, 3), (0.125, 3)):  # search grids: +-6 px, +-1.5 px, +-0.375 px
        offs = np.arange(-half, half + 1) * step
        best = min((_radial_spread(img, row + dr, col + dc, annulus, theta), dr, dc) for dr in offs for dc in offs)
        row, col = row + best[1], col + best[2]
    polar = _polar(img, row, col, radii, theta)
    profile = polar.mean(axis=0)
    r_pk = _peak(profile, radii)
    fwhm = _fwhm(profile, radii, r_pk)
    band = np.abs(radii - r_pk) <= max(fwhm / 2.0, 1.0)
    bright = polar[:, band].mean(axis=1)  # B(theta)
    pa = float(np.angle(np.sum(bright * np.exp(1j * theta))))
    near = np.cos(theta - pa) > 0
    near_sum, far_sum = bright[near].sum(), bright[~near].sum()
    asym = (near_sum - far_sum) / (near_sum + far_sum) if near_sum + far_sum > 0 else float("nan")
    return RingFit(diameter=2 * r_pk * psize_uas, fwhm=fwhm * psize_uas, position_angle=float(np.degrees(pa)),
                   asymmetry=float(asym), centre_east=((w - 1) / 2 - col) * psize_uas,
                   centre_north=((h - 1) / 2 - row) * psize_uas)


def fit_rings(movies: np.ndarray, psize_uas: float) -> dict[str, np.ndarray]:
    """Ring features of every frame of ``movies`` [..., H, W]: ``{feature: [...]}`` for ``FEATURES``."""
    arr = np.asarray(movies, dtype=np.float64)
    flat = arr.reshape(-1, *arr.shape[-2:])
    fits = [fit_ring(f, psize_uas).as_dict() for f in flat]
    return {k: np.array([f[k] for f in fits]).reshape(arr.shape[:-2]) for k in FEATURES}
