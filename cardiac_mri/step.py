"""STeP reconstruction of cardiac cine: the driver's task and ``stepvip mri reconstruct --method step``.

Units convention. The prior works on network units: the complex image divided by the 99th percentile of its
magnitude over the video (:func:`cardiac_mri.images.video_scale`), as two channels (real, imag); ``scale`` is image
units per network unit. The sampler's likelihood is evaluated in network units, ``log p(y|x) = -||A x - y/scale||^2
/ tau^2`` with tau = 0.10 (:class:`cardiac_mri.likelihood.GaussianLikelihood` on ``y / scale``): the data are
brought to the prior's O(1) scale, so that tau has the same meaning whatever the raw k-space units (CMRxRecon data
are ~1e-3; in image units the data term would vanish next to the prior). With a truth (demo) ``scale`` is the
truth's; for user data it is that of a CG-SENSE reconstruction of ``y`` (10 iterations), the best estimate available
before sampling. Outputs are in image units (complex); the per-sample ``misfit`` is ``||A(scale x) - y||_2`` in the
k-space units of the data (paper Sec. 4.1).

Model grid (:mod:`cardiac_mri.problem`): coil images cropped to a square (along the readout, which is fully
sampled) and Fourier-resized to the prior's frame size. The mask on the grid is the central rows of the ky mask, so
only ``ny <= nx`` (phase encoding along the shorter axis, as in CMRxRecon) is supported for undersampled input.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch

from cardiac_mri.images import center_crop, to_model_grid, video_scale
from cardiac_mri.likelihood import (
    GaussianLikelihood,
    estimate_noise_std,
    linear_gaussian_model,
    model_error_ratio,
)
from cardiac_mri.masks import sampled_lines
from cardiac_mri.priors import default_prior_paths
from cardiac_mri.sense import SenseOperator, channels_to_complex, complex_to_channels, fft2c, ifft2c
from common.methods import METHODS
from common.posterior import MethodPosterior, find_modes, variable_name
from common.recon.cli import method_plan, paper_preset, parse_methods, priors_from_args, settings_dict
from common.recon.cli import sample_and_write as common_sample_and_write
from common.recon.errors import DemoError
from common.recon.task import ReconTask
from common.sampling import DAPSConfig

REFERENCE_TAU = 0.10
# Blur (pixels) of the motion SNR (common.metrics.msnr): 1 px only takes the pixel-scale noise out of the frame
# differences; the cine's cardiac motion is compared nearly at full resolution (the black hole uses 4 px).
MOTION_BLUR_PX = 1.0
DEFAULT_SAMPLES = {"quick": 2, "default": 3, "paper": 5}


def sampler_presets(setting: str) -> dict[str, DAPSConfig]:
    """DAPS settings: ``paper`` = Table 3 (20 x (20 ODE + 53 latent HMC), ``common/sampling/presets/daps_mri.yaml``,
    read when asked for; the paper's latent data step at tau = 0.10). ``default`` = 25 annealing levels from sigma 100
    down to 0.003 x 2 ODE steps (one denoiser call per level) with the linear-Gaussian data step (perturb-and-solve with
    the data perturbed, 50 CG iterations) at the noise level estimated from the data (temperature 1; :func:`mri_task`:
    thermal noise from the k-space edges times the SENSE model's misfit ratio), pixel radius floor 0.003 (network
    units). The shipped prior is pixel-space: without a decoder to shrink it, a coarse level's draw leaves noise far
    above the next level's sigma, so it needs many finely spaced levels and the prior centre unperturbed (demo case
    100000, prior after 4000 video steps: 5 x 3 exact draws 16.2 dB, 25 x 2 exact draws 21.8 dB, 25 x 2 data-perturbed
    24.9 dB). The last level's sigma and the radius floor set the pixel noise a sample keeps: on the 10 held-out cases
    of the quality table (shipped prior, 3 samples) 25 levels to sigma 0.01 with floor 0.01 gave PSNR 30.52 dB / motion
    SNR 17.78 dB, 25 levels to 0.003 with floor 0.003 30.95 / 19.89 dB, 50 levels to 0.003 30.72 / 20.60 dB at twice the
    cost (benchmarks/RESULTS.md, seventh session). ``quick`` = 1 x 2 with 10 CG iterations, for tests."""
    base = DAPSConfig(annealing_steps=20, ode_steps=20, mcmc_steps=53, lr=1.2e-3, lr_min_ratio=0.011, momentum=0.83,
                      prior_term="exact", prior_sigma=0.01, grad_clamp=1.0 / REFERENCE_TAU**2)
    linear = dataclasses.replace(base, data_step="linear-gaussian", radius_floor=0.01, perturb="data",
                                 temperature=1.0, cg_iters=50)
    presets = {"default": dataclasses.replace(linear, annealing_steps=25, ode_steps=2, sigma_min=0.003,
                                              radius_floor=0.003),
               "quick": dataclasses.replace(linear, annealing_steps=1, ode_steps=2, cg_iters=10)}
    if setting == "paper":
        presets["paper"] = paper_preset("daps_mri.yaml")
    return presets


def metric_images01(v: np.ndarray) -> np.ndarray:
    """Complex cine ``[..., T, H, W]`` -> magnitudes divided by each video's maximum, in ``[0, 1]`` (PSNR/SSIM)."""
    m = np.abs(np.asarray(v)).astype(np.float64)
    peak = m.max(axis=(-3, -2, -1), keepdims=True)
    return np.clip(m / np.where(peak > 0, peak, 1.0), 0.0, 1.0)


def cine_coords(frames: int, ny: int, nx: int, where: str) -> dict[str, tuple[np.ndarray, dict]]:
    """The writers' ``frame``, ``y``, ``x`` coordinates of a cine (``where``: "on the model grid", ...)."""
    return {"frame": (np.arange(frames) / frames, {"units": "cardiac cycle fraction",
                                                   "long_name": "cardiac phase (frame index / frames)"}),
            "y": (np.arange(ny), {"units": "pixel", "long_name": f"row (phase encoding) {where}"}),
            "x": (np.arange(nx), {"units": "pixel", "long_name": f"column (readout) {where}"})}


def mri_task(lik: GaussianLikelihood, frames: int, size: int, truth: np.ndarray | None = None,
             export=None, attrs: dict | None = None, noise_std: float | None = None) -> ReconTask:
    """The driver's view of a cine problem on the ``size`` x ``size`` grid (module docstring: units); ``lik`` is
    the likelihood in data units (``scale`` set), from which the network-unit sampling likelihood is derived.
    ``noise_std``: thermal complex noise std per k-space sample on the grid, data units (default: estimated from
    the grid k-space's readout edges, :func:`~cardiac_mri.likelihood.estimate_noise_std`; right when the grid keeps
    the data's k-space extent, as in the demo; :func:`full_resolution_noise` for data resized to the grid). The
    sampling likelihood's noise level is that times :func:`~cardiac_mri.likelihood.model_error_ratio`, which adds
    what the SENSE model cannot explain (estimated coil maps): on clean data that misfit exceeds the thermal noise
    (1.5x at the demo's noise 0.005), and a likelihood that ignores it puts the model error into the samples.
    ``project`` zeroes the pixels outside the coil maps' support (:meth:`~cardiac_mri.sense.SenseOperator.support`):
    the data say nothing there, and the SENSE image model says the object is not there (ESPIRiT's eigenvalue crop);
    without it every diffusion method fills them with the prior's guess (on the quality table's cases ~30 % of the
    pixels, where the truth is 0; benchmarks/RESULTS.md, ninth session)."""
    scale = lik.scale
    net_lik = GaussianLikelihood(lik.op, lik.y / scale, tau=lik.tau, scale=1.0)
    try:
        thermal = estimate_noise_std(net_lik.y, lik.op.mask) if noise_std is None else noise_std / scale
        if not (thermal > 0 and np.isfinite(thermal)):
            raise ValueError(f"the noise level must be a positive number, got {thermal}")
        ratio = model_error_ratio(lik.op, net_lik.y, thermal)
    except ValueError as exc:
        raise DemoError(f"STeP reconstruction: {exc}") from exc
    noise_std = thermal * ratio
    linear = linear_gaussian_model(net_lik, noise_std)
    support = lik.op.support()

    def project(x: torch.Tensor) -> torch.Tensor:  # the SENSE image is zero where no coil map sees it
        return x * support.to(device=x.device, dtype=x.dtype)

    def report(x: torch.Tensor) -> dict[str, float]:
        return {"rel_misfit": float(linear.relative_misfit(x.to(torch.float32)).mean())}

    def from_physical(v: np.ndarray) -> torch.Tensor:
        return complex_to_channels(torch.as_tensor(np.asarray(v)).to(torch.complex64) / scale)

    def loglik(x: torch.Tensor) -> torch.Tensor:
        return net_lik.to(x.device)(x)

    def to_physical(x: torch.Tensor) -> np.ndarray:
        return (scale * channels_to_complex(x.detach())).cpu().numpy().astype(np.complex64)

    def data_fit(x: torch.Tensor) -> dict[str, np.ndarray]:
        with torch.no_grad():
            return {"misfit": lik.data_misfit(x.detach().cpu()).double().numpy()}

    coords = cine_coords(frames, size, size, "on the model grid")
    meta = {"tau": lik.tau, "scale_image_units_per_network_unit": scale, "noise_std_estimate": noise_std,
            "noise_std_thermal": thermal, "model_error_ratio": ratio,
            "coil_support_fraction": float(support.double().mean()),
            "noise_estimator": "thermal: 1.4826 x MAD of the real and imaginary parts of the measured k-space in the "
                               "outer 1/8 of the readout on both sides, x sqrt(2) (per complex sample, network units; "
                               "or given); times the SENSE model's residual ratio (model_error_ratio)",
            "likelihood": "Gaussian in network units, -||A x - y/scale||^2 / tau^2 (multi-coil SENSE, centred "
                          "orthonormal FFT); misfit ||A(scale x) - y|| in data units",
            **(attrs or {})}
    return ReconTask(name="mri", frames=frames, image_shape=(2, size, size), log_likelihood=loglik,
                     to_physical=to_physical, data_fit=data_fit, metric_images=metric_images01,
                     units="image units (complex, magnitude in the figures)", coords=coords, truth=truth,
                     export=export, attrs=meta, from_physical=from_physical, linear=linear, report=report,
                     project=project, motion_blur_px=MOTION_BLUR_PX)


def submission_export(name: str = "cine_sax.mat"):
    """Export of the posterior mean of every method as ``mat/<method>/<name>`` (``img4ranking``: run4Ranking's
    subset of the one-slice video, MATLAB v5 as the official scorer reads it) and ``mat/<method>/<stem>_recon.mat``
    (``recon``, complex, all frames, ``(t, slice = 1, y, x)``), via :mod:`cardiac_mri.evaluation`."""
    from cardiac_mri.evaluation import ranking_subset, write_mat, write_submission

    def export(out: Path, posts: list[MethodPosterior]) -> list[Path]:
        written = []
        for p in posts:
            folder = out / "mat" / variable_name(p.method)
            mean = p.mean_sample()[:, None]
            written.append(write_submission(folder / name, ranking_subset(mean)))
            written.append(write_mat(folder / name.replace(".mat", "_recon.mat"), {"recon": mean.astype(np.complex64)}))
        return written

    return export


def grid_problem(kspace: torch.Tensor, mask: torch.Tensor, size: int, calib: int,
                 maps: torch.Tensor | None = None):
    """Measured k-space of one slice ``(t, coil, ky, kx)`` (zeros where not sampled) and its ``[ky, kx]`` mask ->
    ``(op, y [T, C, size, size])`` on the model grid. ``maps``: coil maps ``[C, ky, kx]`` at the data's resolution
    (moved to the grid like the images, so that the grid's coil combination has the same phase reference as the
    full-resolution one); default: ESPIRiT on the grid k-space."""
    from cardiac_mri.coils import espirit_maps, normalize_maps

    t, c, ny, nx = kspace.shape
    check_grid(ny, nx, size)
    lines = sampled_lines(mask.to(torch.float32)).to(torch.float32)  # [ny]
    grid_mask = center_crop(lines[:, None].expand(ny, ny), (size, size)).contiguous()
    coil_images = to_model_grid(ifft2c(kspace.to(torch.complex64)), size)
    y = grid_mask * fft2c(coil_images)
    if c == 1:
        grid_maps = torch.ones(1, size, size, dtype=torch.complex64)
    elif maps is not None:
        grid_maps = normalize_maps(to_model_grid(maps.to(torch.complex64), size), eps=0.25)
    else:
        n_acs = int(grid_mask[size // 2 - calib // 2: size // 2 - calib // 2 + calib, 0].sum())
        if n_acs < calib:
            raise DemoError(f"STeP reconstruction: only {n_acs} of the central {calib} lines are sampled; lower "
                            "--calib to the ACS size")
        grid_maps = espirit_maps(y, calib_width=calib)
    return SenseOperator(grid_maps, grid_mask), y.to(torch.complex64)


def check_grid(ny: int, nx: int, size: int) -> None:
    """``DemoError`` unless a ``(ny, nx)`` acquisition can be moved to the prior's ``size`` grid."""
    if ny > nx:
        raise DemoError(f"STeP reconstruction: k-space has ny = {ny} > nx = {nx}; the model grid crops the longer "
                        "axis, which must be the fully sampled readout (ny <= nx)")
    if ny < size:
        raise DemoError(f"STeP reconstruction: k-space has ny = {ny} phase-encoding lines, fewer than the prior's "
                        f"{size}x{size} grid")


def full_resolution_noise(kspace: torch.Tensor, mask: torch.Tensor, size: int) -> float:
    """Noise std per complex k-space sample on the ``size`` grid, data units, from measured k-space of one slice
    ``(t, coil, ky, kx)`` at its full resolution: :func:`~cardiac_mri.likelihood.estimate_noise_std` on the
    readout edges of the full k-space (noise-dominated there; the grid's own edges are not once the data are
    Fourier-resized), times ``size / side`` (``side = min(ky, kx)``), the factor by which
    :func:`~cardiac_mri.images.to_model_grid` scales white noise."""
    side = min(kspace.shape[-2:])
    try:
        return estimate_noise_std(kspace.to(torch.complex64), mask.to(torch.float32)) * size / side
    except ValueError as exc:
        raise DemoError(f"STeP reconstruction: {exc}") from exc


def user_likelihood(op: SenseOperator, y: torch.Tensor, tau: float = REFERENCE_TAU) -> GaussianLikelihood:
    """Likelihood with ``scale`` from a 10-iteration CG-SENSE reconstruction of ``y`` (no truth needed)."""
    from cardiac_mri.baselines import sense_cg

    recon = sense_cg(op, y[None], iters=10)[0]
    try:
        scale = video_scale(recon)
    except ValueError as exc:
        raise DemoError(f"STeP reconstruction: the measured k-space has no signal ({exc})") from exc
    return GaussianLikelihood(op, y, tau=tau, scale=scale)


def prior_image_size(priors) -> int:
    return priors.image.config.image_size * priors.latent_factor


def sample_and_write(args: argparse.Namespace, task: ReconTask, priors, out: Path, attrs: dict,
                     method: str = "STeP") -> dict:
    """Sample the methods of ``args.methods`` (``method`` when the command has no ``--methods``) for ``task``, write
    the outputs to ``out``; returns the metrics."""
    methods = parse_methods(args.methods) if hasattr(args, "methods") else (METHODS[method],)
    return common_sample_and_write(args, task, priors, out, attrs, sampler_presets, DEFAULT_SAMPLES, methods)


def load_mri_priors(args: argparse.Namespace):
    """The priors named by ``--prior/--vae/--image/--video`` (default: shipped), checked for (real, imag) frames."""
    return priors_from_args(args, default_prior_paths, 2, "an MRI prior takes 2 (real, imag)")


def full_maps(kspace: torch.Tensor, calib: int, maps: torch.Tensor | None = None) -> torch.Tensor:
    """Coil maps ``[C, ny, nx]`` of one slice ``(t, coil, ky, kx)``: ``maps`` if given, ones for single coil, else
    ESPIRiT on the measured ACS."""
    from cardiac_mri.coils import espirit_maps

    c, ny, nx = kspace.shape[1:]
    if maps is not None:
        if tuple(maps.shape) != (c, ny, nx):
            raise DemoError(f"--maps: coil maps have shape {tuple(maps.shape)}, the k-space needs {(c, ny, nx)}")
        return maps.to(torch.complex64)
    if c == 1:
        return torch.ones(1, ny, nx, dtype=torch.complex64)
    try:
        return espirit_maps(kspace, calib_width=calib)
    except ValueError as exc:
        raise DemoError(f"STeP reconstruction: {exc}") from exc


def full_resolution_task(op: SenseOperator, y: torch.Tensor, frames: int, attrs: dict) -> ReconTask:
    """The task that describes full-resolution posterior samples for the writers (coordinates of the acquisition
    matrix, misfit ``||A x - y||`` in data units); ``x`` are complex images ``[S, T, ny, nx]`` in image units."""
    ny, nx = op.image_shape

    def data_fit(x: torch.Tensor) -> dict[str, np.ndarray]:
        with torch.no_grad():
            z = x if x.is_complex() else channels_to_complex(x)
            r = op(z.to(op.maps.dtype)) - y
            return {"misfit": r.abs().pow(2).flatten(1).sum(1).sqrt().double().numpy()}

    def to_physical(x: torch.Tensor) -> np.ndarray:
        return (x if x.is_complex() else channels_to_complex(x)).detach().cpu().numpy().astype(np.complex64)

    def from_physical(v: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(v)).to(torch.complex64)

    def loglik(x: torch.Tensor) -> torch.Tensor:
        return -data_fit(x)["misfit"] ** 2

    coords = cine_coords(frames, ny, nx, "of the acquisition matrix")
    return ReconTask(name="mri", frames=frames, image_shape=(2, ny, nx), log_likelihood=loglik,
                     to_physical=to_physical, data_fit=data_fit, metric_images=metric_images01,
                     units="image units (complex, magnitude in the figures)", coords=coords, attrs=attrs,
                     from_physical=from_physical, motion_blur_px=MOTION_BLUR_PX)


def to_full_resolution(post: MethodPosterior, op: SenseOperator, y: torch.Tensor, task: ReconTask, lam: float,
                       iters: int) -> tuple[MethodPosterior, dict]:
    """Grid samples of ``post`` -> full-resolution samples: :func:`~cardiac_mri.fullres.from_model_grid`, then
    :func:`~cardiac_mri.fullres.data_consistency`; returns the new posterior (data fit at full resolution) and a
    CG report."""
    from cardiac_mri.fullres import data_consistency, from_model_grid

    up = from_model_grid(torch.from_numpy(np.asarray(post.samples)), op.image_shape)
    x, info = data_consistency(op, y, up, lam=lam, iters=iters)
    if not bool(torch.isfinite(torch.view_as_real(x)).all()):
        raise DemoError(f"STeP reconstruction: the full-resolution data-consistency solve of {post.method} gave "
                        "non-finite values; nothing written")
    report = {"cg_iterations": info.iterations, "cg_relative_residual": info.relative_residual.tolist(),
              "lambda": lam}
    return MethodPosterior(post.method, task.to_physical(x), task.data_fit(x)), report


def check_step_input(path: Path, shape: tuple[int, ...], size: int) -> None:
    """One-line ``DemoError`` naming ``path`` when ``kspace (t, slice, coil, ky, kx)`` cannot be reconstructed on a
    ``size`` grid (checked before any work)."""
    _, _, _, ny, nx = shape
    try:
        check_grid(ny, nx, size)
    except DemoError as exc:
        raise DemoError(f"{path}: {exc}") from exc


def reconstruct_file(args: argparse.Namespace, kspace: np.ndarray, mask: torch.Tensor, out: Path, name: str,
                     method: str = "STeP") -> np.ndarray:
    """``stepvip mri reconstruct --method step|idm|idm-bcs``: every slice of ``kspace (t, slice, coil, ky, kx)``
    (zeros where not sampled) is sampled on the prior's grid, moved back to the acquisition matrix and made
    consistent with all measured k-space (:mod:`cardiac_mri.fullres`); per slice ``out/<stem>_slice_XX/`` gets the
    full-resolution posterior (``samples.nc``, ``uq.json``, figures). Returns the posterior mean, complex
    ``(t, slice, ny, nx)`` in image units (the caller writes the submission). The grid samples of a slice go through
    the work folder ``out/<stem>_slice_XX.partial`` (:func:`common.recon.run.run_stored`: ``--resume``, and under
    torchrun split across the processes; rank > 0 raises :class:`~common.recon.cli.OtherRank` at the end)."""
    from cardiac_mri.coils import read_maps
    from common.recon.cli import OtherRank
    from common.recon.outputs import write_outputs
    from common.recon.run import run_stored
    from common.recon.sample_store import SampleStore, run_identity, work_folder

    priors = load_mri_priors(args)
    size = prior_image_size(priors)
    check_step_input(args.input, kspace.shape, size)
    key = "quick" if args.quick else args.quality
    plan = method_plan(args, (METHODS[method],), sampler_presets, "mri")
    n = args.samples if args.samples is not None else DEFAULT_SAMPLES[key]
    if n < 1:
        raise DemoError(f"--samples must be >= 1, got {n}")
    user_maps = read_maps(args.maps) if getattr(args, "maps", None) is not None else None
    lam, iters = args.dc_lambda, args.dc_iters
    out = Path(out)
    means = []
    for s in range(kspace.shape[1]):
        k_slice = torch.from_numpy(kspace[:, s])
        maps = full_maps(k_slice, args.calib, user_maps)
        op_full = SenseOperator(maps, mask)
        y_full = op_full.mask.to(torch.float32) * k_slice.to(torch.complex64)
        op, y = grid_problem(k_slice, mask, size, args.calib, maps=None if k_slice.shape[1] == 1 else maps)
        lik = user_likelihood(op, y)
        attrs = {"input": str(args.input), "slice": s}
        task = mri_task(lik, kspace.shape[0], size, attrs=attrs, noise_std=full_resolution_noise(k_slice, mask, size))
        folder = out / f"{Path(name).stem}_slice_{s:02d}"
        store = SampleStore(work_folder(folder), {m.name: run_identity(task, priors, args.seed, key, m.name,
                                                                         settings_dict(c)) for m, c in plan})
        result = run_stored(task, priors, plan, n, args.seed, args.modes, store, bool(getattr(args, "resume", False)))
        if result is None:  # a torchrun rank > 0: its samples are stored, rank 0 writes this slice
            continue
        posts, _ = result
        full_task = full_resolution_task(op_full, y_full, kspace.shape[0], {**task.attrs, "grid_size": size})
        full_posts, reports = [], {}
        for p in posts:
            fp, reports[p.method] = to_full_resolution(p, op_full, y_full, full_task, lam, iters)
            find_modes(fp, n_modes=args.modes, seed=args.seed)
            full_posts.append(fp)
        metrics = {p.method: {k: float(v.mean()) for k, v in p.fit.items()} for p in full_posts}
        all_attrs = {"command": f"stepvip mri reconstruct --method {method}",
                     "settings": {method: settings_dict(plan[0][1])},
                     "setting": key, "seed": args.seed, "samples": n, "priors": priors.paths,
                     "seeds": f"sample k: DAPS seed {args.seed} + k",
                     "full_resolution": "grid samples upsampled (Fourier) and solved for data consistency: "
                                        f"(A^H A + lam I) x = A^H y + lam x_up, lam {lam}, at most {iters} CG "
                                        "iterations from x_up",
                     "data_consistency": json.dumps(reports)}
        write_outputs(folder, full_task, full_posts, metrics, all_attrs)
        store.remove()
        print(f"{method} slice {s}: misfit {metrics[method]['misfit']:.4g} (data units); wrote {folder}/",
              file=sys.stderr)
        means.append(full_posts[0].mean_sample())
    if not means:
        raise OtherRank(f"samples of {args.input} stored")
    return np.stack(means, axis=1)
