"""STeP reconstruction of a black hole movie from closure data: ``stepvip blackhole reconstruct``.

Units convention (network units vs Jy/pixel). The priors work on frames divided by the movie's maximum
(``blackhole.movies`` "max" convention, values ~[0, 1]). The sampler's likelihood is the closure part of paper
Eq. 16, ``log p(y|x) = -(N_cp chi2_cp + N_lca chi2_lca) / tau^2`` (tau = 0.021), evaluated directly on
network-unit movies: closure phases and log closure amplitudes are invariant to a positive scale, so no flux
calibration enters the sampler and the flux term of Eq. 16 is not used. Physical outputs (Jy/pixel) are the
network-unit samples with negative pixels set to 0, then every frame scaled to the measured ALMA-APEX flux
(``blackhole.likelihood.align_flux``; a frame without that baseline is scaled to the light curve interpolated in
time between measured frames, :func:`fill_light_curve`; without any ALMA-APEX data the outputs stay in network
units). Reported chi~2_cp and
chi~2_logca (paper Eq. 4) are of these flux-aligned movies. Metrics against a truth compare each movie divided by
its own maximum.

Coordinates: frames at their UTC hours; ``y`` = relative declination and ``x`` = relative right ascension of the
pixel centres in micro-arcseconds, row 0 north and column 0 east (ehtim orientation), so both decrease with the
index.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch

from blackhole.fits_io import frame_meta, write_fits_movie
from blackhole.likelihood import REFERENCE_TAU, ClosureLikelihood, align_flux, evaluate_chisq
from blackhole.measurements import ClosureData
from blackhole.priors import default_prior_paths, prior_frames
from blackhole.science import format_science, write_science
from blackhole.synthetic import RADPERUAS
from common.posterior import MethodPosterior, variable_name
from common.recon.cli import (
    add_arguments,
    all_or_nothing,
    paper_preset,
    parse_methods,
    priors_from_args,
    sample_and_write,
)
from common.recon.errors import DemoError
from common.recon.outputs import format_table
from common.recon.prior_set import Priors
from common.recon.task import ReconTask
from common.sampling import DAPSConfig

DEFAULT_FOV_UAS = 128.0
# Blur (pixels) of the motion SNR (common.metrics.msnr): a hot spot moves 1-3 of its widths per 102 s frame, so
# unblurred frame differences look like independent frames; 4 px (16 uas at the default 64 px / 128 uas) compares
# the motion at about a hot spot's scale.
MOTION_BLUR_PX = 4.0


def sampler_presets(setting: str) -> dict[str, DAPSConfig]:
    """DAPS settings: ``paper`` = Table 3 (25 x (20 ODE + 60 latent MCMC), read from
    ``common/sampling/presets/daps_blackhole.yaml`` only when asked for; the paper's latent data step at tau =
    0.021). ``default`` = 5 annealing levels from sigma 100 down to 0.01 x 3 ODE steps (ending at 0.003 gained on
    held-out cases 100000-100002 but not on the 10-case quality table; benchmarks/RESULTS.md, seventh session) with
    the pixel Gauss-Newton data step at the data's own error bars (temperature 1): 4 Levenberg-Marquardt iterations
    per annealing step, 35 at the last (a poor prior estimate needs ~35 from chi2 ~300), 30 CG iterations each,
    pixel radius floor 0.03 (network units: frames divided by the movie maximum), prior correction smoothed by a
    Gaussian of 2 pixels (half the decoder's 4x upsampling), data perturbation only, non-negative images. Chosen
    by ``benchmarks/sweep_consistency.py`` (benchmarks/RESULTS.md, issue 10): the paper's latent step at the CPU
    budget left chi2 ~100-300; the pixel step fits to chi2 ~1.
    ``quick`` = 1 x 2 ODE steps with 2 Gauss-Newton iterations, for tests."""
    base = DAPSConfig(annealing_steps=25, ode_steps=20, mcmc_steps=60, lr=1.2e-5, lr_min_ratio=0.015, momentum=0.0,
                      prior_term="exact", prior_sigma=0.01, grad_clamp=1.0 / REFERENCE_TAU**2)
    pixel = dataclasses.replace(base, data_step="pixel", pixel_kernel="gauss-newton", radius_floor=0.03,
                                smooth_px=2.0, perturb="data", temperature=1.0, dc_iters=4, dc_final_iters=35,
                                cg_iters=30)
    presets = {"default": dataclasses.replace(pixel, annealing_steps=5, ode_steps=3),
               "quick": dataclasses.replace(pixel, annealing_steps=1, ode_steps=2, dc_iters=1, dc_final_iters=2,
                                            cg_iters=10)}
    if setting == "paper":
        presets["paper"] = paper_preset("daps_blackhole.yaml")
    return presets


DEFAULT_SAMPLES = {"quick": 2, "default": 2, "paper": 5}


def pixel_offsets_uas(n: int, fov_uas: float) -> np.ndarray:
    """Pixel-centre offsets (micro-arcseconds) of an ehtim axis: index 0 at +(n-1)/2 pixels (north / east)."""
    return ((n - 1) / 2.0 - np.arange(n)) * (fov_uas / n)


def blackhole_task(data: ClosureData, npix: int, fov_uas: float = DEFAULT_FOV_UAS, truth: np.ndarray | None = None,
                   tau: float = REFERENCE_TAU, attrs: dict | None = None, fits_samples: bool = False) -> ReconTask:
    """The driver's view of a closure-data problem on ``npix`` x ``npix`` frames (module docstring: units). Its
    export writes FITS frames of each method's posterior mean and best sample (``fits/<method>/{mean,best}_NNNN.fits``,
    times in the headers: ``eh.movie.load_fits(".../mean_", T)`` reads them as an ehtim ``Movie``), with
    ``fits_samples`` every sample too (``sampleKK_NNNN.fits``), and the science outputs (``blackhole.science``: ring
    features and light curve)."""
    psize = fov_uas * RADPERUAS / npix
    fmeta = frame_meta(data.table.meta)
    constrained = np.ones(len(data.table.frame_times), bool)
    constrained[data.frames_without_closures] = False
    lik = ClosureLikelihood(data, npix, npix, psize, tau=tau, flux_beta=0.0)
    unit_flux = torch.as_tensor(fill_light_curve(data.flux, data.table.frame_times))
    times = np.asarray(data.table.frame_times, dtype=np.float64)
    if truth is not None and np.asarray(truth).shape != (len(times), npix, npix):
        raise DemoError(f"truth movie has shape {np.asarray(truth).shape}, expected {(len(times), npix, npix)}")

    def loglik(x: torch.Tensor) -> torch.Tensor:
        return lik.to(x.device)(x.to(torch.float64)).to(x.dtype)

    def physical_t(x: torch.Tensor) -> torch.Tensor:
        try:
            return align_flux(x.detach().to(torch.float64).clamp(min=0.0), unit_flux)
        except ValueError as exc:
            raise DemoError(f"black hole reconstruction: a sample has an all-dark frame ({exc})") from exc

    def to_physical(x: torch.Tensor) -> np.ndarray:
        return physical_t(x)[:, :, 0].cpu().numpy()

    def data_fit(x: torch.Tensor) -> dict[str, np.ndarray]:
        res = evaluate_chisq(lik, physical_t(x))
        return {"chi2_cp": res["cphase_tilde"], "chi2_logca": res["logcamp_tilde"]}

    def residuals(x: torch.Tensor) -> torch.Tensor:
        return lik.to(x.device).residuals(x.to(torch.float64))

    def report(x: torch.Tensor) -> dict[str, float]:
        chi = lik.to(x.device).chisq(x.detach().to(torch.float64))
        return {"chi2_cp": float(chi["cphase"].mean()), "chi2_logca": float(chi["logcamp"].mean())}

    def from_physical(v: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(v, dtype=np.float64))[:, :, None]

    def metric_images(v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        peak = v.max(axis=(-3, -2, -1), keepdims=True)
        return np.clip(v / np.where(peak > 0, peak, 1.0), 0.0, 1.0)

    def export(out: Path, posts: list[MethodPosterior]) -> list[Path]:
        """Per method: the posterior mean (``mean_NNNN.fits``) and the best-fitting sample, lowest
        (chi~2_cp + chi~2_logca) / 2 (``best_NNNN.fits``): closures are nonlinear, so a mean of samples that each
        fit the data need not fit it (its chi~2 is in ``metrics.json`` as ``chi2_*_of_mean``)."""
        paths = []
        for p in posts:
            folder = out / "fits" / variable_name(p.method)
            paths += write_fits_movie(p.mean_sample(), folder, psize, times, prefix="mean", **fmeta)
            best = int(np.argmin(p.fit["chi2_cp"] + p.fit["chi2_logca"]))
            paths += write_fits_movie(p.samples[best], folder, psize, times, prefix="best", **fmeta)
            if fits_samples:
                for k, sample in enumerate(p.samples):
                    paths += write_fits_movie(sample, folder, psize, times, prefix=f"sample{k:02d}", **fmeta)
        paths += write_science(out, posts, fov_uas / npix, times, flux=data.flux, flux_sigma=data.flux_sigma,
                               truth=None if truth is None else np.asarray(truth, dtype=np.float64),
                               attrs={"observation": meta.get("observation", "")}, constrained=constrained)
        return paths

    offs = pixel_offsets_uas(npix, fov_uas)
    coords = {"frame": (times, {"units": "hours", "long_name": "UTC time of the frame"}),
              "y": (offs, {"units": "uas", "long_name": "relative declination (row 0 north)"}),
              "x": (offs, {"units": "uas", "long_name": "relative right ascension (column 0 east)"})}
    meta = {"tau": tau, "fov_uas": fov_uas, "psize_rad": psize, "likelihood": "closure phases + log closure "
            "amplitudes (Eq. 16 without the flux term) on network units; outputs flux-aligned Jy/pixel",
            "n_cphase": int(len(data.cphase)), "n_logcamp": int(len(data.logcamp)), **(attrs or {})}
    return ReconTask(name="blackhole", frames=len(times), image_shape=(1, npix, npix), log_likelihood=loglik,
                     to_physical=to_physical, data_fit=data_fit, metric_images=metric_images, units="Jy/pixel",
                     coords=coords, truth=None if truth is None else np.asarray(truth, dtype=np.float64),
                     export=export, attrs=meta, from_physical=from_physical, residuals=residuals,
                     project=_non_negative, report=report, motion_blur_px=MOTION_BLUR_PX)


def fill_light_curve(flux: np.ndarray, times_hr: np.ndarray) -> np.ndarray:
    """The flux [T] (Jy) each output frame is scaled to: the measured ALMA-APEX estimate where a frame has one,
    linearly interpolated in time between measured frames elsewhere (the nearest measured value before the first /
    after the last); all NaN (no ALMA-APEX data at all: outputs stay in network units) if none is measured."""
    flux = np.asarray(flux, dtype=np.float64)
    known = np.isfinite(flux)
    if not known.any():
        return flux.copy()
    return np.interp(np.asarray(times_hr, dtype=np.float64), times_hr[known], flux[known])


def _non_negative(x: torch.Tensor) -> torch.Tensor:
    """Projection onto non-negative intensities (pixel Gauss-Newton's constraint)."""
    return x.clamp(min=0.0)


def load_bh_priors(args: argparse.Namespace) -> Priors:
    """The priors named by ``--prior/--vae/--image/--video`` (default: shipped), checked for 1-channel frames."""
    return priors_from_args(args, default_prior_paths, 1, "a black-hole prior takes 1 (Stokes I)")


def run_reconstruction(args: argparse.Namespace, priors: Priors, task: ReconTask, extra_attrs: dict) -> int:
    """Shared tail of ``demo`` and ``reconstruct``: sampling, outputs, table."""
    metrics = sample_and_write(args, task, priors, Path(args.out), extra_attrs, sampler_presets, DEFAULT_SAMPLES,
                               parse_methods(args.methods))
    print(format_table(metrics))
    science = Path(args.out) / "science.json"
    if science.is_file():
        print(format_science(json.loads(science.read_text())))
    print(f"wrote {getattr(args, 'final_out', args.out)}")
    return 0


def frame_choice(args: argparse.Namespace, priors: Priors) -> tuple[int | None, float | None, str]:
    """``(n_frames, frame_duration_s, reason)`` of ``--frames`` / ``--frame-duration`` / ``--per-timestamp``;
    default: as many frames as the video prior was trained for (``blackhole.priors.prior_frames``) over the
    observation's span."""
    given = [name for name, v in (("--frames", args.frames), ("--frame-duration", args.frame_duration),
                                  ("--per-timestamp", args.per_timestamp or None)) if v is not None]
    if len(given) > 1:
        raise DemoError(f"{' and '.join(given)}: give at most one way of splitting the observation into frames")
    if args.frames is not None:
        if args.frames < 1:
            raise DemoError(f"--frames must be >= 1, got {args.frames}")
        return args.frames, None, "--frames"
    if args.frame_duration is not None:
        if not args.frame_duration > 0:
            raise DemoError(f"--frame-duration must be positive (seconds), got {args.frame_duration}")
        return None, args.frame_duration, "--frame-duration"
    if args.per_timestamp:
        return None, None, "--per-timestamp"
    n, source = prior_frames(priors.paths["video"])
    return n, None, f"default: the prior's frame count, {source}"


def check_reconstruct_args(args: argparse.Namespace) -> None:
    """Every numeric option of ``reconstruct`` in range and ``--out`` writable, before any work (``DemoError``)."""
    from common.io import OutputPathError, output_folder_writable

    def finite(name: str, value: float | None, positive: bool) -> None:
        if value is not None and not (np.isfinite(value) and (value > 0 if positive else value >= 0)):
            raise DemoError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value}")

    finite("--fov-uas", args.fov_uas, True)
    finite("--systematic-error", args.systematic_error, False)
    finite("--temperature", getattr(args, "temperature", None), True)
    finite("--radius-floor", getattr(args, "radius_floor", None), False)
    for name, value, low in (("--npix", args.npix, 4), ("--samples", args.samples, 1), ("--modes", args.modes, 1),
                             ("--seed", args.seed, 0)):
        if value is not None and value < low:
            raise DemoError(f"{name} must be >= {low}, got {value}")
    try:
        output_folder_writable(args.out)
    except OutputPathError as exc:
        raise DemoError(str(exc)) from exc


def check_closures(data: ClosureData, obs: Path) -> None:
    """Refuse an observation whose closure phases or log closure amplitudes are all missing: its chi-square of
    that kind cannot be computed (reported as such, not as NaN) and the reconstruction would not be judged."""
    from blackhole.likelihood import computable_chisq

    missing = computable_chisq({"cphase": len(data.cphase), "logcamp": len(data.logcamp)})
    if missing:
        raise DemoError(f"uvfits file {obs}: " + "; ".join(f"{k} chi-square {why}" for k, why in missing.items())
                        + f"; reconstruct needs both (stations: {', '.join(data.table.stations)})")


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from blackhole.uvfits import UvfitsError, load_closure_data

    check_reconstruct_args(args)
    priors = load_bh_priors(args)
    n_frames, duration, reason = frame_choice(args, priors)
    try:
        data, report = load_closure_data(args.obs, frame_duration_s=duration, n_frames=n_frames,
                                         systematic_error=args.systematic_error)
    except UvfitsError as exc:
        raise DemoError(str(exc)) from exc
    check_closures(data, args.obs)
    limit = priors.video.config.max_frames
    if report.n_frames > limit:
        raise DemoError(f"uvfits file {args.obs}: {report.binning} is more than the {limit} frames the video prior "
                        f"{priors.paths['video']} can attend over; use --frames N or --frame-duration S")
    print(f"[blackhole] {args.obs}: {report.binning} ({reason}); stations {', '.join(report.stations)}; "
          f"systematic error {args.systematic_error:g} x |V| added to the visibility sigmas", file=sys.stderr)
    if report.frames_without_closures:
        print(f"[blackhole] {len(report.frames_without_closures)} frame(s) without closure data (fewer than 3 "
              f"stations or no data in the bin), constrained by the prior alone: {report.frames_without_closures}",
              file=sys.stderr)
    task = blackhole_task(data, args.npix, args.fov_uas, attrs={
        "observation": str(args.obs), "frames_without_closures": list(report.frames_without_closures),
        "binning": report.binning, "systematic_error": float(args.systematic_error)}, fits_samples=args.fits_samples)
    return run_reconstruction(args, priors, task, {"command": "stepvip blackhole reconstruct"})


def add_reconstruct_parser(sub) -> None:
    """``stepvip blackhole reconstruct --obs FILE.uvfits --out DIR [--prior DIR ...]``."""
    r = sub.add_parser("reconstruct", help="STeP posterior samples of a movie from a uvfits observation",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    r.add_argument("--obs", required=True, type=Path, help="uvfits observation (EHT-HOPS, CASA/rPICARD, ehtim)")
    r.add_argument("--npix", type=int, default=64, help="pixels per side (the prior's frame size)")
    r.add_argument("--fov-uas", type=float, default=DEFAULT_FOV_UAS, help="field of view (micro-arcseconds)")
    r.add_argument("--frames", type=int, default=None,
                   help="split the observation's span into this many equal frames (default: as many as the video "
                        "prior was trained for, 64 for the shipped prior)")
    r.add_argument("--frame-duration", type=float, default=None,
                   help="instead, split the observation into frames of this many seconds")
    r.add_argument("--per-timestamp", action="store_true", help="instead, one frame per timestamp")
    r.add_argument("--systematic-error", type=float, default=0.0,
                   help="fractional systematic error f added to every visibility sigma before the closures are "
                        "formed: sigma^2 -> sigma^2 + (f |V|)^2 (EHT imaging pipelines use a few per cent)")
    r.add_argument("--fits-samples", action="store_true",
                   help="also write every posterior sample as FITS frames (fits/<method>/sampleKK_NNNN.fits)")
    add_arguments(r, methods_default=("STeP",))
    r.set_defaults(func=all_or_nothing(cmd_reconstruct))
