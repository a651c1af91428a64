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
from pathlib import Path

import numpy as np
import torch

from cardiac_mri.images import center_crop, to_model_grid, video_scale
from cardiac_mri.likelihood import GaussianLikelihood, estimate_noise_std, linear_gaussian_model
from cardiac_mri.masks import sampled_lines
from cardiac_mri.priors import default_prior_paths
from cardiac_mri.sense import SenseOperator, channels_to_complex, complex_to_channels, fft2c, ifft2c
from common.methods import METHODS
from common.posterior import MethodPosterior, variable_name
from common.recon.cli import paper_preset, parse_methods, priors_from_args
from common.recon.cli import sample_and_write as common_sample_and_write
from common.recon.errors import DemoError
from common.recon.task import ReconTask
from common.sampling import DAPSConfig

REFERENCE_TAU = 0.10
DEFAULT_SAMPLES = {"quick": 2, "default": 3, "paper": 5}


def sampler_presets(setting: str) -> dict[str, DAPSConfig]:
    """DAPS settings: ``paper`` = Table 3 (20 x (20 ODE + 53 latent HMC), ``common/sampling/presets/daps_mri.yaml``,
    read when asked for; the paper's latent data step at tau = 0.10). ``default`` = 5 annealing x 3 ODE steps
    with the exact linear-Gaussian data step (perturb-and-solve, 50 CG iterations) at the noise level estimated
    from the k-space edges (temperature 1), pixel radius floor 0.01 (network units); chosen by
    ``benchmarks/sweep_consistency.py`` (benchmarks/RESULTS.md, issue 10). ``quick`` = 1 x 2 with 10 CG
    iterations, for tests."""
    base = DAPSConfig(annealing_steps=20, ode_steps=20, mcmc_steps=53, lr=1.2e-3, lr_min_ratio=0.011, momentum=0.83,
                      prior_term="exact", prior_sigma=0.01, grad_clamp=1.0 / REFERENCE_TAU**2)
    linear = dataclasses.replace(base, data_step="linear-gaussian", radius_floor=0.01, perturb="both",
                                 temperature=1.0, cg_iters=50)
    presets = {"default": dataclasses.replace(linear, annealing_steps=5, ode_steps=3),
               "quick": dataclasses.replace(linear, annealing_steps=1, ode_steps=2, cg_iters=10)}
    if setting == "paper":
        presets["paper"] = paper_preset("daps_mri.yaml")
    return presets


def mri_task(lik: GaussianLikelihood, frames: int, size: int, truth: np.ndarray | None = None,
             export=None, attrs: dict | None = None, noise_std: float | None = None) -> ReconTask:
    """The driver's view of a cine problem on the ``size`` x ``size`` grid (module docstring: units); ``lik`` is
    the likelihood in data units (``scale`` set), from which the network-unit sampling likelihood is derived.
    ``noise_std``: complex noise std per k-space sample on the grid, data units (default: estimated from the grid
    k-space's readout edges, :func:`~cardiac_mri.likelihood.estimate_noise_std`; right when the grid keeps the
    data's k-space extent, as in the demo; :func:`full_resolution_noise` for data resized to the grid)."""
    scale = lik.scale
    net_lik = GaussianLikelihood(lik.op, lik.y / scale, tau=lik.tau, scale=1.0)
    try:
        noise_std = (estimate_noise_std(net_lik.y, lik.op.mask) if noise_std is None else noise_std / scale)
    except ValueError as exc:
        raise DemoError(f"STeP reconstruction: {exc}") from exc
    if not (noise_std > 0 and np.isfinite(noise_std)):
        raise DemoError(f"STeP reconstruction: the noise level must be a positive number, got {noise_std}")
    linear = linear_gaussian_model(net_lik, noise_std)

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

    def metric_images(v: np.ndarray) -> np.ndarray:
        m = np.abs(np.asarray(v)).astype(np.float64)
        peak = m.max(axis=(-3, -2, -1), keepdims=True)
        return np.clip(m / np.where(peak > 0, peak, 1.0), 0.0, 1.0)

    coords = {"frame": (np.arange(frames) / frames, {"units": "cardiac cycle fraction",
                                                     "long_name": "cardiac phase (frame index / frames)"}),
              "y": (np.arange(size), {"units": "pixel", "long_name": "row (phase encoding) on the model grid"}),
              "x": (np.arange(size), {"units": "pixel", "long_name": "column (readout) on the model grid"})}
    meta = {"tau": lik.tau, "scale_image_units_per_network_unit": scale, "noise_std_estimate": noise_std,
            "noise_estimator": "1.4826 x MAD of the real and imaginary parts of the measured k-space in the outer "
                               "1/8 of the readout on both sides, x sqrt(2) (per complex sample, network units)",
            "likelihood": "Gaussian in network units, -||A x - y/scale||^2 / tau^2 (multi-coil SENSE, centred "
                          "orthonormal FFT); misfit ||A(scale x) - y|| in data units",
            **(attrs or {})}
    return ReconTask(name="mri", frames=frames, image_shape=(2, size, size), log_likelihood=loglik,
                     to_physical=to_physical, data_fit=data_fit, metric_images=metric_images,
                     units="image units (complex, magnitude in the figures)", coords=coords, truth=truth,
                     export=export, attrs=meta, from_physical=from_physical, linear=linear, report=report)


def submission_export(name: str = "cine_sax.mat"):
    """Export of the posterior mean magnitude of every method as ``mat/<method>/<name>`` (key ``img4ranking``,
    single precision, MATLAB v7.3, via :func:`cardiac_mri.evaluation.write_submission`), shape
    ``(t, slice = 1, y, x)`` on the model grid (all frames, not the official ranking crop)."""
    from cardiac_mri.evaluation import write_submission

    def export(out: Path, posts: list[MethodPosterior]) -> list[Path]:
        return [write_submission(out / "mat" / variable_name(p.method) / name, np.abs(p.mean_sample())[:, None])
                for p in posts]

    return export


def grid_problem(kspace: torch.Tensor, mask: torch.Tensor, size: int, calib: int):
    """Measured k-space of one slice ``(t, coil, ky, kx)`` (zeros where not sampled) and its ``[ky, kx]`` mask ->
    ``(op, y [T, C, size, size], zero-filled coil images)`` on the model grid."""
    from cardiac_mri.coils import espirit_maps

    t, c, ny, nx = kspace.shape
    if ny > nx:
        raise DemoError(f"STeP reconstruction: k-space has ny = {ny} > nx = {nx}; the model grid crops the longer "
                        "axis, which must be the fully sampled readout (ny <= nx)")
    if ny < size:
        raise DemoError(f"STeP reconstruction: k-space has ny = {ny} phase-encoding lines, fewer than the prior's "
                        f"{size}x{size} grid")
    lines = sampled_lines(mask.to(torch.float32)).to(torch.float32)  # [ny]
    grid_mask = center_crop(lines[:, None].expand(ny, ny), (size, size)).contiguous()
    coil_images = to_model_grid(ifft2c(kspace.to(torch.complex64)), size)
    y = grid_mask * fft2c(coil_images)
    if c == 1:
        maps = torch.ones(1, size, size, dtype=torch.complex64)
    else:
        n_acs = int(grid_mask[size // 2 - calib // 2: size // 2 - calib // 2 + calib, 0].sum())
        if n_acs < calib:
            raise DemoError(f"STeP reconstruction: only {n_acs} of the central {calib} lines are sampled; lower "
                            "--calib to the ACS size")
        maps = espirit_maps(y, calib_width=calib)
    return SenseOperator(maps, grid_mask), y.to(torch.complex64)


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


def reconstruct_file(args: argparse.Namespace, kspace: np.ndarray, mask: torch.Tensor, out: Path, name: str,
                     method: str = "STeP") -> int:
    """``stepvip mri reconstruct --method step|svi|vision-xl|tcvr`` (``method`` the registered name): every slice
    of ``kspace (t, slice, coil, ky, kx)`` (zeros where not sampled) into ``out/<stem>_slice_XX/`` (driver outputs)
    and the posterior mean of all slices as
    ``out/<name>`` (``img4ranking``, ``(t, slice, y, x)`` on the model grid)."""
    from cardiac_mri.evaluation import write_submission

    priors = load_mri_priors(args)
    size = prior_image_size(priors)
    out = Path(out)
    means = []
    for s in range(kspace.shape[1]):
        k_slice = torch.from_numpy(kspace[:, s])
        op, y = grid_problem(k_slice, mask, size, args.calib)
        lik = user_likelihood(op, y)
        task = mri_task(lik, kspace.shape[0], size, attrs={"input": str(args.input), "slice": s},
                        noise_std=full_resolution_noise(k_slice, mask, size))
        folder = out / f"{Path(name).stem}_slice_{s:02d}"
        sample_and_write(args, task, priors, folder, {"command": f"stepvip mri reconstruct --method {method}"},
                         method)
        import xarray as xr

        with xr.open_dataset(folder / "samples.nc", engine="h5netcdf") as ds:
            means.append(np.asarray(ds[f"{variable_name(method)}_mean"]))
    path = write_submission(out / name, np.stack(means, axis=1))
    print(f"{method}: {kspace.shape[1]} slice(s); wrote {out}/{Path(name).stem}_slice_*/ and {path} (img4ranking, "
          "model grid)")
    return 0
