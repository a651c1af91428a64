"""``stepvip blackhole`` commands: ``simulate``, ``make-movies``, ``chisq``, ``rml``, ``reconstruct``.

* ``simulate --movie M.npy --out OBS.uvfits [--seed S --fov-uas 128]``: observe a movie [T, H, W] (Jy/pixel, ehtim
  orientation, one frame per timestamp of the paper's Sgr A* track) with thermal noise, gains and phases.
* ``make-movies --n N --out DIR [--frames 64 --npix 64 --fov-uas 128 --seed S]``: synthetic Sgr A*-like movies as
  ``DIR/videos.npy`` float32 [N, T, 1, H, W] (Jy/pixel) and ``DIR/videos.json`` (geometry + per-video parameters).
* ``chisq --movie M.npy --obs OBS.uvfits --fov-uas F [--align-flux]``: ehtim-convention closure chi-squares of a
  movie against an observation; prints one JSON object.
* ``rml --obs OBS.uvfits --out M.npy [--npix 32 --fov-uas 128 --frames 0,1]``: per-frame RML baseline (ehtim).
* ``reconstruct --obs OBS.uvfits --out DIR [--prior DIR]``: STeP posterior samples (``blackhole.reconstruct``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from common.io import atomic_path


class CliError(ValueError):
    """A user error reported as one line on stderr with exit code 2."""


def _load_npy_movie(path: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise CliError(f"movie {p}: no such file")
    try:
        movie = np.load(p, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise CliError(f"movie {p}: not a readable .npy array ({exc})") from exc
    if movie.ndim == 4 and movie.shape[1] == 1:
        movie = movie[:, 0]
    if movie.ndim != 3:
        raise CliError(f"movie {p}: expected an array [T, H, W], got shape {movie.shape}")
    if not np.isfinite(movie).all():
        raise CliError(f"movie {p}: contains {int((~np.isfinite(movie)).sum())} NaN/Inf values")
    return movie.astype(np.float64)


def _psize(fov_uas: float, width: int) -> float:
    from blackhole.synthetic import RADPERUAS

    if not fov_uas > 0:
        raise CliError(f"--fov-uas must be positive, got {fov_uas}")
    return fov_uas * RADPERUAS / width


def cmd_chisq(args: argparse.Namespace) -> int:
    import torch

    from blackhole.likelihood import ClosureLikelihood, evaluate_chisq
    from blackhole.uvfits import load_closure_data

    movie = _load_npy_movie(args.movie)
    if args.frames is not None and args.frame_duration is not None:
        raise CliError("--frames and --frame-duration: give at most one")
    data, report = load_closure_data(args.obs, frame_duration_s=args.frame_duration, n_frames=args.frames,
                                     systematic_error=args.systematic_error)
    if movie.shape[0] != report.n_frames:
        raise CliError(f"movie {args.movie}: has {movie.shape[0]} frames but observation {args.obs} has "
                       f"{report.n_frames} frames ({report.binning}); bin it with --frames {movie.shape[0]}")
    t, h, w = movie.shape
    lik = ClosureLikelihood(data, h, w, _psize(args.fov_uas, w))
    res = evaluate_chisq(lik, torch.as_tensor(movie)[None, :, None], align=args.align_flux)
    out = {"cphase": float(res["cphase"][0]), "logcamp": float(res["logcamp"][0]),
           "cphase_tilde": float(res["cphase_tilde"][0]), "logcamp_tilde": float(res["logcamp_tilde"][0]),
           "n_cphase": int(len(data.cphase)), "n_logcamp": int(len(data.logcamp)), "n_frames": int(t),
           "frames_without_closures": report.frames_without_closures,
           "sparse_times_hr": list(report.sparse_times), "flux_aligned": bool(args.align_flux)}
    print(json.dumps(out))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from blackhole.array import make_observation
    from blackhole.simulate import Corruption, simulate_observation
    from blackhole.uvfits import write_uvfits

    movie = _load_npy_movie(args.movie)
    obs0 = make_observation()
    n_t = len(np.unique(obs0.data["time"]))
    if movie.shape[0] != n_t:
        raise CliError(f"movie {args.movie}: has {movie.shape[0]} frames, the Sgr A* track has {n_t} timestamps")
    cfg = Corruption(thermal_noise=not args.no_noise, gains=not args.no_gains, phases=not args.no_phases)
    obs = simulate_observation(movie, _psize(args.fov_uas, movie.shape[2]), obs0, seed=args.seed, cfg=cfg)
    write_uvfits(obs, args.out)
    print(json.dumps({"out": str(args.out), "n_vis": int(len(obs.data)), "n_frames": n_t, "seed": args.seed}))
    return 0


def _atomic_save(path: Path, writer) -> None:
    with atomic_path(path, suffix=".tmp") as tmp:
        writer(str(tmp))


def cmd_make_movies(args: argparse.Namespace) -> int:
    from blackhole.synthetic import MovieGeometry, generate_movies

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    geom = MovieGeometry(frames=args.frames, npix=args.npix, fov_uas=args.fov_uas, frame_dt_s=args.frame_dt)
    if args.n < 1:
        raise CliError(f"--n must be at least 1, got {args.n}")
    meta: list[dict] = []
    t0 = time.perf_counter()

    def save_npy(tmp: str) -> None:  # chunks straight into a memory-mapped .npy: N videos never sit in RAM
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                        shape=(args.n, geom.frames, 1, geom.npix, geom.npix))
        for lo in range(0, args.n, 256):
            hi = min(args.n, lo + 256)
            arr[lo:hi], m = generate_movies(hi - lo, geom, seed=args.seed, texture=args.texture, start=lo)
            meta.extend(m)
        arr.flush()
        del arr

    _atomic_save(out / "videos.npy", save_npy)
    dt = time.perf_counter() - t0

    def save_json(tmp: str) -> None:
        info = {"format": "videos.npy float32 [N, T, 1, H, W], Jy/pixel, row 0 north, column 0 east",
                "n": args.n, "frames": geom.frames, "npix": geom.npix, "fov_uas": geom.fov_uas,
                "psize_rad": geom.psize_rad, "frame_dt_s": geom.frame_dt_s, "seed": args.seed,
                "texture": args.texture, "videos": meta}
        Path(tmp).write_text(json.dumps(info, indent=1))

    _atomic_save(out / "videos.json", save_json)
    print(json.dumps({"out": str(out), "n": args.n, "seconds": round(dt, 3),
                      "videos_per_second": round(args.n / dt, 2) if dt > 0 else None}))
    return 0


def cmd_rml(args: argparse.Namespace) -> int:
    from blackhole.baselines import RMLConfig, rml_movie
    from blackhole.uvfits import read_uvfits

    obs = read_uvfits(args.obs)
    frames = [int(f) for f in args.frames.split(",")] if args.frames else None
    movie = rml_movie(obs, args.npix, args.fov_uas, RMLConfig(maxit=args.maxit), frames=frames)
    out = Path(args.out)

    def save(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, movie.astype(np.float32))

    _atomic_save(out, save)
    print(json.dumps({"out": str(out), "shape": list(movie.shape), "frames": frames or "all"}))
    return 0


def _run(func):
    def wrapped(args: argparse.Namespace) -> int:
        from blackhole.uvfits import UvfitsError

        try:
            return func(args)
        except (CliError, UvfitsError) as exc:
            print(f"stepvip blackhole: error: {exc}", file=sys.stderr)
            return 2
    return wrapped


def register(subparsers) -> None:
    """Add the ``blackhole`` command group to the ``stepvip`` parser."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = subparsers.add_parser("blackhole", help="EHT black hole movies: simulate data, make movies, chi-squares",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="bh_command", metavar="SUBCOMMAND", required=True)

    c = sub.add_parser("chisq", help="closure chi-squares of a movie against a uvfits observation", formatter_class=fmt)
    c.add_argument("--movie", required=True, help=".npy [T, H, W] Jy/pixel, ehtim orientation, one frame per time")
    c.add_argument("--obs", required=True, help="uvfits observation")
    c.add_argument("--fov-uas", type=float, required=True, help="field of view of the movie width (micro-arcsec)")
    c.add_argument("--align-flux", action="store_true", help="scale each frame to the measured ALMA-APEX flux first")
    c.add_argument("--frame-duration", type=float, default=None,
                   help="split the observation into frames of this many seconds (None: one frame per timestamp)")
    c.add_argument("--frames", type=int, default=None,
                   help="instead, split the observation's span into this many equal frames (e.g. the movie's count)")
    c.add_argument("--systematic-error", type=float, default=0.0,
                   help="fractional systematic error f: visibility sigma^2 -> sigma^2 + (f |V|)^2 before closures")
    c.set_defaults(func=_run(cmd_chisq))

    s = sub.add_parser("simulate", help="observe a movie with the paper's Sgr A* EHT 2017 track", formatter_class=fmt)
    s.add_argument("--movie", required=True, help=".npy [T, H, W] Jy/pixel, ehtim orientation")
    s.add_argument("--out", required=True, help="output uvfits path")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--fov-uas", type=float, default=128.0)
    s.add_argument("--no-noise", action="store_true", help="no thermal noise")
    s.add_argument("--no-gains", action="store_true", help="no station gain errors")
    s.add_argument("--no-phases", action="store_true", help="no station phase errors")
    s.set_defaults(func=_run(cmd_simulate))

    m = sub.add_parser("make-movies", help="synthetic Sgr A*-like training movies", formatter_class=fmt)
    m.add_argument("--n", type=int, required=True)
    m.add_argument("--out", required=True, help="output folder (videos.npy, videos.json)")
    m.add_argument("--frames", type=int, default=64)
    m.add_argument("--npix", type=int, default=64)
    m.add_argument("--fov-uas", type=float, default=128.0)
    m.add_argument("--frame-dt", type=float, default=102.0, help="seconds between frames")
    m.add_argument("--texture", type=float, default=0.3, help="turbulent texture amplitude (0: off)")
    m.add_argument("--seed", type=int, default=0)
    m.set_defaults(func=_run(cmd_make_movies))

    r = sub.add_parser("rml", help="classical baseline: per-frame RML imaging with ehtim (closures, MEM + TV)",
                       formatter_class=fmt)
    r.add_argument("--obs", required=True, help="uvfits observation")
    r.add_argument("--out", required=True, help="output .npy movie [T, H, W] Jy/pixel")
    r.add_argument("--npix", type=int, default=32)
    r.add_argument("--fov-uas", type=float, default=128.0)
    r.add_argument("--maxit", type=int, default=100, help="L-BFGS iterations per round")
    r.add_argument("--frames", default=None, help="comma-separated frame indices (default: all)")
    r.set_defaults(func=_run(cmd_rml))

    from blackhole.reconstruct import add_reconstruct_parser

    add_reconstruct_parser(sub)


def main(argv: list[str] | None = None) -> int:
    """Run the ``blackhole`` group alone (``python -m blackhole.cli chisq ...``), e.g. without other plugins."""
    parser = argparse.ArgumentParser(prog="stepvip")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["blackhole", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
