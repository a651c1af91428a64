"""The representation ceiling of a black-hole prior in the units that matter: closure chi-squares (issue 11).

Also the ``eht2017`` plugin of ``stepvip prior-report --ceiling`` (entry-point group ``stepvip.ceilings``:
:func:`add_arguments`, :func:`from_args`).

A latent prior can only produce movies its decoder can express. Its ceiling is measured on held-out movies: each
movie is observed with the paper's EHT 2017 Sgr A* track (thermal noise, station gains and phases,
``blackhole.simulate.simulate_observation``, seed ``seed + i`` for movie ``i``), and the closure chi-squares
(chi~2, paper Eq. 4) of the movie itself and of its representation (the VAE round trip ``decode(encode(x))``; the
identity for a pixel-space prior) are evaluated on that observation. The truth scores ~1; a representation that
does not cap reconstructions scores <= 2 (the issue's bar).

Units: ``videos`` are in the prior's units (each movie divided by its maximum, ``blackhole.movies`` "max"
convention); each movie is scaled to a mean total flux of ``flux_jy`` Jy before it is observed, because the
thermal noise is fixed in Jy. Closure quantities are invariant to that scale, so the representation is evaluated
in the prior's units.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
import torch

from blackhole.likelihood import ClosureLikelihood, evaluate_chisq
from blackhole.synthetic import RADPERUAS

DEFAULT_FLUX_JY = 2.25  # the middle of the synthetic movies' mean-flux range U(1.5, 3.0) Jy (blackhole.synthetic)


def track_frames(template=None) -> int:
    """Number of timestamps (= movie frames) of an ehtim ``Obsdata`` track, by default the EHT 2017 Sgr A* track
    ``blackhole.array.make_observation()``."""
    if template is None:
        from blackhole.array import make_observation

        template = make_observation()
    return len(np.unique(np.asarray(template.data["time"])))


def closure_ceiling(videos: torch.Tensor, represent: Callable[[torch.Tensor], torch.Tensor], fov_uas: float,
                    flux_jy: float = DEFAULT_FLUX_JY, seed: int = 0, template=None) -> dict:
    """Closure chi~2 of ``videos [N, T, 1, H, W]`` and of ``represent(video [1, T, 1, H, W])`` on simulated EHT 2017
    observations of each video (``T`` = the track's 64 timestamps). ``template``: the track as an ehtim ``Obsdata``
    (default ``blackhole.array.make_observation()``, built here).

    Returns ``{"truth": {"chi2_cp": [N], "chi2_logca": [N]}, "representation": {...}, "mean": {...}}``, plus the
    settings; ``mean`` holds the means over videos of both.
    """
    from blackhole.array import make_observation
    from blackhole.measurements import closure_data, vis_table_from_obs
    from blackhole.simulate import simulate_observation

    if videos.ndim != 5 or videos.shape[2] != 1 or videos.shape[-1] != videos.shape[-2]:
        raise ValueError(f"closure_ceiling: expected videos [N, T, 1, H, H], got {tuple(videos.shape)}")
    if not flux_jy > 0 or not fov_uas > 0:
        raise ValueError(f"closure_ceiling: flux_jy and fov_uas must be > 0, got {flux_jy} and {fov_uas}")
    template = make_observation() if template is None else template
    n_times = track_frames(template)
    if videos.shape[1] != n_times:
        raise ValueError(f"closure_ceiling: the EHT 2017 track has {n_times} timestamps (one frame each), the videos "
                         f"have {videos.shape[1]} frames")
    npix = videos.shape[-1]
    psize = fov_uas * RADPERUAS / npix
    out: dict = {"settings": {"fov_uas": fov_uas, "flux_jy": flux_jy, "seed": seed,
                              "observation": "EHT 2017 Sgr A* track, thermal noise + gains + phases"}}
    rows = {"truth": {"chi2_cp": [], "chi2_logca": []}, "representation": {"chi2_cp": [], "chi2_logca": []}}
    for i, video in enumerate(videos):
        movie = video[:, 0].double()
        mean_flux = float(movie.sum(dim=(-2, -1)).mean())
        if not mean_flux > 0:
            raise ValueError(f"closure_ceiling: video {i} has no positive flux")
        obs = simulate_observation((movie * (flux_jy / mean_flux)).numpy(), psize, template, seed=seed + i)
        lik = ClosureLikelihood(closure_data(vis_table_from_obs(obs)), npix, npix, psize, flux_beta=0.0)
        with torch.no_grad():
            rep = represent(video[None]).double()
        if rep.shape != (1, *video.shape) or not torch.isfinite(rep).all():
            raise FloatingPointError(f"closure_ceiling: the representation of video {i} is not a finite "
                                     f"{(1, *video.shape)} movie (got shape {tuple(rep.shape)})")
        for key, movie_x in (("truth", video[None].double()), ("representation", rep)):
            res = evaluate_chisq(lik, movie_x.clamp(min=0.0))
            rows[key]["chi2_cp"].append(float(res["cphase_tilde"][0]))
            rows[key]["chi2_logca"].append(float(res["logcamp_tilde"][0]))
    out.update(rows)
    out["mean"] = {key: {k: float(np.mean(v)) for k, v in rows[key].items()} for key in rows}
    return out


def add_arguments(group: argparse._ArgumentGroup) -> None:
    """Options of ``prior-report --ceiling eht2017``."""
    group.add_argument("--fov-uas", type=float, default=128.0, help="field of view of the videos (micro-arcseconds)")
    group.add_argument("--flux-jy", type=float, default=DEFAULT_FLUX_JY, help="mean total flux (Jy) each video is "
                       "scaled to before it is observed")


def from_args(args: argparse.Namespace, videos) -> Callable[..., dict]:
    """:func:`closure_ceiling` bound to the options, for ``videos [N, T, C, H, W]``; ``ValueError`` (one line) for
    options or videos it cannot measure, before any work."""
    for name in ("fov_uas", "flux_jy"):
        value = getattr(args, name)
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"--{name.replace('_', '-')} must be a finite number > 0, got {value}")
    from blackhole.array import make_observation

    template = make_observation()  # built once: the check below and every measurement use it
    frames = track_frames(template)
    if videos.shape[2] != 1 or videos.shape[1] != frames or videos.shape[-1] != videos.shape[-2]:
        raise ValueError(f"needs square single-channel videos of the EHT 2017 track's {frames} frames, got "
                         f"{videos.shape[2]} channel(s), {videos.shape[1]} frames of {videos.shape[-2]}x"
                         f"{videos.shape[-1]}")

    def ceiling(v, represent):
        return {"name": "eht2017 closure chi~2", **closure_ceiling(v, represent, fov_uas=args.fov_uas,
                                                                    flux_jy=args.flux_jy, seed=args.seed,
                                                                    template=template)}

    return ceiling
