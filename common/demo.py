"""Shared driver of the STeP demos and of user-data reconstructions (domain-free).

A domain describes its inverse problem as a :class:`ReconTask` (likelihood on network-unit videos, conversion to
physical units, per-sample data fit, coordinates, optional truth); this module

1. loads the priors (:func:`resolve_prior_paths`, :func:`load_priors`: VAE, image UNet = IDM, video UNet = STeP);
2. draws posterior samples with the three methods of paper Sec. 4.1 under the same DAPS settings and seeds
   (:func:`sample_method`): STeP = video prior; IDM+BCS = image prior with batch-consistent noise (Eq. 17);
   IDM = image prior;
3. summarises them (:mod:`common.posterior`), scores them against the truth (:func:`truth_metrics`) and writes
   ``samples.nc``, ``uq.json``, ``metrics.json``, PNG figures and a GIF per method (:func:`write_outputs`).

The ``stepvip demo`` command group (:func:`register`) finds the domain demos through the entry-point group
``stepvip.demos`` (``name = "package.module:run"``, ``run(args) -> int``), so ``common`` imports no domain.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import torch

from common import checkpoints
from common._version import __version__
from common.figures import difference_grid, frame_grid, mean_std_maps, pick_frames, write_gif
from common.io import atomic_write_text
from common.metrics import dpsnr, dssim, psnr, ssim
from common.nets.unet import VideoUNet
from common.nets.vae import FrameVAE
from common.posterior import MethodPosterior, find_modes, posterior_dataset, uq_report, variable_name, write_netcdf
from common.priors import PRIOR_FILES, REQUIRED
from common.sampling import PRESETS, DAPSConfig, daps, image_mode
from common.sampling.config import DATA_STEPS, PERTURBATIONS
from common.sampling.consistency import LinearGaussian, make_step

METHODS = ("STeP", "IDM+BCS", "IDM")
PRIOR_KEYS = tuple(PRIOR_FILES)  # ("vae", "image", "video")
DEMO_GROUP = "stepvip.demos"


class DemoError(ValueError):
    """A user error (missing or bad prior, input or option), reported on one line with exit code 2."""


@dataclass
class Priors:
    """The networks of a STeP prior and the files they came from; ``vae`` is None for a pixel-space prior."""

    vae: FrameVAE | None
    image: VideoUNet
    video: VideoUNet
    paths: dict[str, str]

    @property
    def latent_factor(self) -> int:
        """Spatial downsampling from frames to the UNets' grid (1 in pixel space)."""
        return 1 if self.vae is None else self.vae.config.downsampling

    @property
    def frame_channels(self) -> int:
        """Channels ``C`` of the frames the prior describes (1 black hole; 2 = real, imag for MRI)."""
        return self.image.config.in_channels if self.vae is None else self.vae.config.in_channels

    @property
    def device(self) -> torch.device:
        return next(self.image.parameters()).device

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Frames ``[B, T, C, H, W]`` -> the UNets' representation (VAE mean, or the frames themselves)."""
        return x if self.vae is None else self.vae.encode(x)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The UNets' representation -> frames (VAE decoder, or the identity)."""
        return z if self.vae is None else self.vae.decode(z)


def resolve_prior_paths(prior_dir: str | Path | None, overrides: dict[str, str | Path | None],
                        default: Callable[[], dict]) -> dict[str, Path]:
    """Checkpoint paths: ``prior_dir/{image,video[,vae]}.safetensors``, else the shipped ones from ``default()``;
    single files in ``overrides`` replace either. A folder without ``vae.safetensors`` is a pixel-space prior (no
    ``vae`` key). Every path given must exist (``DemoError`` names the missing one); nothing falls back to another
    prior."""
    chosen = {k: Path(v) for k, v in overrides.items() if v is not None}
    if prior_dir is not None:
        d = Path(prior_dir)
        if not d.is_dir():
            raise DemoError(f"--prior {d}: no such folder (expected one holding image.safetensors, "
                            "video.safetensors and, for a latent prior, vae.safetensors)")
        base = {k: d / f"{k}.safetensors" for k in PRIOR_KEYS if k in REQUIRED or (d / f"{k}.safetensors").is_file()}
    elif all(k in chosen for k in REQUIRED):
        base = {}
    else:
        try:
            base = {k: Path(v) for k, v in default().items()}
        except (ImportError, FileNotFoundError) as exc:
            raise DemoError(f"the shipped prior is not available ({exc}); pass --prior DIR holding "
                            "image.safetensors, video.safetensors [, vae.safetensors] "
                            "(or --image/--video [--vae])") from exc
    paths = {**base, **chosen}
    for k in PRIOR_KEYS:
        if k not in paths:
            if k not in REQUIRED:
                continue
            raise DemoError(f"prior checkpoint {k!r} not given")
        if not paths[k].is_file():
            raise DemoError(f"prior {k} checkpoint {paths[k]}: file not found")
    return paths


def load_priors(paths: dict[str, Path], map_location: str | torch.device = "cpu") -> Priors:
    """Load and cross-check the checkpoints (channels, a video prior with temporal layers); no ``vae`` path = a
    pixel-space prior."""
    try:
        map_location = torch.device(map_location)
    except RuntimeError as exc:
        raise DemoError(f"--device {map_location!r}: not a torch device ({exc})") from exc
    try:
        vae = checkpoints.load(paths["vae"], map_location, expect=FrameVAE) if "vae" in paths else None
        image = checkpoints.load(paths["image"], map_location, expect=VideoUNet)
        video = checkpoints.load(paths["video"], map_location, expect=VideoUNet)
    except checkpoints.CheckpointError as exc:
        raise DemoError(str(exc)) from exc
    want = image.config.in_channels if vae is None else vae.config.latent_channels
    for key, net in (("image", image), ("video", video)):
        if net.config.in_channels != want:
            source = f"the image UNet {paths['image']} has" if vae is None else f"the VAE {paths['vae']} has"
            raise DemoError(f"prior {key} checkpoint {paths[key]}: UNet has {net.config.in_channels} input channels, "
                            f"{source} {want}")
    if not video.config.temporal:
        raise DemoError(f"prior video checkpoint {paths['video']}: the UNet has no temporal layers (not a STeP prior)")
    for net in (vae, image, video):
        if net is not None:
            net.requires_grad_(False)
    return Priors(vae=vae, image=image, video=video, paths={k: str(v) for k, v in paths.items()})


def priors_from_args(args: argparse.Namespace, default: Callable[[], dict], channels: int, domain: str) -> Priors:
    """The priors named by ``--prior/--vae/--image/--video`` (default: ``default()``, the shipped ones), checked to
    take ``channels``-channel frames (``domain`` names the expected layout in the error, e.g. "an MRI prior takes
    2 (real, imag)")."""
    paths = resolve_prior_paths(args.prior, {"vae": args.vae, "image": args.image, "video": args.video}, default)
    priors = load_priors(paths, map_location=args.device)
    if priors.frame_channels != channels:
        source = paths["vae"] if priors.vae is not None else paths["image"]
        raise DemoError(f"prior {source}: takes {priors.frame_channels}-channel frames, {domain}")
    return priors


@dataclass
class ReconTask:
    """A domain's inverse problem in the driver's terms.

    Attributes:
        name: domain name (``blackhole``, ``mri``).
        frames, image_shape: video length T and network-unit frame shape ``(C, H, W)``.
        log_likelihood: ``x [B, T, C, H, W] (network units) -> log p(y | x) [B]`` (temperature included).
        to_physical: network units -> physical ``[B, T, H, W]`` numpy (complex for MRI).
        data_fit: network units -> per-sample measures ``{name: [B]}`` (chi2_cp/chi2_logca, or misfit).
        metric_images: physical ``[..., T, H, W]`` -> real images in ``[0, 1]`` for PSNR/SSIM.
        units: physical units of ``to_physical`` (for the netCDF attributes).
        coords: ``frame``, ``y``, ``x`` -> ``(values, attrs with units)``.
        truth: physical ``[T, H, W]`` or None (user data).
        export: ``export(out_dir, posts) -> list of written paths`` (FITS / .mat), or None.
        attrs: extra dataset attributes (case, seeds, observation).
        from_physical: physical ``[S, T, H, W]`` numpy -> network units ``[S, T, C, H, W]`` (to score the posterior
            mean written to the files with ``data_fit``).
        residuals: whitened residuals ``x -> [B, M]`` of a least-squares likelihood at the data's own error bars
            (``log p = -||residuals||^2 / 2``), for the pixel Gauss-Newton step; None if the likelihood is not one.
        linear: the likelihood as a linear operator with Gaussian noise (noise level from the data), for the
            linear-Gaussian step; None if it is not one.
        project: projection onto the physically allowed set (e.g. non-negative intensities), or None.
        report: ``x -> {name: value}`` in the user's units for the progress bar (chi2, relative misfit).
    """

    name: str
    frames: int
    image_shape: tuple[int, int, int]
    log_likelihood: Callable[[torch.Tensor], torch.Tensor]
    to_physical: Callable[[torch.Tensor], np.ndarray]
    data_fit: Callable[[torch.Tensor], dict[str, np.ndarray]]
    metric_images: Callable[[np.ndarray], np.ndarray]
    units: str
    coords: dict[str, tuple[np.ndarray, dict]]
    truth: np.ndarray | None = None
    export: Callable[[Path, list[MethodPosterior]], list[Path]] | None = None
    attrs: dict = field(default_factory=dict)
    from_physical: Callable[[np.ndarray], torch.Tensor] | None = None
    residuals: Callable[[torch.Tensor], torch.Tensor] | None = None
    linear: LinearGaussian | None = None
    project: Callable[[torch.Tensor], torch.Tensor] | None = None
    report: Callable[[torch.Tensor], dict[str, float]] | None = None


def method_denoiser(method: str, priors: Priors):
    """``(denoiser, batch_consistent)`` of a method: STeP = video UNet; IDM(+BCS) = image UNet, temporal off."""
    if method == "STeP":
        return priors.video, False
    if method == "IDM+BCS":
        return image_mode(priors.image), True
    if method == "IDM":
        return image_mode(priors.image), False
    raise DemoError(f"unknown method {method!r}; expected one of {METHODS}")


def sample_method(task: ReconTask, priors: Priors, method: str, config: DAPSConfig, n_samples: int,
                  seed: int, batch: int | None = None) -> torch.Tensor:
    """``n_samples`` posterior samples of ``task`` with ``method``: network-unit videos ``[S, T, C, H, W]``, the
    pixel-space output of the data-consistency step that ``config.data_step`` names (IDM and IDM+BCS use the same
    step as STeP, so the comparison stays fair).

    Sample k uses seed ``seed + k`` whatever the method, so the three methods start from the same noise, and
    whatever ``batch`` (samples per sampler call; default: 1 on a CPU, where a batch of 5 black-hole movies ran
    1.8x slower per sample than single ones (decoder forward + backward, 64 frames of 64 x 64), all of them on
    other devices).
    """
    if batch is None:
        batch = 1 if priors.device.type == "cpu" else n_samples
    if batch < n_samples:
        return torch.cat([sample_method(task, priors, method, config, min(batch, n_samples - k), seed + k, batch)
                          for k in range(0, n_samples, batch)])
    c, h, w = task.image_shape
    f = priors.latent_factor
    grid = f * priors.image.config.patch * 2 ** (len(priors.image.config.channels) - 1)
    if h % grid or w % grid or c != priors.frame_channels:
        raise DemoError(f"{task.name}: frames {task.image_shape} do not fit the prior ({priors.paths['image']}: "
                        f"{priors.frame_channels} channels, sizes divisible by {grid})")
    denoiser, bcs = method_denoiser(method, priors)
    shape = (n_samples, task.frames, priors.image.config.in_channels, h // f, w // f)
    latent = priors.vae is not None
    try:
        step = make_step(config, denoiser, log_likelihood=task.log_likelihood,
                         decode=priors.decode if latent else None, encode=priors.encode if latent else None,
                         residuals=task.residuals, linear=task.linear, project=task.project)
    except ValueError as exc:
        raise DemoError(f"{task.name}: {exc}") from exc
    return daps(denoiser, step, shape, config, batch_consistent=bcs, generator=seed, report=task.report).pixels


def describe_setting(config: DAPSConfig) -> str:
    """One line naming the sampler setting, e.g. "5 annealing x 3 ODE steps, data step pixel (gauss-newton, 4
    iterations, 35 at the last, temperature 1)"."""
    head = f"{config.annealing_steps} annealing x {config.ode_steps} ODE steps, data step {config.data_step}"
    if config.data_step == "latent":
        return f"{head} ({config.mcmc_steps} {config.kernel} steps through the decoder)"
    if config.data_step == "linear-gaussian":
        kind = {"both": "exact draws", "data": "data-perturbed draws", "none": "conditional mean"}[config.perturb]
        return f"{head} ({kind}, {config.cg_iters} CG iterations, temperature {config.temperature:g})"
    return (f"{head} ({config.pixel_kernel}, {config.dc_iters} iterations, {config.dc_final_iters} at the last, "
            f"temperature {config.temperature:g})")


def truth_metrics(pred01: np.ndarray, truth01: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample ``psnr, ssim`` (frame averages) and ``dpsnr, dssim`` of ``[S, T, H, W]`` against ``[T, H, W]``,
    all images in ``[0, 1]`` (Gaussian 11x11 SSIM window, paper Sec. 4.1)."""
    p = torch.as_tensor(np.asarray(pred01, dtype=np.float64))
    t = torch.as_tensor(np.asarray(truth01, dtype=np.float64)).expand_as(p)
    return {"psnr": psnr(p, t).mean(-1).numpy(), "ssim": ssim(p, t).mean(-1).numpy(),
            "dpsnr": dpsnr(p, t).numpy(), "dssim": dssim(p, t).numpy()}


def run_task(task: ReconTask, priors: Priors, methods: tuple[str, ...], config: DAPSConfig, n_samples: int,
             seed: int, n_modes: int) -> tuple[list[MethodPosterior], dict[str, dict[str, float]]]:
    """Sample every method, summarise, find modes and (with a truth) score: ``(posteriors, metrics)`` where
    ``metrics[method]`` averages each measure over the samples; ``psnr_of_mean`` and ``<fit>_of_mean`` score the
    posterior mean (the movie written to the FITS / submission files)."""
    posts, metrics = [], {}
    for method in methods:
        print(f"[{task.name}] {method}: {n_samples} sample(s), {describe_setting(config)}", file=sys.stderr,
              flush=True)
        x = sample_method(task, priors, method, config, n_samples, seed)
        post = MethodPosterior(method, task.to_physical(x), task.data_fit(x))
        find_modes(post, n_modes=n_modes, seed=seed)
        posts.append(post)
        row = {}
        if task.truth is not None:
            truth01 = task.metric_images(task.truth[None])[0]
            scores = truth_metrics(task.metric_images(post.samples), truth01)
            row.update({k: float(v.mean()) for k, v in scores.items()})
            of_mean = truth_metrics(task.metric_images(post.mean_sample()[None]), truth01)
            row["psnr_of_mean"] = float(of_mean["psnr"][0])
        row.update({k: float(v.mean()) for k, v in post.fit.items()})
        row.update({f"{k}_of_mean": v for k, v in mean_fit(task, post).items()})
        metrics[method] = row
    return posts, metrics


def mean_fit(task: ReconTask, post: MethodPosterior) -> dict[str, float]:
    """Data fit of the posterior mean (the movie the FITS / submission files hold), ``{}`` when the task cannot
    map physical units back; keys as in ``task.data_fit``."""
    if task.from_physical is None:
        return {}
    x = task.from_physical(post.mean_sample()[None])
    return {k: float(np.asarray(v).reshape(-1)[0]) for k, v in task.data_fit(x).items()}


def sample_and_write(args: argparse.Namespace, task: ReconTask, priors: Priors, out: Path, attrs: dict,
                     presets: Callable[[str], dict[str, DAPSConfig]], default_samples: dict[str, int],
                     methods: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Shared tail of every demo and reconstruction: the DAPS setting of ``--quick``/``--quality`` from
    ``presets(setting)``, ``--samples`` (default ``default_samples[setting]``), sampling of ``methods``
    (:func:`run_task`) and :func:`write_outputs` into ``out``, with the settings and seeds in the attributes.
    Returns the metrics."""
    key = "quick" if args.quick else args.quality
    cfg = sampler_config(args, presets(key))
    n = args.samples if args.samples is not None else default_samples[key]
    if n < 1:
        raise DemoError(f"--samples must be >= 1, got {n}")
    posts, metrics = run_task(task, priors, methods, cfg, n, args.seed, args.modes)
    all_attrs = {**attrs, "daps_config": cfg.to_dict(), "setting": key, "seed": args.seed, "samples": n,
                 "seeds": f"sample k of every method: DAPS seed {args.seed} + k", "priors": priors.paths}
    write_outputs(Path(out), task, posts, metrics, all_attrs)
    return metrics


def format_table(metrics: dict[str, dict[str, float]]) -> str:
    """Plain-text table: one row per method, one column per metric (mean over samples; ``*_of_mean``: the data fit
    of the posterior mean, the movie written to the FITS / submission files)."""
    cols = list(dict.fromkeys(k for row in metrics.values() for k in row))
    widths = [max(11, len(c)) + 1 for c in cols]
    lines = ["method   " + "".join(f"{c:>{w}}" for c, w in zip(cols, widths, strict=True))]
    for m, row in metrics.items():
        lines.append(f"{m:<9}" + "".join(f"{row.get(c, float('nan')):>{w}.4g}" for c, w in zip(cols, widths,
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


def add_arguments(parser: argparse.ArgumentParser, methods_default: tuple[str, ...] = METHODS) -> None:
    """Options shared by demos and reconstructions: ``--out``, ``--methods`` and :func:`add_sampling_arguments`."""
    parser.add_argument("--out", required=True, type=Path, help="output folder (created)")
    parser.add_argument("--methods", default=",".join(methods_default),
                        help=f"comma-separated subset of {','.join(METHODS)}")
    add_sampling_arguments(parser)


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """Prior files, sampler setting, samples, seed, modes, progress."""
    parser.add_argument("--prior", type=Path, default=None,
                        help="folder with vae.safetensors, image.safetensors, video.safetensors (default: shipped)")
    parser.add_argument("--vae", type=Path, default=None, help="VAE checkpoint (overrides --prior)")
    parser.add_argument("--image", type=Path, default=None, help="image-prior checkpoint (IDM; overrides --prior)")
    parser.add_argument("--video", type=Path, default=None, help="video-prior checkpoint (STeP; overrides --prior)")
    parser.add_argument("--quality", choices=("default", "paper"), default="default",
                        help="DAPS settings: CPU default, or the paper's Table 3 preset")
    parser.add_argument("--quick", action="store_true", help="tiny sampler settings (tests, smoke runs)")
    parser.add_argument("--data-step", choices=DATA_STEPS, default=None,
                        help="data-consistency step of DAPS (default: the setting's: pixel (black hole) or "
                             "linear-gaussian (MRI) on the CPU default, latent for --quality paper)")
    parser.add_argument("--perturb", choices=PERTURBATIONS, default=None,
                        help="pixel / linear-gaussian steps: perturb data and prior (exact draws), data only, or "
                             "none (conditional mean / mode) (default: the setting's)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="multiplier of the data's own noise level for the pixel / linear-gaussian steps "
                             "(1 = calibrated; default: the setting's)")
    parser.add_argument("--radius-floor", type=float, default=None,
                        help="floor of the pixel-space prior radius r_k, network units (default: the setting's)")
    parser.add_argument("--samples", type=int, default=None, help="posterior samples per method (default: per setting)")
    parser.add_argument("--seed", type=int, default=0, help="sample k uses seed + k (same for every method)")
    parser.add_argument("--modes", type=int, default=3, help="number of k-means modes (at most the samples)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--device", default="cpu", help="torch device for the networks and likelihood, e.g. cuda")


def parse_methods(text: str) -> tuple[str, ...]:
    methods = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise DemoError(f"--methods {text!r}: expected a comma-separated subset of {','.join(METHODS)}")
    return methods


def paper_preset(filename: str) -> DAPSConfig:
    """The paper's Table 3 DAPS preset ``common/sampling/presets/<filename>`` (package data)."""
    path = PRESETS / filename
    if not path.is_file():
        raise DemoError(f"--quality paper needs the Table 3 preset {path}, which is missing from this installation")
    return DAPSConfig.from_yaml(path)


def sampler_config(args: argparse.Namespace, presets: dict[str, DAPSConfig]) -> DAPSConfig:
    """The DAPS config of ``--quick`` / ``--quality`` from ``presets`` (keys quick, default, paper), with the
    progress bar on unless ``--no-progress`` and the data-step options ``--data-step``, ``--perturb``,
    ``--temperature``, ``--radius-floor`` where given (invalid values: ``DemoError`` naming the flag)."""
    import dataclasses

    key = "quick" if args.quick else args.quality
    changes = {name: getattr(args, name, None) for name in ("data_step", "perturb", "temperature", "radius_floor")}
    changes = {k: v for k, v in changes.items() if v is not None}
    try:
        return dataclasses.replace(presets[key], progress=not args.no_progress, **changes)
    except ValueError as exc:
        flags = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in changes.items())
        raise DemoError(f"{flags}: {exc}") from exc


def run_cli(func: Callable[[argparse.Namespace], int], prog: str) -> Callable[[argparse.Namespace], int]:
    """Wrap a command so that ``DemoError`` / ``FileNotFoundError`` become one line on stderr and exit code 2."""

    def wrapped(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (DemoError, FileNotFoundError) as exc:
            print(f"{prog}: error: {exc}", file=sys.stderr)
            return 2

    return wrapped


def add_demo_parser(subparsers, name: str, run: Callable[[argparse.Namespace], int], help_text: str) -> None:
    """One ``stepvip demo NAME`` parser with the shared options."""
    p = subparsers.add_parser(name, help=help_text, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_arguments(p)
    p.add_argument("--case", type=int, default=None, help="held-out synthetic case index (default: the documented one)")
    p.set_defaults(func=run_cli(run, f"stepvip demo {name}"))


def demo_main(name: str, run: Callable[[argparse.Namespace], int], argv: list[str] | None = None) -> int:
    """Run one demo without the entry-point lookup (``python -m blackhole.demo --out DIR ...``)."""
    parser = argparse.ArgumentParser(prog=f"python -m {name}")
    add_demo_parser(parser.add_subparsers(dest="demo", required=True), "demo", run, "")
    args = parser.parse_args(["demo", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


def register(subparsers) -> None:
    """Add ``stepvip demo`` with one sub-command per entry point of the group ``stepvip.demos``."""
    p = subparsers.add_parser(
        "demo", help="STeP vs IDM+BCS vs IDM on a held-out synthetic case",
        description="Run STeP (video prior), IDM+BCS and IDM on a held-out synthetic case of one domain with the "
                    "same DAPS settings and seeds; write posterior samples (netCDF), uncertainty summaries, "
                    "metrics.json, figures and GIFs into --out.")
    sub = p.add_subparsers(dest="demo", metavar="DOMAIN", required=True)
    for ep in sorted(entry_points(group=DEMO_GROUP), key=lambda e: e.name):
        add_demo_parser(sub, ep.name, _lazy(ep), f"the {ep.name} demo ({ep.value})")


def _lazy(ep) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        return ep.load()(args)

    return run
