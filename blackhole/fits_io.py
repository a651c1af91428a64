"""FITS export/import of movie frames and conversion to ehtim ``Movie`` objects.

Frames in memory are ehtim-oriented ``[H, W]`` arrays (row 0 north, column 0 east) in Jy/pixel. On disk each frame is
a FITS primary image in the astronomical convention (first row south; RA decreasing with column: CDELT1 < 0) with
a SIN-projection WCS centred on the source, and the ehtim keywords (OBSRA, OBSDEC, FREQ, MJD) so that
``ehtim.image.load_fits`` reads the file back to the same ``imarr()``. Frame times: ``MJD`` is the fractional
modified Julian date of the frame (ehtim takes the frame's UTC hours from its fraction: ``eh.movie.load_fits(
folder + "/mean_", T)`` gives a ``Movie`` with the right times), and the standard keywords ``MJD-OBS`` (same value),
``DATE-OBS`` (ISO 8601 UTC date and time), ``TIMESYS = 'UTC'``; extra keywords: TIME (UTC hours from the MJD day),
BUNIT. Writes are atomic (temporary file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from blackhole.array import MJD_2017_APR_07, RF_HZ, SGRA_DEC_DEG, SGRA_RA_HOURS
from blackhole.ehtim_compat import import_ehtim
from common.io import atomic_path


def frame_header(shape: tuple[int, int], psize: float, time_hr: float, ra_hours: float = SGRA_RA_HOURS,
                 dec_deg: float = SGRA_DEC_DEG, rf_hz: float = RF_HZ, mjd: int = MJD_2017_APR_07,
                 source: str = "SgrA") -> fits.Header:
    """FITS header of one frame [H, W]: pixel size ``psize`` radians, time ``time_hr`` UTC hours counted from the
    start of day ``mjd``."""
    from astropy.time import Time

    h, w = shape
    mjd_frame = int(mjd) + float(time_hr) / 24.0
    deg = np.degrees(psize)
    hdr = fits.Header()
    hdr["OBJECT"] = source
    hdr["CTYPE1"], hdr["CTYPE2"] = "RA---SIN", "DEC--SIN"
    hdr["CDELT1"], hdr["CDELT2"] = -deg, deg
    hdr["CRPIX1"], hdr["CRPIX2"] = w / 2.0 + 0.5, h / 2.0 + 0.5
    hdr["CRVAL1"], hdr["CRVAL2"] = ra_hours * 15.0, dec_deg
    hdr["CUNIT1"], hdr["CUNIT2"] = "deg", "deg"
    hdr["OBSRA"], hdr["OBSDEC"] = ra_hours * 15.0, dec_deg
    hdr["FREQ"] = rf_hz
    hdr["MJD"] = (mjd_frame, "modified Julian date of the frame (UTC)")
    hdr["MJD-OBS"] = (mjd_frame, "modified Julian date of the frame (UTC)")
    hdr["DATE-OBS"] = (Time(mjd_frame, format="mjd", scale="utc").isot, "UTC date and time of the frame")
    hdr["TIMESYS"] = "UTC"
    hdr["TIME"] = (float(time_hr), f"UTC hours from the start of MJD {int(mjd)}")
    hdr["BUNIT"] = "JY/PIXEL"
    hdr["STOKES"] = "I"
    return hdr


def write_fits_frame(frame: np.ndarray, path: str | Path, psize: float, time_hr: float, **meta) -> Path:
    """Write one ehtim-oriented frame [H, W] (Jy/pixel) as FITS at ``path`` (atomic)."""
    frame = np.asarray(frame, dtype=np.float64)
    if frame.ndim != 2 or not np.isfinite(frame).all():
        raise ValueError(f"write_fits_frame {path}: expected a finite [H, W] frame, got shape {frame.shape}")
    path = Path(path)
    hdu = fits.PrimaryHDU(frame[::-1, :], header=frame_header(frame.shape, psize, time_hr, **meta))
    with atomic_path(path, suffix=".tmp") as tmp:
        hdu.writeto(tmp, overwrite=True)
    return path


def write_fits_movie(movie: np.ndarray, folder: str | Path, psize: float, times_hr: np.ndarray,
                     prefix: str = "frame", **meta) -> list[Path]:
    """Write a movie [T, H, W] as ``folder/{prefix}_{k:04d}.fits``; returns the paths."""
    movie = np.asarray(movie)
    times_hr = np.asarray(times_hr, dtype=np.float64)
    if movie.ndim != 3 or len(times_hr) != movie.shape[0]:
        raise ValueError(f"write_fits_movie: need movie [T, H, W] and T times, got {movie.shape} and {times_hr.shape}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [write_fits_frame(f, folder / f"{prefix}_{k:04d}.fits", psize, t, **meta)
            for k, (f, t) in enumerate(zip(movie, times_hr, strict=True))]


def frame_meta(meta) -> dict:
    """Keyword arguments of :func:`frame_header` (ra_hours, dec_deg, rf_hz, mjd, source) from an observation's
    ``blackhole.measurements.ObsMeta`` (None: the defaults, Sgr A* on 2017 April 7)."""
    if meta is None:
        return {}
    return {"ra_hours": meta.ra_hours, "dec_deg": meta.dec_deg, "rf_hz": meta.rf_hz, "mjd": meta.mjd,
            "source": meta.source or "SgrA"}


def read_fits_frame(path: str | Path) -> tuple[np.ndarray, float]:
    """Read a FITS image into an ehtim-oriented frame [H, W] and its pixel size (radians, from CDELT2)."""
    path = Path(path)
    try:
        with fits.open(path) as hdul:
            data = hdul[0].data
            hdr = hdul[0].header
    except (OSError, ValueError) as exc:
        raise ValueError(f"FITS file {path}: cannot be read ({exc})") from exc
    if data is None:
        raise ValueError(f"FITS file {path}: primary HDU holds no image")
    data = np.squeeze(np.asarray(data, dtype=np.float64))
    if data.ndim != 2:
        raise ValueError(f"FITS file {path}: expected a 2-D image, got shape {data.shape}")
    psize = abs(float(hdr.get("CDELT2", hdr.get("CDELT1", np.nan))))
    flip_y = float(hdr.get("CDELT2", 1.0)) > 0  # rows go south -> north on disk
    frame = data[::-1, :] if flip_y else data
    if float(hdr.get("CDELT1", -1.0)) > 0:  # RA increasing with column: mirror to put east at column 0
        frame = frame[:, ::-1]
    return np.ascontiguousarray(frame), float(np.radians(psize))


def to_ehtim_movie(movie: np.ndarray, psize: float, times_hr: np.ndarray, ra_hours: float = SGRA_RA_HOURS,
                   dec_deg: float = SGRA_DEC_DEG, rf_hz: float = RF_HZ, mjd: int = MJD_2017_APR_07):
    """ehtim ``Movie`` of ``movie`` [T, H, W] (Jy/pixel, ehtim orientation) at ``times_hr``; frames are held
    constant between timestamps (interp='nearest')."""
    eh = import_ehtim()
    movie = np.asarray(movie, dtype=np.float64)
    return eh.movie.Movie(movie, times=np.asarray(times_hr, dtype=np.float64), psize=psize, ra=ra_hours,
                          dec=dec_deg, rf=rf_hz, mjd=mjd, interp="nearest")
