"""Bring the uvfits layouts of different VLBI pipelines to the one layout ehtim 1.3.2's reader indexes blindly.

ehtim's ``load_obs_uvfits`` assumes a 7-axis random-groups array ``DATA[vis, DEC, RA, IF, FREQ, STOKES, COMPLEX]``
with the Stokes axis at FITS axis 3 in the order RR, LL, RL, LR (or I), two ``DATE`` parameters, ``UU``/``VV``
parameters under one of three names, a source name in ``OBJECT`` and the frequency in the antenna table's header.
Files from EHT-HOPS, CASA/rPICARD, AIPS and ehtim differ in exactly these places: a missing IF (or RA/DEC) axis,
any number of IFs, circular pairs RR/LL only, a single polarisation, native Stokes I, the Stokes axis stepping the
other way (LL before RR), a single ``DATE`` parameter with the fractional day in a second one or not, no
``INTTIM``/``TAU`` columns, no ``FREQ`` in the antenna header.

``normalise(hdul, path)`` returns a new in-memory ``HDUList`` in ehtim's layout (float64, the same visibilities,
weights and times; Stokes slots reordered to RR, LL[, RL, LR] or I) and raises ``UvfitsError`` naming the file and the
problem for what cannot be read as Stokes I VLBI data (no random groups, no antenna table, linear feeds, no weights,
no baseline / date / uv parameters, no source position).
"""

from __future__ import annotations

import numpy as np
from astropy.io import fits

# FITS Stokes codes: 1..4 = I, Q, U, V; -1..-4 = RR, LL, RL, LR; -5..-8 = XX, YY, XY, YX
CIRCULAR = (-1, -2, -3, -4)
TARGET_AXES = ("DEC", "RA", "IF", "FREQ", "STOKES", "COMPLEX")  # numpy order after the group axis
UV_NAMES = (("UU---SIN", "UU", "UU--"), ("VV---SIN", "VV", "VV--"), ("WW---SIN", "WW", "WW--"))


class LayoutError(ValueError):
    """The file cannot be brought to a layout ehtim reads (message names the problem; the caller adds the file)."""


def _axes(header: fits.Header) -> list[tuple[str, int, float, float, float]]:
    """``(CTYPE, NAXIS, CRVAL, CDELT, CRPIX)`` of FITS axes 2..NAXIS (axis 1 is 0 in random groups)."""
    n = int(header.get("NAXIS", 0))
    return [(str(header.get(f"CTYPE{i}", "")).strip().upper(), int(header[f"NAXIS{i}"]),
             float(header.get(f"CRVAL{i}", 0.0)), float(header.get(f"CDELT{i}", 1.0)),
             float(header.get(f"CRPIX{i}", 1.0))) for i in range(2, n + 1)]


def _data_to_target(data: np.ndarray, axes: list) -> tuple[np.ndarray, dict]:
    """Reorder ``DATA [vis, axis_n .. axis_2]`` to ``[vis, DEC, RA, IF, FREQ, STOKES, COMPLEX]``; returns the array
    and ``{name: (CRVAL, CDELT, CRPIX)}`` of the axes found."""
    names = [a[0] for a in axes]
    for req in ("COMPLEX", "STOKES", "FREQ"):
        if req not in names:
            raise LayoutError(f"no {req} axis in the random-groups array (axes: {names})")
    numpy_axis = {name: 1 + (len(axes) - 1 - k) for k, name in enumerate(names)}  # FITS axis 2 is numpy's last
    extra = [k for k, a in enumerate(axes) if a[0] not in TARGET_AXES]
    for k in extra:
        if axes[k][1] != 1:
            raise LayoutError(f"unknown data axis {axes[k][0] or f'#{k + 2}'} of length {axes[k][1]}")
    arr = np.asarray(data)
    order = [0] + [numpy_axis[n] for n in TARGET_AXES if n in numpy_axis]
    keep = [0] + [numpy_axis[n] for n in TARGET_AXES if n in numpy_axis]
    arr = arr.transpose(order + [i for i in range(arr.ndim) if i not in keep])
    arr = arr.reshape(arr.shape[: len(order)])  # drop the unknown length-1 axes
    for pos, name in enumerate(TARGET_AXES):
        if name not in numpy_axis:
            arr = np.expand_dims(arr, 1 + pos)
    info = {a[0]: (a[2], a[3], a[4]) for a in axes}
    return arr, info


def _stokes_slots(arr: np.ndarray, crval: float, cdelt: float, crpix: float) -> tuple[np.ndarray, float]:
    """Keep and reorder the Stokes axis: circular -> RR, LL[, RL, LR] (a single one -> that one as slot 0);
    Stokes -> I only. Returns the array and the new CRVAL (-1 circular, 1 Stokes)."""
    n = arr.shape[5]
    codes = [int(round(crval + (k + 1 - crpix) * cdelt)) for k in range(n)]
    if any(c <= -5 for c in codes):
        raise LayoutError(f"linear polarisation feeds (Stokes codes {codes}; XX/YY) are not supported: convert to "
                          "circular (RR/LL) or Stokes I first")
    if all(c in CIRCULAR for c in codes):
        present = [c for c in CIRCULAR if c in codes]
        if present[:2] != [-1, -2]:  # a single hand (or RL/LR only): use the parallel hand(s) present as Stokes I
            parallel = [c for c in present if c in (-1, -2)]
            if not parallel:
                raise LayoutError(f"no parallel-hand (RR or LL) correlations (Stokes codes {codes})")
            return arr[:, :, :, :, :, [codes.index(parallel[0])]], -1.0
        return arr[:, :, :, :, :, [codes.index(c) for c in present]], -1.0
    if 1 in codes:
        return arr[:, :, :, :, :, [codes.index(1)]], 1.0
    raise LayoutError(f"no Stokes I, RR or LL correlations (Stokes codes {codes})")


def _parameter(gd, header: fits.Header, names: tuple[str, ...]) -> np.ndarray | None:
    """Random parameter under the first of ``names`` present (scaled; repeated names summed, as AIPS means)."""
    present = [str(p).upper() for p in gd.parnames]
    for name in names:
        if name in present:
            return np.asarray(gd.par(present.index(name)) if present.count(name) == 1
                              else sum(np.asarray(gd.par(i), dtype=np.float64)
                                       for i, p in enumerate(present) if p == name), dtype=np.float64)
    return None


def normalise(hdul: fits.HDUList) -> fits.HDUList:
    """A copy of ``hdul`` in ehtim's uvfits layout (module docstring); ``LayoutError`` for unreadable layouts."""
    prim = hdul[0]
    if not isinstance(prim, fits.GroupsHDU):
        raise LayoutError(f"primary HDU is a {type(prim).__name__}, not random groups (not a uvfits visibility file)")
    names = [h.name for h in hdul]
    if "AIPS AN" not in names:
        raise LayoutError(f"no 'AIPS AN' antenna table (HDUs: {names})")
    header = prim.header
    gd = prim.data
    if gd is None or len(gd) == 0:
        raise LayoutError("contains no visibilities")
    axes = _axes(header)
    arr, info = _data_to_target(gd["DATA"], axes)
    if arr.shape[6] != 3:
        raise LayoutError(f"COMPLEX axis has {arr.shape[6]} entries, expected 3 (real, imaginary, weight)")
    arr, stokes_crval = _stokes_slots(arr, *info["STOKES"])
    uvw = [_parameter(gd, header, n) for n in UV_NAMES]
    baseline = _parameter(gd, header, ("BASELINE",))
    jd = _parameter(gd, header, ("DATE",))
    missing = [n for n, v in (("UU", uvw[0]), ("VV", uvw[1]), ("BASELINE", baseline), ("DATE", jd)) if v is None]
    if missing:
        raise LayoutError(f"random parameters {missing} missing (found {list(gd.parnames)})")
    if "_DATE" in [str(p).upper() for p in gd.parnames]:
        jd = jd + _parameter(gd, header, ("_DATE",))
    if float(np.nanmin(jd)) < 2.0e6:
        raise LayoutError(f"DATE parameter {float(np.nanmin(jd)):.6g} is not a Julian date")
    day = np.floor(jd - 0.5) + 0.5
    params = {"UU---SIN": uvw[0], "VV---SIN": uvw[1], "WW---SIN": uvw[2] if uvw[2] is not None else 0 * uvw[0],
              "BASELINE": baseline, "DATE": day, "_DATE": jd - day}
    for name in ("INTTIM", "TAU1", "TAU2"):
        v = _parameter(gd, header, (name,))
        if v is not None:
            params[name] = v
    parnames = ["DATE" if k == "_DATE" else k for k in params]
    new = fits.GroupData(arr.astype(np.float64), parnames=parnames, pardata=list(params.values()), bitpix=-64)
    hdu = fits.GroupsHDU(new)
    out = hdu.header
    keep = ("OBJECT", "OBSRA", "OBSDEC", "MJD", "DATE-OBS", "EQUINOX", "TELESCOP", "INSTRUME", "BUNIT", "VELREF")
    for key in keep:
        if key in header:
            out[key] = header[key]
    if "OBJECT" not in out:
        out["OBJECT"] = "UNKNOWN"
    ra, dec = info.get("RA"), info.get("DEC")
    if "OBSRA" not in out or "OBSDEC" not in out:
        if ra is None or dec is None:
            raise LayoutError("no source position (neither OBSRA/OBSDEC nor RA/DEC axes)")
        out["OBSRA"], out["OBSDEC"] = ra[0], dec[0]
    crval = {"COMPLEX": (1.0, 1.0, 1.0), "STOKES": (stokes_crval, -1.0, 1.0), "FREQ": info["FREQ"],
             "IF": info.get("IF", (1.0, 1.0, 1.0)), "RA": ra or (out["OBSRA"], 1.0, 1.0),
             "DEC": dec or (out["OBSDEC"], 1.0, 1.0)}
    for i, name in zip(range(2, 8), reversed(TARGET_AXES), strict=True):
        out[f"CTYPE{i}"] = name
        out[f"CRVAL{i}"], out[f"CDELT{i}"], out[f"CRPIX{i}"] = crval[name]
    for i in range(1, len(parnames) + 1):
        out[f"PSCAL{i}"], out[f"PZERO{i}"] = 1.0, 0.0
    tables = [h.copy() for h in hdul[1:]]
    for t in tables:
        if t.name == "AIPS AN" and "FREQ" not in t.header:
            t.header["FREQ"] = info["FREQ"][0]
    return fits.HDUList([hdu, *tables])
