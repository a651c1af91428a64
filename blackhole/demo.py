"""``stepvip demo blackhole``: STeP vs IDM+BCS vs IDM on a held-out synthetic Sgr A* movie.

The case: synthetic movie ``blackhole.synthetic.generate_movies(seed=0, start=CASE)`` with ``CASE = 100000`` by
default (``--case``), 64 frames of 64 x 64 pixels over 128 micro-arcseconds, Jy/pixel. The shipped prior was
trained on movies 0..319 of the same seed (``configs/prior_bh_ship.yaml``), so the case is held out. It is observed
with the paper's EHT 2017 Sgr A* track (one frame per 102 s timestamp) with thermal noise, station gains and phases
(``blackhole.simulate.simulate_observation``, seed = CASE). Outputs in ``--out``: ``obs.uvfits`` (the simulated
data, to rerun ``stepvip blackhole reconstruct`` on), ``truth.npy``, and the driver's outputs
(:mod:`common.recon.outputs`): ``samples.nc``, ``uq.json``, ``metrics.json``, ``frames.png``, ``differences.png``,
``mean_std_*.png``, ``*.gif``, ``fits/<method>/mean_*.fits``, and the science outputs against the truth's
(``science.json``, ``science.nc``, ``science.png``: ring diameter, fractional width, PA, asymmetry and light curve per
frame; ``blackhole.science``). Units: see :mod:`blackhole.reconstruct`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from blackhole.reconstruct import DEFAULT_FOV_UAS, blackhole_task, load_bh_priors, run_reconstruction
from blackhole.synthetic import MovieGeometry
from common.io import atomic_path

MOVIE_SEED = 0
HELDOUT_CASE = 100000
FRAMES = MovieGeometry().frames  # the 64 timestamps of the EHT 2017 track = the shipped prior's movie length
NPIX = 64


def held_out_case(case: int = HELDOUT_CASE, npix: int = NPIX, fov_uas: float = DEFAULT_FOV_UAS):
    """``(truth [64, npix, npix] Jy/pixel, simulated ehtim Obsdata, movie parameters)`` of one synthetic case."""
    from blackhole.array import make_observation
    from blackhole.simulate import simulate_observation
    from blackhole.synthetic import generate_movies

    geom = MovieGeometry(frames=FRAMES, npix=npix, fov_uas=fov_uas)
    movies, meta = generate_movies(1, geom, seed=MOVIE_SEED, start=case)
    truth = movies[0, :, 0].astype(np.float64)
    obs = simulate_observation(truth, geom.psize_rad, make_observation(), seed=case)
    return truth, obs, meta[0]


def run(args: argparse.Namespace) -> int:
    """Entry point of ``stepvip demo blackhole`` (options: :func:`common.recon.cli.add_arguments`)."""
    from blackhole.measurements import closure_data, vis_table_from_obs
    from blackhole.uvfits import write_uvfits

    priors = load_bh_priors(args)  # fail on a missing or bad prior before simulating anything
    case = HELDOUT_CASE if args.case is None else args.case
    truth, obs, params = held_out_case(case)
    data = closure_data(vis_table_from_obs(obs))
    task = blackhole_task(data, NPIX, DEFAULT_FOV_UAS, truth=truth,
                          attrs={"case": f"generate_movies(seed={MOVIE_SEED}, start={case})",
                                 "observation": f"EHT 2017 Sgr A* track, thermal noise + gains + phases, seed {case}",
                                 "movie_parameters": params})
    inner = task.export

    def export(out: Path, posts) -> list[Path]:
        paths = inner(out, posts) if inner is not None else []
        paths.append(write_uvfits(obs, out / "obs.uvfits"))
        with atomic_path(out / "truth.npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, truth.astype(np.float32))
        return [*paths, out / "truth.npy"]

    task.export = export
    return run_reconstruction(args, priors, task, {"command": "stepvip demo blackhole"})


if __name__ == "__main__":
    import sys

    from common.recon.cli import demo_main

    sys.exit(demo_main("blackhole.demo", run))
