"""STeP reconstruction of a black hole movie from closure data: ``stepvip blackhole reconstruct``.

Units convention (network units vs Jy/pixel). The priors work on frames divided by the movie's maximum
(``blackhole.movies`` "max" convention, values ~[0, 1]). The sampler's likelihood is the closure part of paper
Eq. 16, ``log p(y|x) = -(N_cp chi2_cp + N_lca chi2_lca) / tau^2`` (tau = 0.021), evaluated directly on
network-unit movies: closure phases and log closure amplitudes are invariant to a positive scale, so no flux
calibration enters the sampler and the flux term of Eq. 16 is not used. Physical outputs (Jy/pixel) are the
network-unit samples with negative pixels set to 0, then every frame scaled to the measured ALMA-APEX flux
(``blackhole.likelihood.align_flux``; a frame without that baseline keeps network units). Reported chi~2_cp and
chi~2_logca (paper Eq. 4) are of these flux-aligned movies. Metrics against a truth compare each movie divided by
its own maximum.

Coordinates: frames at their UTC hours; ``y`` = relative declination and ``x`` = relative right ascension of the
pixel centres in micro-arcseconds, row 0 north and column 0 east (ehtim orientation), so both decrease with the
index.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from blackhole.fits_io import write_fits_movie
from blackhole.likelihood import REFERENCE_TAU, ClosureLikelihood, align_flux, evaluate_chisq
from blackhole.measurements import ClosureData
from blackhole.priors import default_prior_paths
from blackhole.synthetic import RADPERUAS
from common.posterior import MethodPosterior, variable_name
from common.recon.cli import add_arguments, paper_preset, parse_methods, priors_from_args, run_cli, sample_and_write
from common.recon.errors import DemoError
from common.recon.outputs import format_table
from common.recon.prior_set import Priors
from common.recon.task import ReconTask
from common.sampling import DAPSConfig

DEFAULT_FOV_UAS = 128.0


def sampler_presets(setting: str) -> dict[str, DAPSConfig]:
    """DAPS settings: ``paper`` = Table 3 (25 x (20 ODE + 60 latent MCMC), read from
    ``common/sampling/presets/daps_blackhole.yaml`` only when asked for; the paper's latent data step at tau =
    0.021). ``default`` = 5 annealing x 3 ODE steps with the pixel Gauss-Newton data step at the data's own error
    bars (temperature 1): 4 Levenberg-Marquardt iterations per annealing step, 35 at the last (a poor prior
    estimate needs ~35 from chi2 ~300), 30 CG iterations each, pixel radius floor 0.03 (network units: frames
    divided by the movie maximum), prior correction smoothed by a Gaussian of 2 pixels (half the decoder's 4x
    upsampling), data perturbation only, non-negative images. Chosen by ``benchmarks/sweep_consistency.py``
    (benchmarks/RESULTS.md, issue 10): the paper's latent step at the CPU budget left chi2 ~100-300; the pixel step
    fits to chi2 ~1.
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
                   tau: float = REFERENCE_TAU, attrs: dict | None = None) -> ReconTask:
    """The driver's view of a closure-data problem on ``npix`` x ``npix`` frames (module docstring: units)."""
    psize = fov_uas * RADPERUAS / npix
    lik = ClosureLikelihood(data, npix, npix, psize, tau=tau, flux_beta=0.0)
    times = np.asarray(data.table.frame_times, dtype=np.float64)
    if truth is not None and np.asarray(truth).shape != (len(times), npix, npix):
        raise DemoError(f"truth movie has shape {np.asarray(truth).shape}, expected {(len(times), npix, npix)}")

    def loglik(x: torch.Tensor) -> torch.Tensor:
        return lik.to(x.device)(x.to(torch.float64)).to(x.dtype)

    def physical_t(x: torch.Tensor) -> torch.Tensor:
        try:
            return align_flux(x.detach().to(torch.float64).clamp(min=0.0), lik.flux)
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
            paths += write_fits_movie(p.mean_sample(), folder, psize, times, prefix="mean")
            best = int(np.argmin(p.fit["chi2_cp"] + p.fit["chi2_logca"]))
            paths += write_fits_movie(p.samples[best], folder, psize, times, prefix="best")
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
                     project=_non_negative, report=report)


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
    print(f"wrote {args.out}")
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from blackhole.uvfits import UvfitsError, load_closure_data

    priors = load_bh_priors(args)
    try:
        data, report = load_closure_data(args.obs, frame_duration_s=args.frame_duration)
    except UvfitsError as exc:
        raise DemoError(str(exc)) from exc
    task = blackhole_task(data, args.npix, args.fov_uas, attrs={"observation": str(args.obs),
                                                                "frames_without_closures":
                                                                    list(report.frames_without_closures)})
    return run_reconstruction(args, priors, task, {"command": "stepvip blackhole reconstruct"})


def add_reconstruct_parser(sub) -> None:
    """``stepvip blackhole reconstruct --obs FILE.uvfits --out DIR [--prior DIR ...]``."""
    r = sub.add_parser("reconstruct", help="STeP posterior samples of a movie from a uvfits observation",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    r.add_argument("--obs", required=True, type=Path, help="uvfits observation (one frame per timestamp)")
    r.add_argument("--npix", type=int, default=64, help="pixels per side (the prior's frame size)")
    r.add_argument("--fov-uas", type=float, default=DEFAULT_FOV_UAS, help="field of view (micro-arcseconds)")
    r.add_argument("--frame-duration", type=float, default=None,
                   help="split the observation into frames of this many seconds (None: one frame per timestamp)")
    add_arguments(r, methods_default=("STeP",))
    r.set_defaults(func=run_cli(cmd_reconstruct, "stepvip blackhole reconstruct"))
