"""Measurement containers: per-baseline visibilities split into frames, and the closure data (paper Eq. 13-15).

``VisTable`` holds Stokes I visibilities row by row with the movie frame each row belongs to. ``ClosureData`` holds
the measured closure phases (radians), log closure amplitudes, their sigmas, the per-frame flux estimate and the
index tables that tell the forward model which baselines form each closure quantity.

Measured values and sigmas follow ehtim 1.3.2 (``c_phases``/``c_amplitudes``, count='min'):
  closure phase     = angle(V_12 V_23 V_31),  sigma = sqrt(sum_i sigma_i^2 / |V_i|^2)            [rad]
  log closure amp.  = log|V_12| + log|V_34| - log|V_14| - log|V_23|,  sigma = sqrt(sum_i 1 / snr_i^2)
with, if ``debias`` (ehtim's default), amplitudes debiased as sqrt(max(|V|^2 - sigma^2, sigma^2)) and the log closure
amplitude shifted by 0.5 (1/snr_1^2 + 1/snr_2^2 - 1/snr_3^2 - 1/snr_4^2).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from blackhole.closures import ClosureSet, build_closure_set

FLUX_BASELINE = ("ALMA", "APEX")
# Two-letter EHT station codes used by the 2017 data releases (EHT-HOPS and rPICARD uvfits) -> the names of our
# station table. SR (the SMA reference antenna) has no long name: it stays "SR".
STATION_ALIASES = {"AA": "ALMA", "AP": "APEX", "AZ": "SMT", "JC": "JCMT", "LM": "LMT", "PV": "PV", "SM": "SMA",
                   "SP": "SPT"}


def station_name(code: str) -> str:
    """Our name of an EHT station given its name or its two-letter code (``AA`` -> ``ALMA``); unknown names pass."""
    return STATION_ALIASES.get(str(code).strip().upper(), str(code).strip())


@dataclass(frozen=True)
class ObsMeta:
    """Where and when an observation was taken: source name, RA (hours), Dec (degrees), observing frequency (Hz)
    and the MJD (integer day) that the UTC hours of the data count from."""

    source: str
    ra_hours: float
    dec_deg: float
    rf_hz: float
    mjd: int


@dataclass(frozen=True)
class VisTable:
    """Stokes I visibilities of an observation, assigned to movie frames.

    Attributes (M rows, T frames): time [M] UTC hours; frame [M] int in [0, T); t1, t2 [M] station names as in the
    file; u, v [M] wavelengths; vis [M] complex Jy; sigma [M] Jy (thermal, plus any systematic term added by
    :func:`add_systematic_error`); frame_times [T] UTC hours (frame centres); stations: station order (defines the
    closure reference station); frame_edges [T + 1] UTC hours (None: one frame per timestamp); meta: where the
    data were taken (``ObsMeta``: source, RA, Dec, frequency, MJD of the first day).
    """

    time: np.ndarray
    frame: np.ndarray
    t1: np.ndarray
    t2: np.ndarray
    u: np.ndarray
    v: np.ndarray
    vis: np.ndarray
    sigma: np.ndarray
    frame_times: np.ndarray
    stations: tuple[str, ...]
    frame_edges: np.ndarray | None = None
    meta: ObsMeta | None = None

    @property
    def n_frames(self) -> int:
        return len(self.frame_times)


def vis_table_from_obs(obs, frame_duration_s: float | None = None, n_frames: int | None = None) -> VisTable:
    """Split an ehtim ``Obsdata`` into frames: one per timestamp (default), per ``frame_duration_s`` seconds, or
    ``n_frames`` equal frames over the observation's span (first to last timestamp).

    With a frame duration, frame k covers [t0 + k d, t0 + (k+1) d) from the first timestamp t0; bins without data
    are kept (their frame index exists, they simply constrain nothing) so frame k always means the same time span.
    With ``n_frames`` = T, d = (t_last - t0) / T and the last timestamp falls into frame T - 1; if the observation
    has exactly T timestamps, each is its own frame (as with the default).
    """
    data = np.asarray(obs.data)
    if len(data) == 0:
        raise ValueError("observation has no visibilities")
    if frame_duration_s is not None and n_frames is not None:
        raise ValueError("give either frame_duration_s or n_frames, not both")
    order = np.argsort(data["time"], kind="stable")
    data = data[order]
    time = np.asarray(data["time"], dtype=np.float64)
    edges = None
    if n_frames is not None and int(n_frames) == len(np.unique(time)):
        n_frames = None  # exactly one timestamp per frame: keep the timestamps as the frame times
    if frame_duration_s is None and n_frames is None:
        frame_times, frame = np.unique(time, return_inverse=True)
    else:
        if n_frames is not None:
            if int(n_frames) < 1:
                raise ValueError(f"n_frames must be >= 1, got {n_frames}")
            n_frames = int(n_frames)
            span = time[-1] - time[0]
            d = span / n_frames if span > 0 else 1.0 / 3600.0
        else:
            if not frame_duration_s > 0:
                raise ValueError(f"frame_duration_s must be positive, got {frame_duration_s}")
            d = frame_duration_s / 3600.0
        frame = np.floor((time - time[0]) / d + 1e-9).astype(np.int64)
        if n_frames is not None:
            frame = np.minimum(frame, n_frames - 1)  # the last timestamp closes the last frame
        count = int(frame.max()) + 1 if n_frames is None else n_frames
        edges = time[0] + np.arange(count + 1) * d
        frame_times = 0.5 * (edges[:-1] + edges[1:])
    meta = ObsMeta(source=str(getattr(obs, "source", "")), ra_hours=float(obs.ra), dec_deg=float(obs.dec),
                   rf_hz=float(obs.rf), mjd=int(obs.mjd))
    return VisTable(
        time=time, frame=np.asarray(frame, dtype=np.int64),
        t1=np.asarray(data["t1"]).astype(str), t2=np.asarray(data["t2"]).astype(str),
        u=np.asarray(data["u"], dtype=np.float64), v=np.asarray(data["v"], dtype=np.float64),
        vis=np.asarray(data["vis"], dtype=np.complex128), sigma=np.asarray(data["sigma"], dtype=np.float64),
        frame_times=np.asarray(frame_times, dtype=np.float64),
        stations=tuple(str(s) for s in obs.tarr["site"]), frame_edges=edges, meta=meta,
    )


def add_systematic_error(table: VisTable, fraction: float) -> VisTable:
    """A copy of ``table`` with a fractional systematic error added to every visibility sigma, as EHT imaging
    pipelines do before forming closures: sigma^2 -> sigma^2 + (fraction |V|)^2 (Jy). ``fraction`` = 0 returns
    ``table`` unchanged; a negative or non-finite value raises ``ValueError``."""
    if not (np.isfinite(fraction) and fraction >= 0):
        raise ValueError(f"systematic error fraction must be a finite number >= 0, got {fraction}")
    if fraction == 0:
        return table
    sigma = np.sqrt(table.sigma**2 + (fraction * np.abs(table.vis)) ** 2)
    return dataclasses.replace(table, sigma=sigma)


@dataclass(frozen=True)
class ClosureData:
    """Measured closure quantities of one observation (paper Eq. 14) plus what the forward model needs.

    Attributes: table (the ``VisTable``); closures (index tables, ``ClosureSet``); cphase, cphase_sigma [Ncp] rad;
    logcamp, logcamp_sigma [Nlca]; flux [T] Jy (NaN where no flux estimate exists for a frame);
    flux_sigma [T] Jy; debias: whether closure amplitudes were debiased (the model is never debiased).
    """

    table: VisTable
    closures: ClosureSet
    cphase: np.ndarray
    cphase_sigma: np.ndarray
    logcamp: np.ndarray
    logcamp_sigma: np.ndarray
    flux: np.ndarray
    flux_sigma: np.ndarray
    debias: bool

    @property
    def n_frames(self) -> int:
        return self.table.n_frames

    @property
    def frames_without_closures(self) -> list[int]:
        """Frames that have neither a closure phase nor a log closure amplitude (too few stations)."""
        used = set(self.closures.cp_frame.tolist()) | set(self.closures.lca_frame.tolist())
        return [f for f in range(self.n_frames) if f not in used]


def debiased_amplitude(vis: np.ndarray, sigma: np.ndarray, force_nonzero: bool = True) -> np.ndarray:
    """ehtim's amplitude debiasing: sqrt(|V|^2 - sigma^2) where |V| > sigma, else sigma (or 0 if not forced)."""
    amp, sigma = np.abs(vis), np.abs(sigma)
    deb2 = np.where(amp > sigma, amp**2 - sigma**2, sigma**2 if force_nonzero else 0.0)
    return np.sqrt(deb2)


def flux_estimate(table: VisTable, baseline: tuple[str, str] = FLUX_BASELINE) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame total flux estimate: mean amplitude on the short ``baseline`` (ALMA-APEX, ~2 Mlambda), Jy.

    Stations match by name or two-letter code (``AA``/``AP`` in the EHT releases, :func:`station_name`).
    Returns (flux [T], sigma [T]); frames without that baseline get NaN (the likelihood skips them; see
    ``ClosureData.flux``). Sigma is the sigma of the mean of the rows' sigmas (thermal, plus any systematic term).
    """
    a, b = station_name(baseline[0]), station_name(baseline[1])
    n1 = np.array([station_name(s) for s in table.t1])
    n2 = np.array([station_name(s) for s in table.t2])
    on = ((n1 == a) & (n2 == b)) | ((n1 == b) & (n2 == a))
    flux = np.full(table.n_frames, np.nan)
    sig = np.full(table.n_frames, np.nan)
    for f in np.unique(table.frame[on]):
        rows = on & (table.frame == f)
        flux[f] = np.mean(np.abs(table.vis[rows]))
        sig[f] = np.sqrt(np.sum(table.sigma[rows] ** 2)) / rows.sum()
    return flux, sig


def closure_data(table: VisTable, debias: bool = True, flux: np.ndarray | None = None) -> ClosureData:
    """Measured minimal-set closure phases and log closure amplitudes of ``table`` (ehtim conventions, see module).

    ``flux`` [T] overrides the ALMA-APEX estimate (e.g. a known light curve).
    """
    cs = build_closure_set(table.time, table.frame, table.t1, table.t2, list(table.stations))
    vis, sig = table.vis, table.sigma
    # closure phases: conjugate reversed legs; ehtim's bispectrum sigma / |bispectrum|
    legs = np.where(cs.cp_sign > 0, vis[cs.cp_rows], np.conj(vis[cs.cp_rows]))
    cphase = np.angle(np.prod(legs, axis=1)) if len(legs) else np.zeros(0)
    cphase_sigma = np.sqrt(np.sum(sig[cs.cp_rows] ** 2 / np.abs(vis[cs.cp_rows]) ** 2, axis=1))
    # log closure amplitudes
    amp = debiased_amplitude(vis, sig) if debias else np.abs(vis)
    snr = amp / sig
    p, s = amp[cs.lca_rows], snr[cs.lca_rows]
    logcamp = np.log(p[:, 0]) + np.log(p[:, 1]) - np.log(p[:, 2]) - np.log(p[:, 3])
    if debias:
        logcamp = logcamp + 0.5 * (1 / s[:, 0] ** 2 + 1 / s[:, 1] ** 2 - 1 / s[:, 2] ** 2 - 1 / s[:, 3] ** 2)
    logcamp_sigma = np.sqrt(np.sum(1.0 / s**2, axis=1))
    if flux is None:
        flux_v, flux_s = flux_estimate(table)
    else:
        flux_v = np.asarray(flux, dtype=np.float64)
        if flux_v.shape != (table.n_frames,):
            raise ValueError(f"flux: expected shape ({table.n_frames},), got {flux_v.shape}")
        flux_s = np.full(table.n_frames, np.nan)
    if not (np.isfinite(cphase_sigma).all() and np.isfinite(logcamp_sigma).all()):
        raise ValueError("closure data: non-finite closure sigma (a visibility with zero amplitude or sigma)")
    return ClosureData(table=table, closures=cs, cphase=cphase, cphase_sigma=cphase_sigma, logcamp=logcamp,
                       logcamp_sigma=logcamp_sigma, flux=flux_v, flux_sigma=flux_s, debias=debias)
