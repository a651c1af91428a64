"""Rewrite an ehtim-written uvfits file into the layouts other VLBI pipelines write (test helper).

ehtim writes ``DATA[vis, DEC, RA, IF, FREQ, STOKES(RR, LL, RL, LR), COMPLEX]`` with two DATE parameters. The
variants change one thing each, as files from EHT-HOPS, CASA/rPICARD and AIPS do: Stokes I only, RR/LL only, one
hand, the Stokes axis stepping LL -> RR, several IFs, no IF axis, one DATE parameter offset by PZERO, no INTTIM/TAU
columns, no FREQ in the antenna table header.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

VARIANTS = ("stokes_i", "rr_ll", "ll_only", "ll_rr_order", "four_ifs", "no_if_axis", "date_pzero", "no_inttim",
            "an_without_freq")


def _write(path: Path, data: np.ndarray, params: dict[str, np.ndarray], header: fits.Header, tables, axes: list,
           pzero: dict[str, float] | None = None) -> Path:
    """Write random groups ``data`` [vis, axis_n .. axis_2] with ``axes`` = [(CTYPE, CRVAL, CDELT), ...] for FITS
    axes 2..n (COMPLEX first)."""
    pzero = pzero or {}
    names = list(params)
    gd = fits.GroupData(data.astype(np.float32), parnames=[n.lstrip("_") for n in names],
                        pardata=[params[n] - pzero.get(n, 0.0) for n in names], bitpix=-32)
    hdu = fits.GroupsHDU(gd)
    for key in ("OBJECT", "OBSRA", "OBSDEC", "MJD", "DATE-OBS", "TELESCOP", "BUNIT"):
        if key in header:
            hdu.header[key] = header[key]
    for i, (ctype, crval, cdelt) in enumerate(axes, start=2):
        hdu.header[f"CTYPE{i}"], hdu.header[f"CRVAL{i}"] = ctype, crval
        hdu.header[f"CDELT{i}"], hdu.header[f"CRPIX{i}"] = cdelt, 1.0
    fits.HDUList([hdu, *tables]).writeto(path, overwrite=True)
    for i, n in enumerate(names, start=1):  # offsets written into the header only (the stored values exclude them)
        if n in pzero:
            fits.setval(path, f"PZERO{i}", value=pzero[n])
    return path


def make_variant(base: str | Path, kind: str, out: str | Path) -> Path:
    """Write ``base`` (an ehtim-written uvfits) as variant ``kind`` (one of ``VARIANTS``) to ``out``."""
    with fits.open(base) as hdul:
        prim = hdul[0]
        gd, header = prim.data, prim.header
        data = np.array(gd["DATA"], dtype=np.float64)  # [vis, 1, 1, IF, FREQ, 4, 3]
        names = [str(p) for p in gd.parnames]
        params = {}
        for i, n in enumerate(names):
            key = n if n not in params else "_" + n
            params[key] = np.asarray(gd.par(i), dtype=np.float64)
        tables = [h.copy() for h in hdul[1:]]
        hdr = header.copy()
    freq = (hdr["CRVAL4"], hdr["CDELT4"])
    full_axes = [("COMPLEX", 1.0, 1.0), ("STOKES", -1.0, -1.0), ("FREQ", *freq), ("IF", 1.0, 1.0),
                 ("RA", hdr.get("OBSRA", 0.0), 1.0), ("DEC", hdr.get("OBSDEC", 0.0), 1.0)]
    axes, pzero = full_axes, None
    if kind == "stokes_i":
        data = data[..., :1, :]
        axes = [full_axes[0], ("STOKES", 1.0, 1.0), *full_axes[2:]]
    elif kind == "rr_ll":
        data = data[..., :2, :]
    elif kind == "ll_only":
        data = data[..., 1:2, :]
        axes = [full_axes[0], ("STOKES", -2.0, -1.0), *full_axes[2:]]
    elif kind == "ll_rr_order":
        data = data[..., [1, 0], :]
        axes = [full_axes[0], ("STOKES", -2.0, 1.0), *full_axes[2:]]
    elif kind == "four_ifs":
        data = np.repeat(data, 4, axis=3)
        data[..., 2] /= 4.0  # four IFs of a quarter of the weight: the inverse-variance average is unchanged
        axes = [full_axes[0], full_axes[1], ("FREQ", freq[0], freq[1] / 4.0), *full_axes[3:]]
    elif kind == "no_if_axis":
        data = data[:, :, :, 0]
        axes = [a for a in full_axes if a[0] != "IF"]
    elif kind == "date_pzero":
        jd = params.pop("DATE") + params.pop("_DATE")
        day = float(np.floor(jd.min() - 0.5) + 0.5)
        rest = {k: v for k, v in params.items()}
        params = {k: rest[k] for k in ("UU---SIN", "VV---SIN", "WW---SIN", "BASELINE")}
        params["DATE"] = jd
        params.update({k: v for k, v in rest.items() if k not in params})
        pzero = {"DATE": day}
    elif kind == "no_inttim":
        params = {k: v for k, v in params.items() if k not in ("INTTIM", "TAU1", "TAU2")}
    elif kind == "an_without_freq":
        for t in tables:
            if t.name == "AIPS AN":
                del t.header["FREQ"]
    else:
        raise ValueError(f"unknown variant {kind!r}; expected one of {VARIANTS}")
    return _write(Path(out), data, params, hdr, tables, axes, pzero)
