"""Science outputs of a black-hole reconstruction: ring features and the light curve, per frame and per posterior
sample, with posterior intervals (``blackhole.ringfit`` gives the definitions).

For every method, ``science_outputs`` fits the ring of every frame of every posterior sample (``[S, T]`` per
feature), takes per-frame posterior medians and 5 / 95 % quantiles over the samples (the position angle about its
circular mean, so the band never straddles the +-180 degree cut), and the light curve: the total flux of every frame
of every sample (Jy; after the per-frame flux alignment of ``blackhole.reconstruct`` it equals the ALMA-APEX flux
estimate, so the light curve's uncertainty is that estimate's sigma, reported beside it) and the measured estimate.
With a truth movie the truth's features are given beside them. Outputs:

* ``science.nc``: an xarray Dataset with dims ``sample, frame, quantile``: ``<method>_<feature>`` [S, T],
  ``<method>_<feature>_q`` [3, T], ``<method>_flux`` [S, T], ``flux_measured`` / ``flux_measured_sigma`` [T],
  ``truth_<feature>`` [T]; units in each variable's attributes;
* ``science.json``: per method and feature the per-frame median and band, the whole-observation value (mean over
  frames; median and 5 / 95 % over samples of each sample's mean), and the light curve;
* ``science.png``: time series of the four ring features and the light curve, median and 5-95 % band per method,
  the truth dashed.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from blackhole.ringfit import FEATURES, UNITS, fit_rings
from common.io import atomic_path, atomic_write_text
from common.posterior import MethodPosterior, variable_name

QUANTILES = (0.05, 0.5, 0.95)
LABELS = {"diameter": "diameter d [uas]", "fractional_width": "fractional width FWHM/d",
          "position_angle": "PA [deg E of N]", "asymmetry": "asymmetry A", "flux": "total flux [Jy]"}


def _wrap(deg: np.ndarray) -> np.ndarray:
    return (np.asarray(deg) + 180.0) % 360.0 - 180.0


def circular_mean_deg(deg: np.ndarray, axis: int = 0) -> np.ndarray:
    """Circular mean of angles in degrees along ``axis`` (NaN ignored)."""
    z = np.exp(1j * np.radians(np.asarray(deg)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.degrees(np.angle(np.nanmean(z, axis=axis)))


def posterior_quantiles(values: np.ndarray, feature: str) -> np.ndarray:
    """5 / 50 / 95 % quantiles over samples of ``values`` [S, T] -> [3, T]; angles about their circular mean."""
    v = np.asarray(values, dtype=np.float64)
    with warnings.catch_warnings():  # a frame whose feature is undefined in every sample stays NaN (documented)
        warnings.simplefilter("ignore", RuntimeWarning)
        if feature != "position_angle":
            return np.nanquantile(v, QUANTILES, axis=0)
        centre = circular_mean_deg(v, axis=0)
        return _wrap(np.nanquantile(_wrap(v - centre), QUANTILES, axis=0) + centre)


def _summary(values: np.ndarray, feature: str, use: np.ndarray) -> dict:
    """JSON summary of ``values`` [S, T]: per-frame quantiles and the whole-observation value over samples (each
    sample's mean over the frames ``use`` [T] bool)."""
    q = posterior_quantiles(values, feature)
    sel = values[:, use]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        per_sample = circular_mean_deg(sel, axis=1) if feature == "position_angle" else np.nanmean(sel, axis=1)
    whole = posterior_quantiles(per_sample[:, None], feature)[:, 0]
    return {"median": q[1].tolist(), "q05": q[0].tolist(), "q95": q[2].tolist(),
            "observation_mean": {"median": float(whole[1]), "q05": float(whole[0]), "q95": float(whole[2])}}


def science_outputs(posts: list[MethodPosterior], psize_uas: float, times_hr: np.ndarray,
                    flux: np.ndarray | None = None, flux_sigma: np.ndarray | None = None,
                    truth: np.ndarray | None = None,
                    constrained: np.ndarray | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """``(summary for JSON, arrays {name: (dims, values, attrs)})`` of the ring features and light curve of every
    method's samples ``post.samples`` [S, T, H, W] (Jy/pixel, ehtim orientation); ``flux``/``flux_sigma`` [T] the
    measured light curve (Jy, NaN where unknown); ``truth`` [T, H, W] or None; ``constrained`` [T] bool: frames
    with closure data (default all), the frames the whole-observation values average over (the others show the
    prior alone)."""
    times_hr = np.asarray(times_hr, dtype=np.float64)
    use = np.ones(len(times_hr), bool) if constrained is None else np.asarray(constrained, dtype=bool)
    if use.shape != times_hr.shape or not use.any():
        raise ValueError(f"science outputs: constrained must be [T] bool with a True, got {use.shape}")
    arrays: dict[str, tuple] = {"constrained": (("frame",), use.astype(np.int8),
                                                {"long_name": "1 where the frame has closure data"})}
    summary: dict = {"definitions": "blackhole.ringfit: d = 2 x radius of peak brightness of the azimuthally "
                     "averaged profile about the centre minimising the radial spread of the ring; fractional width "
                     "= FWHM / d; PA = direction of the first angular moment of the ring brightness, degrees east of "
                     "north; asymmetry = (bright half - dim half) / (sum), halves split at PA +- 90 deg",
                     "quantiles": list(QUANTILES), "frame_times_hr": times_hr.tolist(),
                     "constrained_frames": np.flatnonzero(use).tolist(),
                     "observation_mean": "each sample's mean over the frames with closure data (circular for PA); "
                                         "median and 5 / 95 % over samples", "methods": {}}
    if flux is not None:
        arrays["flux_measured"] = (("frame",), np.asarray(flux, dtype=np.float64),
                                   {"units": "Jy", "long_name": "ALMA-APEX flux estimate per frame"})
        summary["flux_measured"] = np.asarray(flux, dtype=np.float64).tolist()
    if flux_sigma is not None:
        arrays["flux_measured_sigma"] = (("frame",), np.asarray(flux_sigma, dtype=np.float64),
                                         {"units": "Jy", "long_name": "sigma of the flux estimate"})
        summary["flux_measured_sigma"] = np.asarray(flux_sigma, dtype=np.float64).tolist()
    if truth is not None:
        tr = fit_rings(np.asarray(truth)[None], psize_uas)
        summary["truth"] = {k: tr[k][0].tolist() for k in FEATURES}
        summary["truth"]["flux"] = np.asarray(truth).sum(axis=(-2, -1)).tolist()
        for k in FEATURES:
            arrays[f"truth_{k}"] = (("frame",), tr[k][0], {"units": UNITS[k]})
    for post in posts:
        v = variable_name(post.method)
        rings = fit_rings(post.samples, psize_uas)
        total = np.asarray(post.samples, dtype=np.float64).sum(axis=(-2, -1))
        entry = {k: _summary(rings[k], k, use) for k in FEATURES}
        entry["flux"] = _summary(total, "flux", use)
        entry["undefined_fits"] = int(sum(np.isnan(rings[k]).sum() for k in FEATURES))
        summary["methods"][post.method] = entry
        for k in FEATURES:
            arrays[f"{v}_{k}"] = (("sample", "frame"), rings[k], {"units": UNITS[k]})
            arrays[f"{v}_{k}_q"] = (("quantile", "frame"), posterior_quantiles(rings[k], k), {"units": UNITS[k]})
        arrays[f"{v}_flux"] = (("sample", "frame"), total, {"units": "Jy", "long_name": "total flux of the frame"})
    for post in posts:  # ring features may be NaN (dark frame, counted in undefined_fits); fluxes must be finite
        name = f"{variable_name(post.method)}_flux"
        if not np.isfinite(arrays[name][1]).all():
            raise ValueError(f"science outputs: non-finite total flux in {name}")
    return summary, arrays


def write_science(out: Path, posts: list[MethodPosterior], psize_uas: float, times_hr: np.ndarray,
                  flux: np.ndarray | None = None, flux_sigma: np.ndarray | None = None,
                  truth: np.ndarray | None = None, attrs: dict | None = None,
                  constrained: np.ndarray | None = None) -> list[Path]:
    """Write ``science.nc``, ``science.json`` and ``science.png`` into ``out`` (module docstring); returns paths."""
    import xarray as xr

    summary, arrays = science_outputs(posts, psize_uas, times_hr, flux, flux_sigma, truth, constrained)
    coords = {"frame": ("frame", np.asarray(times_hr, dtype=np.float64), {"units": "hours",
                                                                          "long_name": "UTC time of the frame"}),
              "quantile": ("quantile", np.asarray(QUANTILES))}
    ds = xr.Dataset({k: xr.Variable(d, v, a) for k, (d, v, a) in arrays.items()}, coords=coords,
                    attrs={"definitions": summary["definitions"], **{k: json.dumps(v) if isinstance(v, dict) else v
                                                                    for k, v in (attrs or {}).items()}})
    out.mkdir(parents=True, exist_ok=True)
    nc = out / "science.nc"
    with atomic_path(nc, suffix=".nc.tmp") as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
    paths = [nc, atomic_write_text(out / "science.json", json.dumps(summary, indent=1))]
    paths.append(science_figure(out / "science.png", summary))
    return paths


def format_science(summary: dict) -> str:
    """A few lines for the terminal: per method the whole-observation ring features (median and 5-95 % over
    samples of each sample's mean over frames), with the truth's mean beside them when there is one."""
    use = np.asarray(summary["constrained_frames"], dtype=int)
    lines = [f"ring features over the observation (mean over the {len(use)} frames with closure data; posterior "
             "median [5 %, 95 %]):"]
    truth = summary.get("truth")
    for method, entry in summary["methods"].items():
        parts = []
        for k in FEATURES:
            o = entry[k]["observation_mean"]
            unit = "" if UNITS[k] == "1" else f" {UNITS[k]}"
            text = f"{k.replace('_', ' ')} {o['median']:.3g} [{o['q05']:.3g}, {o['q95']:.3g}]{unit}"
            if truth is not None:
                tv = np.asarray(truth[k], dtype=np.float64)[use]
                mean = circular_mean_deg(tv) if k == "position_angle" else np.nanmean(tv)
                text += f" (truth {float(mean):.3g})"
            parts.append(text)
        lines.append(f"  {method}: " + "; ".join(parts))
    return "\n".join(lines)


def science_figure(path: Path, summary: dict) -> Path:
    """Time series of the ring features and the light curve (median line, 5-95 % band per method; truth dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.asarray(summary["frame_times_hr"])
    half = 0.5 * float(np.median(np.diff(t))) if len(t) > 1 else 0.01
    free = np.setdiff1d(np.arange(len(t)), summary.get("constrained_frames", np.arange(len(t))))
    keys = [*FEATURES, "flux"]
    fig, axes = plt.subplots(len(keys), 1, figsize=(8, 2.0 * len(keys)), sharex=True)
    for ax, k in zip(axes, keys, strict=True):
        for f in free:  # frames without closure data: the prior alone
            ax.axvspan(t[f] - half, t[f] + half, color="0.9", linewidth=0)
        for i, (method, entry) in enumerate(summary["methods"].items()):
            e = entry[k]
            color = f"C{i}"
            ax.fill_between(t, e["q05"], e["q95"], color=color, alpha=0.25, linewidth=0)
            ax.plot(t, e["median"], color=color, label=f"{method} (median, 5-95 %)")
        if "truth" in summary:
            ax.plot(t, summary["truth"][k], "k--", label="truth")
        if k == "flux" and "flux_measured" in summary:
            f = np.asarray(summary["flux_measured"], dtype=np.float64)
            s = np.asarray(summary.get("flux_measured_sigma", np.zeros_like(f)), dtype=np.float64)
            ax.errorbar(t, f, yerr=np.nan_to_num(s), fmt=".", color="0.4", ms=3, label="ALMA-APEX estimate")
        ax.set_ylabel(LABELS[k], fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    axes[-1].set_xlabel("UTC [hours]")
    fig.suptitle("ring features and light curve per frame (grey: frames without closure data)", fontsize=10)
    fig.tight_layout()
    with atomic_path(path, suffix=".png.tmp") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
