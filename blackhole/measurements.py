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

from dataclasses import dataclass

import numpy as np

from blackhole.closures import ClosureSet, build_closure_set

FLUX_BASELINE = ("ALMA", "APEX")


@dataclass(frozen=True)
class VisTable:
    """Stokes I visibilities of an observation, assigned to movie frames.

    Attributes (M rows, T frames): time [M] UTC hours; frame [M] int in [0, T); t1, t2 [M] station names;
    u, v [M] wavelengths; vis [M] complex Jy; sigma [M] Jy; frame_times [T] UTC hours; stations: station order
    (defines the closure reference station); source, mjd, rf_hz: metadata.
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

    @property
    def n_frames(self) -> int:
        return len(self.frame_times)


def vis_table_from_obs(obs, frame_duration_s: float | None = None) -> VisTable:
    """Split an ehtim ``Obsdata`` into frames: one per timestamp (default) or per ``frame_duration_s`` seconds.

    With a frame duration, frame k covers [t0 + k d, t0 + (k+1) d) from the first timestamp t0; bins without data
    are kept (their frame index exists, they simply constrain nothing) so frame k always means the same time span.
    """
    data = np.asarray(obs.data)
    if len(data) == 0:
        raise ValueError("observation has no visibilities")
    order = np.argsort(data["time"], kind="stable")
    data = data[order]
    time = np.asarray(data["time"], dtype=np.float64)
    if frame_duration_s is None:
        frame_times, frame = np.unique(time, return_inverse=True)
    else:
        if not frame_duration_s > 0:
            raise ValueError(f"frame_duration_s must be positive, got {frame_duration_s}")
        d = frame_duration_s / 3600.0
        frame = np.floor((time - time[0]) / d + 1e-9).astype(np.int64)
        frame_times = time[0] + (np.arange(frame.max() + 1) + 0.5) * d
    return VisTable(
        time=time, frame=np.asarray(frame, dtype=np.int64),
        t1=np.asarray(data["t1"]).astype(str), t2=np.asarray(data["t2"]).astype(str),
        u=np.asarray(data["u"], dtype=np.float64), v=np.asarray(data["v"], dtype=np.float64),
        vis=np.asarray(data["vis"], dtype=np.complex128), sigma=np.asarray(data["sigma"], dtype=np.float64),
        frame_times=np.asarray(frame_times, dtype=np.float64),
        stations=tuple(str(s) for s in obs.tarr["site"]),
    )


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

    Returns (flux [T], sigma [T]); frames without that baseline get NaN (the likelihood skips them; see
    ``ClosureData.flux``). Sigma is the thermal sigma of the mean.
    """
    a, b = baseline
    on = ((table.t1 == a) & (table.t2 == b)) | ((table.t1 == b) & (table.t2 == a))
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
