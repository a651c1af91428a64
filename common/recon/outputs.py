"""Outputs of a reconstruction: ``samples.nc``, ``uq.json``, ``metrics.json``, figures, GIFs, the domain export,
and the plain-text metrics table."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import torch

from common._version import __version__
from common.figures import difference_grid, frame_grid, mean_std_maps, pick_frames, write_gif
from common.io import atomic_write_text
from common.posterior import MethodPosterior, posterior_dataset, uq_report, variable_name, write_netcdf
from common.recon.task import ReconTask


def format_table(metrics: dict[str, dict[str, float]]) -> str:
    """Plain-text table: one row per method, one column per metric (mean over samples; ``*_of_mean``: the data fit
    of the posterior mean, the movie written to the FITS / submission files)."""
    cols = list(dict.fromkeys(k for row in metrics.values() for k in row))
    widths = [max(11, len(c)) + 1 for c in cols]
    lines = ["method    " + "".join(f"{c:>{w}}" for c, w in zip(cols, widths, strict=True))]
    for m, row in metrics.items():
        lines.append(f"{m:<10}" + "".join(f"{row.get(c, float('nan')):>{w}.4g}" for c, w in zip(cols, widths,
                                                                                            strict=True)))
    return "\n".join(lines)


def versions() -> dict[str, str]:
    import xarray

    return {"stepvip": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "xarray": xarray.__version__, "python": platform.python_version()}


def write_outputs(out: Path, task: ReconTask, posts: list[MethodPosterior], metrics: dict[str, dict[str, float]],
                  attrs: dict) -> list[Path]:
    """Write ``samples.nc``, ``uq.json``, ``metrics.json`` (with a truth), figures, GIFs and the domain export
    into ``out`` (created); every file is written atomically. Returns the written paths."""
    out.mkdir(parents=True, exist_ok=True)
    all_attrs = {**task.attrs, **attrs, "versions": versions(), "units": task.units,
                 "methods": [p.method for p in posts]}
    ds = posterior_dataset(posts, task.coords, all_attrs, task.units, truth=task.truth)
    written = [write_netcdf(ds, out / "samples.nc")]
    written.append(atomic_write_text(out / "uq.json", json.dumps(uq_report(posts), indent=1)))
    if task.truth is not None:
        written.append(atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1)))
    t = task.frames
    frames = pick_frames(t)
    rows = {"truth": np.abs(task.truth)} if task.truth is not None else {}
    rows.update({f"{p.method} #0": p.magnitude[0] for p in posts})
    what = "truth and posterior samples" if task.truth is not None else "posterior samples"
    written.append(frame_grid(out / "frames.png", rows, frames, title=f"{task.name}: {what}"))
    if t > 1:
        written.append(difference_grid(out / "differences.png", rows, pick_frames(t - 1)))
    for p in posts:
        v = variable_name(p.method)
        summ = p.summary()
        written.append(mean_std_maps(out / f"mean_std_{v}.png", summ["mean"], summ["std"], frames,
                                     title=f"{p.method}: posterior mean and std", units=f"[{task.units}]"))
        gif_rows = ([np.abs(task.truth)] if task.truth is not None else []) + [summ["mean"]] + list(p.magnitude[:3])
        written.append(write_gif(out / f"{v}.gif", gif_rows))
    if task.export is not None:
        written.extend(task.export(out, posts))
    return written
