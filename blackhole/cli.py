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
import math
import sys
import time
from pathlib import Path

import numpy as np

from common.cli import run_command
from common.io import (
    atomic_path,
    free_bytes,
    output_file_writable,
    output_folder_writable,
    terminate_as_exit,
)


class CliError(ValueError):
    """A user error reported as one line on stderr with exit code 2."""


def _finite(name: str, value: float, low: float = 0.0, strict: bool = True) -> float:
    """``value`` if it is finite and > ``low`` (``strict``) or >= ``low``; else ``CliError`` naming option ``name``."""
    ok = math.isfinite(value) and (value > low if strict else value >= low)
    if not ok:
        raise CliError(f"{name} must be a finite number {'>' if strict else '>='} {low:g}, got {value}")
    return value


def _at_least(name: str, value: int, low: int) -> int:
    """``value`` if it is >= ``low``; else ``CliError`` naming option ``name``."""
    if value < low:
        raise CliError(f"{name} must be >= {low}, got {value}")
    return value


def _output_file(path: str) -> None:
    """``--out`` FILE: its folder exists and is writable and FILE is not a folder (checked before any work)."""
    folder = Path(path).parent
    if not folder.is_dir():
        raise CliError(f"--out {path}: folder {folder} does not exist")
    output_file_writable(path)


def _dark_frames(movie: np.ndarray) -> list[int]:
    """Frames of ``movie`` [T, H, W] whose total flux is not positive (no closure quantity is defined there)."""
    return [int(k) for k in np.flatnonzero(movie.reshape(movie.shape[0], -1).sum(-1) <= 0)]


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

    from blackhole.likelihood import ClosureLikelihood, computable_chisq, evaluate_chisq
    from blackhole.uvfits import load_closure_data

    _finite("--fov-uas", args.fov_uas)
    _finite("--systematic-error", args.systematic_error, strict=False)
    if args.frames is not None and args.frame_duration is not None:
        raise CliError("--frames and --frame-duration: give at most one")
    if args.frames is not None:
        _at_least("--frames", args.frames, 1)
    if args.frame_duration is not None:
        _finite("--frame-duration", args.frame_duration)
    movie = _load_npy_movie(args.movie)
    dark = _dark_frames(movie)
    if dark:
        raise CliError(f"movie {args.movie}: {len(dark)} frame(s) have total flux <= 0 (e.g. frame {dark[0]}); "
                       "closure phases and amplitudes of a dark frame are undefined")
    data, report = load_closure_data(args.obs, frame_duration_s=args.frame_duration, n_frames=args.frames,
                                     systematic_error=args.systematic_error)
    if movie.shape[0] != report.n_frames:
        raise CliError(f"movie {args.movie}: has {movie.shape[0]} frames but observation {args.obs} has "
                       f"{report.n_frames} frames ({report.binning}); bin it with --frames {movie.shape[0]}")
    t, h, w = movie.shape
    lik = ClosureLikelihood(data, h, w, _psize(args.fov_uas, w))
    res = evaluate_chisq(lik, torch.as_tensor(movie)[None, :, None], align=args.align_flux)
    missing = computable_chisq({"cphase": len(data.cphase), "logcamp": len(data.logcamp)})
    values: dict[str, float | None] = {}
    for name in ("cphase", "logcamp"):
        for key in (name, f"{name}_tilde"):
            values[key] = None if name in missing else float(res[key][0])
    bad = [k for k, v in values.items() if v is not None and not math.isfinite(v)]
    if bad:
        raise CliError(f"movie {args.movie} against {args.obs}: chi-square {', '.join(bad)} is not finite "
                       f"({', '.join(f'{k}={values[k]}' for k in bad)}); nothing reported")
    for name, why in missing.items():
        print(f"stepvip blackhole chisq: note: {name} chi-square {why}; reported as null", file=sys.stderr)
    out = {**values, "not_computable": missing,
           "n_cphase": int(len(data.cphase)), "n_logcamp": int(len(data.logcamp)), "n_frames": int(t),
           "frames_without_closures": report.frames_without_closures,
           "sparse_times_hr": list(report.sparse_times), "flux_aligned": bool(args.align_flux)}
    print(json.dumps(out, allow_nan=False))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from blackhole.array import make_observation
    from blackhole.simulate import Corruption, simulate_observation
    from blackhole.uvfits import write_uvfits

    _finite("--fov-uas", args.fov_uas)
    _at_least("--seed", args.seed, 0)
    _output_file(args.out)
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
    _at_least("--n", args.n, 1)
    _at_least("--frames", args.frames, 1)
    _at_least("--npix", args.npix, 4)
    _finite("--fov-uas", args.fov_uas)
    _finite("--frame-dt", args.frame_dt)
    _finite("--texture", args.texture, strict=False)
    _at_least("--seed", args.seed, 0)
    output_folder_writable(out)
    need = movies_bytes(args.n, args.frames, args.npix)
    free = free_bytes(out)
    if need > DISK_FRACTION * free:
        raise CliError(f"--n {args.n} x --frames {args.frames} x --npix {args.npix}^2 float32 needs "
                       f"{_gib(need)} for {out / 'videos.npy'}, but only {_gib(free)} is free there (at most "
                       f"{DISK_FRACTION:.0%} of it is used); lower --n, --frames or --npix")
    out.mkdir(parents=True, exist_ok=True)
    geom = MovieGeometry(frames=args.frames, npix=args.npix, fov_uas=args.fov_uas, frame_dt_s=args.frame_dt)
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

    with terminate_as_exit():  # SIGTERM -> SystemExit: atomic_path removes its temporary file
        _atomic_save(out / "videos.npy", save_npy)
    dt = time.perf_counter() - t0

    def save_json(tmp: str) -> None:
        info = {"format": "videos.npy float32 [N, T, 1, H, W], Jy/pixel, row 0 north, column 0 east",
                "n": args.n, "frames": geom.frames, "npix": geom.npix, "fov_uas": geom.fov_uas,
                "psize_rad": geom.psize_rad, "frame_dt_s": geom.frame_dt_s, "seed": args.seed,
                "texture": args.texture, "videos": meta}
        Path(tmp).write_text(json.dumps(info, indent=1))

    with terminate_as_exit():
        _atomic_save(out / "videos.json", save_json)
    print(json.dumps({"out": str(out), "n": args.n, "seconds": round(dt, 3),
                      "videos_per_second": round(args.n / dt, 2) if dt > 0 else None}))
    return 0


def movies_bytes(n: int, frames: int, npix: int) -> int:
    """Bytes of ``videos.npy`` float32 [n, frames, 1, npix, npix] (data plus a 128-byte .npy header)."""
    return 4 * int(n) * int(frames) * int(npix) ** 2 + 128


DISK_FRACTION = 0.9  # make-movies refuses to fill more than this fraction of the free disk space


def _gib(n: int) -> str:
    return f"{n / 2**30:.3g} GiB"


def _parse_frames(text: str | None, n_frames: int) -> list[int] | None:
    """``--frames 0,3,7`` -> [0, 3, 7], each checked to be a frame index in [0, n_frames)."""
    if not text:
        return None
    try:
        frames = [int(f) for f in text.split(",")]
    except ValueError as exc:
        raise CliError(f"--frames: expected comma-separated frame indices like 0,1,5, got {text!r}") from exc
    outside = [f for f in frames if not 0 <= f < n_frames]
    if outside:
        raise CliError(f"--frames: indices {outside} are outside the observation's {n_frames} frames "
                       f"(0..{n_frames - 1})")
    return frames


def cmd_rml(args: argparse.Namespace) -> int:
    from blackhole.baselines import RMLConfig, rml_movie
    from blackhole.uvfits import load_closure_data, read_uvfits

    _at_least("--npix", args.npix, 4)
    _finite("--fov-uas", args.fov_uas)
    _at_least("--maxit", args.maxit, 1)
    _output_file(args.out)
    data, report = load_closure_data(args.obs)  # UvfitsError if no timestamp has 3 stations
    frames = _parse_frames(args.frames, report.n_frames)
    has_cp, has_lca = set(data.closures.cp_frame.tolist()), set(data.closures.lca_frame.tolist())
    lacking = [f for f in (frames if frames is not None else range(report.n_frames))
               if f not in has_cp or f not in has_lca]
    if lacking:
        raise CliError(f"uvfits file {args.obs}: RML fits closure phases and log closure amplitudes, but frame(s) "
                       f"{lacking[:8]}{' ...' if len(lacking) > 8 else ''} lack one of them (fewer than 3 or 4 "
                       "stations observe together); pick frames with --frames")
    flux = data.flux
    no_flux = [f for f in (frames if frames is not None else range(report.n_frames)) if not np.isfinite(flux[f])]
    if no_flux:
        raise CliError(f"uvfits file {args.obs}: frame(s) {no_flux[:8]} have no ALMA-APEX flux estimate, which RML "
                       "needs for its total-flux constraint; pick frames with --frames")
    obs = read_uvfits(args.obs)
    movie = rml_movie(obs, args.npix, args.fov_uas, RMLConfig(maxit=args.maxit), frames=frames)
    if not np.isfinite(movie).all():
        raise CliError(f"RML of {args.obs} gave {int((~np.isfinite(movie)).sum())} non-finite pixels; nothing written")
    out = Path(args.out)

    def save(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, movie.astype(np.float32))

    _atomic_save(out, save)
    print(json.dumps({"out": str(out), "shape": list(movie.shape), "frames": frames or "all"}))
    return 0


def register(subparsers) -> None:
    """Add the ``blackhole`` command group to the ``stepvip`` parser."""
    from blackhole.uvfits import UvfitsError
    from blackhole.uvfits_layout import LayoutError
    from common.cli import register_user_errors

    register_user_errors(CliError, UvfitsError, LayoutError)
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
    c.set_defaults(func=cmd_chisq)

    s = sub.add_parser("simulate", help="observe a movie with the paper's Sgr A* EHT 2017 track", formatter_class=fmt)
    s.add_argument("--movie", required=True, help=".npy [T, H, W] Jy/pixel, ehtim orientation")
    s.add_argument("--out", required=True, help="output uvfits path")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--fov-uas", type=float, default=128.0)
    s.add_argument("--no-noise", action="store_true", help="no thermal noise")
    s.add_argument("--no-gains", action="store_true", help="no station gain errors")
    s.add_argument("--no-phases", action="store_true", help="no station phase errors")
    s.set_defaults(func=cmd_simulate)

    m = sub.add_parser("make-movies", help="synthetic Sgr A*-like training movies", formatter_class=fmt)
    m.add_argument("--n", type=int, required=True)
    m.add_argument("--out", required=True, help="output folder (videos.npy, videos.json)")
    m.add_argument("--frames", type=int, default=64)
    m.add_argument("--npix", type=int, default=64)
    m.add_argument("--fov-uas", type=float, default=128.0)
    m.add_argument("--frame-dt", type=float, default=102.0, help="seconds between frames")
    m.add_argument("--texture", type=float, default=0.3, help="turbulent texture amplitude (0: off)")
    m.add_argument("--seed", type=int, default=0)
    m.set_defaults(func=cmd_make_movies)

    r = sub.add_parser("rml", help="classical baseline: per-frame RML imaging with ehtim (closures, MEM + TV)",
                       formatter_class=fmt)
    r.add_argument("--obs", required=True, help="uvfits observation")
    r.add_argument("--out", required=True, help="output .npy movie [T, H, W] Jy/pixel")
    r.add_argument("--npix", type=int, default=32)
    r.add_argument("--fov-uas", type=float, default=128.0)
    r.add_argument("--maxit", type=int, default=100, help="L-BFGS iterations per round")
    r.add_argument("--frames", default=None, help="comma-separated frame indices (default: all)")
    r.set_defaults(func=cmd_rml)

    from blackhole.reconstruct import add_reconstruct_parser

    add_reconstruct_parser(sub)


def main(argv: list[str] | None = None) -> int:
    """Run the ``blackhole`` group alone (``python -m blackhole.cli chisq ...``), e.g. without other plugins."""
    parser = argparse.ArgumentParser(prog="stepvip")
    register(parser.add_subparsers(dest="command", required=True))
    argv = ["blackhole", *(sys.argv[1:] if argv is None else argv)]
    args = parser.parse_args(argv)
    return run_command(args.func, args, f"stepvip blackhole {args.bh_command}")


if __name__ == "__main__":
    sys.exit(main())
