"""Posterior samples as an xarray dataset, and their uncertainty summaries (STeP paper Sec. 1, Fig. 1).

For each method a set of samples ``[S, T, H, W]`` (real, or complex for MRI) with per-sample data-fit measures
(``{"chi2_cp": [S], "chi2_logca": [S]}`` for black holes, ``{"misfit": [S]}`` for MRI) is summarised by

* the posterior mean, standard deviation and per-pixel central credible interval (quantiles ``levels``,
  default 5 % and 95 %), computed on the magnitude for complex samples;
* modes: k-means (k-means++ seeding, seeded) on the samples average-pooled by ``pool`` pixels, each mode with its
  size, the mean of every data-fit measure over its members and a representative sample (the member closest to the
  cluster centre). With one sample there is one mode.

:func:`posterior_dataset` puts everything in one ``xarray.Dataset`` (dims ``sample, frame, y, x``; method names are
made netCDF-safe: ``"IDM+BCS"`` -> ``IDM_BCS``, the display name is the variable's ``method`` attribute) and
:func:`write_netcdf` writes it atomically (h5netcdf engine).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.io import atomic_path

DEFAULT_LEVELS = (0.05, 0.95)


def variable_name(method: str) -> str:
    """netCDF-safe variable name of a method: ``"IDM+BCS"`` -> ``"IDM_BCS"``."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", method.replace("+", "_"))
    return name if name and not name[0].isdigit() else f"m_{name}"


@dataclass
class Mode:
    """One cluster of posterior samples: member indices, size, mean data fit, representative sample index."""

    label: int
    members: list[int]
    fit: dict[str, float]
    representative: int

    @property
    def size(self) -> int:
        return len(self.members)

    def to_dict(self) -> dict:
        return {"label": self.label, "size": self.size, "fraction": None, "members": self.members,
                "fit": self.fit, "representative": self.representative}


@dataclass
class MethodPosterior:
    """Samples ``[S, T, H, W]`` (float or complex) of one method, their data fit (each ``[S]``) and summaries."""

    method: str
    samples: np.ndarray
    fit: dict[str, np.ndarray]
    levels: tuple[float, float] = DEFAULT_LEVELS
    modes: list[Mode] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.samples = np.asarray(self.samples)
        if self.samples.ndim != 4 or self.samples.shape[0] < 1:
            raise ValueError(f"MethodPosterior({self.method}): samples must be [S, T, H, W] with S >= 1, got "
                             f"{self.samples.shape}")
        if not np.isfinite(self.samples).all():
            raise ValueError(f"MethodPosterior({self.method}): samples contain NaN/Inf")
        s = self.samples.shape[0]
        self.fit = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in self.fit.items()}
        for k, v in self.fit.items():
            if v.shape != (s,):
                raise ValueError(f"MethodPosterior({self.method}): fit {k!r} must have {s} values, got {v.shape}")
        lo, hi = self.levels
        if not 0 <= lo < hi <= 1:
            raise ValueError(f"MethodPosterior({self.method}): levels must satisfy 0 <= lo < hi <= 1, got "
                             f"{self.levels}")

    @property
    def magnitude(self) -> np.ndarray:
        """``|samples|`` for complex samples, the samples themselves otherwise: ``[S, T, H, W]`` float."""
        return np.abs(self.samples) if np.iscomplexobj(self.samples) else self.samples

    def summary(self) -> dict[str, np.ndarray]:
        """``mean, std, lower, upper`` maps ``[T, H, W]`` of the magnitude (std with ddof 0)."""
        m = self.magnitude.astype(np.float64)
        lower, upper = np.quantile(m, self.levels, axis=0)
        return {"mean": m.mean(0), "std": m.std(0), "lower": lower, "upper": upper}

    def mean_sample(self) -> np.ndarray:
        """Posterior mean ``[T, H, W]`` (complex for complex samples)."""
        return self.samples.mean(0)


def pool(samples: np.ndarray, factor: int) -> np.ndarray:
    """Average-pool ``[S, T, H, W]`` by ``factor`` in H and W (edges cropped to a multiple of ``factor``)."""
    s, t, h, w = samples.shape
    f = max(1, int(factor))
    h2, w2 = max(1, h // f), max(1, w // f)
    f_h, f_w = (h // h2, w // w2)
    x = samples[:, :, : h2 * f_h, : w2 * f_w]
    return x.reshape(s, t, h2, f_h, w2, f_w).mean(axis=(3, 5))


def kmeans(features: np.ndarray, k: int, seed: int = 0, iters: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means with k-means++ seeding (``numpy.random.default_rng(seed)``); returns (labels [N], centres
    [k', D]) with empty clusters dropped and labels renumbered 0..k'-1 by decreasing size."""
    x = np.asarray(features, dtype=np.float64)
    n = x.shape[0]
    if x.ndim != 2 or n < 1:
        raise ValueError(f"kmeans: features must be [N, D] with N >= 1, got {x.shape}")
    k = max(1, min(int(k), n))
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(n)]]
    for _ in range(1, k):
        d2 = np.min(((x[:, None] - np.asarray(centres)[None]) ** 2).sum(-1), axis=1)
        if d2.sum() <= 0:  # fewer distinct points than k
            break
        centres.append(x[rng.choice(n, p=d2 / d2.sum())])
    c = np.asarray(centres)
    labels = np.zeros(n, dtype=np.int64)
    for it in range(iters):
        new = ((x[:, None] - c[None]) ** 2).sum(-1).argmin(1)
        if it > 0 and np.array_equal(new, labels):
            break
        labels = new
        c = np.stack([x[labels == j].mean(0) if (labels == j).any() else c[j] for j in range(len(c))])
    used, counts = np.unique(labels, return_counts=True)
    order = used[np.argsort(-counts, kind="stable")]
    remap = {old: new for new, old in enumerate(order)}
    return np.array([remap[v] for v in labels], dtype=np.int64), c[order]


def find_modes(post: MethodPosterior, n_modes: int = 3, pool_factor: int = 4, seed: int = 0) -> list[Mode]:
    """Cluster the samples of ``post`` (module docstring) and store the result in ``post.modes``."""
    feats = pool(post.magnitude.astype(np.float64), pool_factor).reshape(post.samples.shape[0], -1)
    labels, centres = kmeans(feats, n_modes, seed=seed)
    modes = []
    for j in range(len(centres)):
        members = np.flatnonzero(labels == j)
        d = ((feats[members] - centres[j]) ** 2).sum(-1)
        modes.append(Mode(label=j, members=[int(i) for i in members],
                          fit={k: float(v[members].mean()) for k, v in post.fit.items()},
                          representative=int(members[np.argmin(d)])))
    post.modes = modes
    return modes


def mode_labels(post: MethodPosterior) -> np.ndarray:
    """Mode label of every sample, ``[S]`` int (-1 if :func:`find_modes` was not run)."""
    labels = -np.ones(post.samples.shape[0], dtype=np.int64)
    for m in post.modes:
        labels[m.members] = m.label
    return labels


def posterior_dataset(posts: list[MethodPosterior], coords: dict[str, tuple[np.ndarray, dict]],
                      attrs: dict[str, object], units: str, truth: np.ndarray | None = None):
    """One ``xarray.Dataset`` with, per method ``m`` (safe name ``v``): ``v`` (sample, frame, y, x) magnitude
    samples (+ ``v_real``, ``v_imag`` when complex), ``v_mean``, ``v_std``, ``v_lower``, ``v_upper`` (frame, y, x),
    ``v_<fit>`` (sample), ``v_mode`` (sample) and ``v_mode_representative`` (mode, frame, y, x); optional ``truth``.

    ``coords`` maps ``frame``, ``y``, ``x`` to ``(values, attrs)`` (attrs with ``units``); ``attrs`` values that are
    not str/int/float are stored as JSON text.
    """
    import xarray as xr

    for dim in ("frame", "y", "x"):
        if dim not in coords:
            raise ValueError(f"posterior_dataset: coords must give 'frame', 'y', 'x'; missing {dim!r}")
    ds = xr.Dataset(coords={d: (d, np.asarray(v), dict(a)) for d, (v, a) in coords.items()})
    dims4, dims3 = ("sample", "frame", "y", "x"), ("frame", "y", "x")
    for p in posts:
        v = variable_name(p.method)
        base = {"method": p.method, "units": units}
        desc = "posterior samples" + (" (magnitude)" if np.iscomplexobj(p.samples) else "")
        ds[v] = xr.DataArray(p.magnitude.astype(np.float32), dims=dims4, attrs={**base, "description": desc})
        if np.iscomplexobj(p.samples):
            ds[f"{v}_real"] = xr.DataArray(p.samples.real.astype(np.float32), dims=dims4, attrs=base)
            ds[f"{v}_imag"] = xr.DataArray(p.samples.imag.astype(np.float32), dims=dims4, attrs=base)
        for key, arr in p.summary().items():
            desc = {"mean": "posterior mean", "std": "posterior standard deviation",
                    "lower": f"per-pixel {100 * p.levels[0]:g} % quantile",
                    "upper": f"per-pixel {100 * p.levels[1]:g} % quantile"}[key]
            ds[f"{v}_{key}"] = xr.DataArray(arr.astype(np.float32), dims=dims3, attrs={**base, "description": desc})
        for key, arr in p.fit.items():
            ds[f"{v}_{key}"] = xr.DataArray(arr, dims=("sample",), attrs={"method": p.method, "description":
                                                                             f"{key} of each sample"})
        if p.modes:
            ds[f"{v}_mode"] = xr.DataArray(mode_labels(p), dims=("sample",),
                                           attrs={"method": p.method, "description": "k-means mode label"})
            reps = np.stack([p.magnitude[m.representative] for m in p.modes]).astype(np.float32)
            ds[f"{v}_mode_representative"] = xr.DataArray(
                reps, dims=(f"{v}_mode_index", *dims3),
                attrs={**base, "description": "representative sample of each mode (largest mode first)"})
    if truth is not None:
        t = np.asarray(truth)
        ds["truth"] = xr.DataArray(np.abs(t).astype(np.float32), dims=dims3,
                                   attrs={"units": units, "description": "ground truth" +
                                          (" (magnitude)" if np.iscomplexobj(t) else "")})
    ds.attrs.update({k: (v if isinstance(v, str | int | float) else json.dumps(v)) for k, v in attrs.items()})
    return ds


def write_netcdf(ds, path: str | Path) -> Path:
    """Write ``ds`` to netCDF4/HDF5 (engine h5netcdf) atomically; returns the path."""
    path = Path(path)
    with atomic_path(path, suffix=".tmp") as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
    return path


def uq_report(posts: list[MethodPosterior]) -> dict:
    """JSON-able summary: per method the number of samples, per-sample fit, credible-interval width and modes."""
    out = {}
    for p in posts:
        summ = p.summary()
        s = p.samples.shape[0]
        modes = []
        for m in p.modes:
            d = m.to_dict()
            d["fraction"] = m.size / s
            modes.append(d)
        out[p.method] = {
            "samples": s,
            "fit_per_sample": {k: [float(x) for x in v] for k, v in p.fit.items()},
            "mean_std": float(summ["std"].mean()),
            "mean_interval_width": float((summ["upper"] - summ["lower"]).mean()),
            "interval_levels": list(p.levels),
            "modes": modes,
        }
    return out
