"""uvfits input/output through ehtim, with clear errors and atomic writes; real data split into frames.

``read_uvfits(path)`` returns an ehtim ``Obsdata`` (Stokes I) or raises ``UvfitsError`` naming the file and what was
wrong; files of other pipelines' layouts are normalised first (``blackhole.uvfits_layout``). ``write_uvfits(obs,
path)`` writes to a temporary file in the same folder and renames it, so an existing file is never half overwritten.
``load_closure_data(path, ...)`` goes from a file to ``ClosureData`` with the frames split by timestamp, by a
duration or into N equal frames, an optional fractional systematic error, and lists frames too sparse for closures
instead of failing.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from blackhole.ehtim_compat import import_ehtim
from blackhole.measurements import ClosureData, add_systematic_error, closure_data, vis_table_from_obs
from blackhole.uvfits_layout import LayoutError, normalise
from common.io import atomic_path


class UvfitsError(ValueError):
    """A uvfits file is missing, unreadable or not usable as a Stokes I VLBI observation."""


def read_uvfits(path: str | Path):
    """Read ``path`` with ehtim (Stokes polarisation representation) and validate it; returns ``Obsdata``.

    The file is first brought to the layout ehtim's reader expects (``blackhole.uvfits_layout.normalise``: any
    number of IFs, RR/LL pairs, one hand, native Stokes I, a missing IF axis, one or two DATE parameters, DATE
    offsets in PZERO, missing INTTIM/TAU columns), so EHT-HOPS, CASA/rPICARD, AIPS and ehtim files all load."""
    path = Path(path)
    if not path.is_file():
        raise UvfitsError(f"uvfits file {path}: no such file")
    eh = import_ehtim()
    try:
        with fits.open(path, memmap=False) as hdul:
            hdul_std = normalise(hdul)
    except LayoutError as exc:
        raise UvfitsError(f"uvfits file {path}: {exc}") from exc
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise UvfitsError(f"uvfits file {path}: cannot be read as a FITS random-groups (uvfits) file "
                          f"({type(exc).__name__}: {exc})") from exc
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obs = eh.obsdata.load_uvfits(hdul_std, polrep="stokes")
    except Exception as exc:  # ehtim raises bare Exception/KeyError/OSError for malformed files: name the file
        raise UvfitsError(f"uvfits file {path}: cannot be read as a VLBI uvfits observation "
                          f"({type(exc).__name__}: {exc})") from exc
    data = np.asarray(obs.data)
    if len(data) == 0:
        raise UvfitsError(f"uvfits file {path}: contains no visibilities")
    for name in ("time", "u", "v", "sigma"):
        if not np.isfinite(data[name]).all():
            raise UvfitsError(f"uvfits file {path}: non-finite values in column {name!r}")
    if not np.isfinite(data["vis"]).all():
        raise UvfitsError(f"uvfits file {path}: non-finite Stokes I visibilities")
    if (data["sigma"] <= 0).any():
        raise UvfitsError(f"uvfits file {path}: {(data['sigma'] <= 0).sum()} visibilities have sigma <= 0")
    return obs


def write_uvfits(obs, path: str | Path) -> Path:
    """Write ``obs`` to ``path`` atomically (temporary file in the same folder, then ``os.replace``)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UvfitsError(f"uvfits file {path}: folder {folder} does not exist")
    with atomic_path(path, suffix=".uvfits.tmp") as tmp:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obs.save_uvfits(str(tmp))
    return path


@dataclass(frozen=True)
class FrameReport:
    """Frames of an observation: count, frame times (UTC hours), frames with no closure quantity, sparse
    timestamps (< 3 stations), the stations, the binning in words and the systematic error fraction applied."""

    n_frames: int
    frame_times: np.ndarray
    frames_without_closures: list[int]
    sparse_times: tuple[float, ...]
    stations: tuple[str, ...]
    binning: str = ""
    systematic_error: float = 0.0


def load_closure_data(path: str | Path, frame_duration_s: float | None = None, debias: bool = True,
                      n_frames: int | None = None, systematic_error: float = 0.0) -> tuple[ClosureData, FrameReport]:
    """Closure data of a uvfits file, one frame per timestamp, per ``frame_duration_s`` seconds, or ``n_frames``
    equal frames over the observation's span (``vis_table_from_obs``); ``systematic_error`` f adds (f |V|)^2 to
    every visibility variance before the closures are formed (``add_systematic_error``). Problems raise
    ``UvfitsError`` naming the file."""
    obs = read_uvfits(path)
    try:
        table = add_systematic_error(vis_table_from_obs(obs, frame_duration_s, n_frames), systematic_error)
        data = closure_data(table, debias=debias)
    except ValueError as exc:
        raise UvfitsError(f"uvfits file {path}: {exc}") from exc
    if len(data.cphase) == 0 and len(data.logcamp) == 0:
        raise UvfitsError(f"uvfits file {path}: no timestamp has 3 or more stations, so there are no closure "
                          f"quantities to fit (stations: {', '.join(table.stations)})")
    span_min = (table.time[-1] - table.time[0]) * 60.0
    n_ts = len(np.unique(table.time))
    if n_frames is not None:
        binning = (f"{table.n_frames} frames of {span_min * 60.0 / table.n_frames:.1f} s over the observation's "
                   f"{span_min:.1f} min ({n_ts} timestamps)")
    elif frame_duration_s is not None:
        binning = f"{table.n_frames} frames of {frame_duration_s:g} s ({n_ts} timestamps over {span_min:.1f} min)"
    else:
        binning = f"{table.n_frames} frames, one per timestamp, over {span_min:.1f} min"
    report = FrameReport(n_frames=table.n_frames, frame_times=table.frame_times,
                         frames_without_closures=data.frames_without_closures,
                         sparse_times=data.closures.sparse_times, stations=table.stations, binning=binning,
                         systematic_error=float(systematic_error))
    return data, report
