"""``stepvip prior-report``: what a user needs to judge a trained prior before sampling with it.

For a prior (a shipped folder ``image.safetensors``, ``video.safetensors`` [, ``vae.safetensors``], or a training
run folder ``OUT/{vae,image,video}/ema.safetensors``) and held-out videos ``[N, T, C, H, W]`` in the prior's units
(the training data's normalisation), it measures

1. **representation ceiling** (latent priors): the VAE round trip of the held-out videos, relative L2 error and PSNR
   (peak = the data's maximum magnitude); a pixel-space prior has none (the identity). With ``--ceiling NAME``, a
   domain's plugin (entry-point group ``stepvip.ceilings``, a module with ``add_arguments(group)`` and
   ``from_args(args, videos) -> ceiling``) measures the held-out videos and their representation in the data's own
   units, e.g. ``eht2017`` (:mod:`blackhole.ceiling`): closure chi~2 on simulated EHT 2017 observations;
2. **held-out denoising**: mean squared error of ``D(z0 + sigma n; sigma)`` against ``z0`` (per entry, in the
   UNets' units) for the video mode and the image mode (temporal branches off) with the same noise, at several
   sigmas, and their ratio: a video prior that uses time denoises better (ratio < 1), most at large sigma;
3. **temporal roughness** of unconditional samples (PF-ODE, Euler, the same seeds for both modes) against the data,

       R = mean_t ||x[t+1] - x[t]||^2 / mean_t ||x[t] - mean_t x||^2            (norms over C, H, W)

   raw and after a Gaussian blur of ``blur_px`` pixels per frame (compact features that move a few of their
   widths per frame decorrelate unblurred frames even in a smooth movie). Independent frames give R ~ 2, a static
   video 0; a video prior that models time gives R well below its image mode's and near the data's;
4. a frame strip (PNG): consecutive frames of a held-out video, a video-prior sample and an image-mode sample.

It prints a table and writes ``report.json`` and ``report.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common import checkpoints
from common.io import atomic_write_text
from common.nets.unet import VideoUNet
from common.nets.vae import FrameVAE

DEFAULT_SIGMAS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
CEILING_GROUP = "stepvip.ceilings"


class ReportError(ValueError):
    """A user error (missing prior file, bad data or option), reported on one line with exit code 2."""


@dataclass
class PriorNets:
    """The networks of one prior; ``vae`` None = pixel space, ``video`` None = image stage only."""

    image: VideoUNet | None
    video: VideoUNet | None
    vae: FrameVAE | None
    paths: dict[str, str]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.vae is None else self.vae.encode(x)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z if self.vae is None else self.vae.decode(z)

    @property
    def unet(self) -> VideoUNet:
        return self.video if self.video is not None else self.image

    def modes(self) -> list[tuple[str, VideoUNet, bool]]:
        """``(name, network, video flag)`` of the modes to compare: the video prior (if any) and the image prior
        (the video network with its temporal branches off when there is no separate image prior)."""
        image = self.image if self.image is not None else self.video
        return ([("video", self.video, True)] if self.video is not None else []) + [("image", image, False)]


def find_prior_files(folder: str | Path) -> dict[str, Path]:
    """``{image, video, vae}`` checkpoint paths of a prior folder (shipped layout ``NAME.safetensors`` or a training
    run ``NAME/ema.safetensors``); missing ones are left out. Raises ``ReportError`` if there is no UNet."""
    d = Path(folder)
    if not d.is_dir():
        raise ReportError(f"--prior {d}: no such folder")
    found = {}
    for key in ("image", "video", "vae"):
        for cand in (d / f"{key}.safetensors", d / key / "ema.safetensors"):
            if cand.is_file():
                found[key] = cand
                break
    if "image" not in found and "video" not in found:
        raise ReportError(f"--prior {d}: no image.safetensors / video.safetensors (or image/ema.safetensors, "
                          "video/ema.safetensors of a training run) found")
    return found


def load_prior_nets(paths: dict[str, Path]) -> PriorNets:
    """Load the checkpoints (float32, eval, no gradients) and check that their channels agree."""
    try:
        nets = {k: checkpoints.load(p, expect=FrameVAE if k == "vae" else VideoUNet) for k, p in paths.items()}
    except checkpoints.CheckpointError as exc:
        raise ReportError(str(exc)) from exc
    for net in nets.values():
        net.requires_grad_(False)
    vae = nets.get("vae")
    want = vae.config.latent_channels if vae is not None else None
    for key in ("image", "video"):
        if key in nets:
            c = nets[key].config.in_channels
            if want is not None and c != want:
                raise ReportError(f"prior {paths[key]}: UNet takes {c} channels, the VAE {paths['vae']} gives {want}")
            want = c
    if "video" in nets and not nets["video"].config.temporal:
        raise ReportError(f"prior {paths['video']}: the video UNet has no temporal layers")
    return PriorNets(image=nets.get("image"), video=nets.get("video"), vae=vae,
                     paths={k: str(p) for k, p in paths.items()})


def gaussian_blur(frames: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Separable Gaussian blur of ``[..., H, W]`` frames, standard deviation ``sigma_px`` pixels (0 = identity),
    zero padding, kernel truncated at 3 sigma."""
    if sigma_px <= 0:
        return frames
    r = max(1, int(np.ceil(3 * sigma_px)))
    x = torch.arange(-r, r + 1, dtype=frames.dtype, device=frames.device)
    k = torch.exp(-0.5 * (x / sigma_px) ** 2)
    k = k / k.sum()
    lead, (h, w) = frames.shape[:-2], frames.shape[-2:]
    f = frames.reshape(-1, 1, h, w)
    f = torch.nn.functional.conv2d(f, k.reshape(1, 1, 1, -1), padding=(0, r))
    f = torch.nn.functional.conv2d(f, k.reshape(1, 1, -1, 1), padding=(r, 0))
    return f.reshape(*lead, h, w)


def temporal_roughness(videos: torch.Tensor, blur_px: float = 0.0) -> float:
    """R of videos ``[N, T, C, H, W]`` (module docstring), averaged over the N videos after an optional blur."""
    if videos.ndim != 5 or videos.shape[1] < 2:
        raise ValueError(f"temporal_roughness: expected [N, T >= 2, C, H, W], got {tuple(videos.shape)}")
    v = gaussian_blur(videos.double(), blur_px)
    diff = (v[:, 1:] - v[:, :-1]).square().flatten(2).sum(-1).mean(1)  # [N]
    spread = (v - v.mean(1, keepdim=True)).square().flatten(2).sum(-1).mean(1)  # [N]
    return float((diff / spread.clamp_min(1e-30)).mean())


@torch.no_grad()
def denoising_mse(unet: VideoUNet, z0: torch.Tensor, sigma: float, video: bool, seed: int) -> float:
    """Mean squared error per entry of ``D(z0 + sigma n; sigma)`` against ``z0 [N, T, C, h, w]`` (seeded noise, one
    video per call)."""
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for v in z0:
        noisy = v[None] + sigma * torch.randn(v[None].shape, generator=g)
        total += float((unet(noisy, sigma, video=video) - v[None]).square().mean())
    return total / z0.shape[0]


def round_trip(vae: FrameVAE, videos: torch.Tensor) -> dict[str, float]:
    """Relative L2 error and PSNR (dB, peak = max |x|) of ``decode(encode_mean(x))`` over ``[N, T, C, H, W]``."""
    with torch.no_grad():
        rec = torch.cat([vae.decode(vae.encode(v[None])[0]) for v in videos])
    err = (rec - videos).double()
    rel = float(err.norm() / videos.double().norm())
    peak = float(videos.double().abs().max())
    psnr = float(10 * torch.log10(peak**2 / err.square().mean()))
    return {"relative_l2": rel, "psnr_db": psnr}


def unconditional(nets: PriorNets, unet: VideoUNet, video: bool, shape: tuple[int, ...], steps: int,
                  seed: int) -> torch.Tensor:
    """PF-ODE samples decoded to frames ``[N, T, C, H, W]`` (seeded; the same seed gives the same start noise)."""
    from common.training.sample import pf_ode_sample

    g = torch.Generator().manual_seed(seed)
    z = pf_ode_sample(lambda x, s: unet(x, s, video=video), shape, steps=steps, generator=g)
    with torch.no_grad():
        return torch.cat([nets.decode(v[None]) for v in z])


def build_report(nets: PriorNets, videos: torch.Tensor, *, sigmas=DEFAULT_SIGMAS, num: int = 3, steps: int = 50,
                 seed: int = 0, blur_px: float = 4.0, ceiling: Callable[..., dict] | None = None,
                 progress=print) -> tuple[dict, dict[str, np.ndarray]]:
    """The report dictionary and the strip rows (label -> ``[T, H, W]`` magnitude frames) for ``videos``.

    ``ceiling(videos, represent)`` (a ``--ceiling`` plugin's, bound to its options) measures the representation
    ``represent = decode(encode(.))`` (the identity for a pixel prior) in the data's own units; its dictionary, with
    ``"mean"`` holding ``{"truth": {...}, "representation": {...}}``, is stored under ``"ceiling"``."""
    t0 = time.perf_counter()
    report: dict = {"prior": nets.paths, "held_out_videos": int(videos.shape[0]), "frames": int(videos.shape[1]),
                    "settings": {"sigmas": list(sigmas), "num_samples": num, "ode_steps": steps, "seed": seed,
                                 "blur_px": blur_px}}
    report["round_trip"] = round_trip(nets.vae, videos) if nets.vae is not None else None
    if ceiling is not None:
        report["ceiling"] = ceiling(videos, lambda v: nets.decode(nets.encode(v)))
        progress(f"prior-report: {_ceiling_line(report['ceiling'])}")
    with torch.no_grad():
        z0 = torch.cat([nets.encode(v[None]) for v in videos])
    rows = []
    for s in sigmas:
        row = {"sigma": s}
        for mode, net, vid in nets.modes():
            row[mode] = denoising_mse(net, z0, s, vid, seed)
        if "video" in row:
            row["ratio"] = row["video"] / row["image"]
        rows.append(row)
        progress(f"prior-report: denoising at sigma {s:g}: " + ", ".join(
            f"{k} {v:.4g}" for k, v in row.items() if k != "sigma"))
    report["denoising_mse"] = rows
    shape = (num, *z0.shape[1:])
    rough = {"data": {"raw": temporal_roughness(videos), "blurred": temporal_roughness(videos, blur_px)}}
    strip = {"data": _magnitude(videos[0])}
    for mode, net, vid in nets.modes():
        x = unconditional(nets, net, vid, shape, steps, seed)
        if not torch.isfinite(x).all():
            raise FloatingPointError(f"prior-report: non-finite unconditional samples of the {mode} mode")
        rough[mode] = {"raw": temporal_roughness(x), "blurred": temporal_roughness(x, blur_px)}
        strip[f"{mode} prior"] = _magnitude(x[0])
        progress(f"prior-report: {mode}-mode samples: R {rough[mode]['raw']:.3f}, blurred {rough[mode]['blurred']:.3f}")
    if "video" in rough and "image" in rough:
        rough["video_over_image"] = {k: rough["video"][k] / rough["image"][k] for k in ("raw", "blurred")}
    if "video" in rough:
        rough["video_over_data"] = {k: rough["video"][k] / rough["data"][k] for k in ("raw", "blurred")}
    report["temporal_roughness"] = rough
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report, strip


def _magnitude(video: torch.Tensor) -> np.ndarray:
    """``[T, C, H, W] -> [T, H, W]``: the single channel, or the magnitude of (real, imag)."""
    v = video.double()
    return (v[:, 0] if v.shape[1] == 1 else v.square().sum(1).sqrt()).numpy()


def _ceiling_line(ceiling: dict) -> str:
    """One line of a ``--ceiling`` result: its measures (means over the videos) for the truth and the representation."""
    m = ceiling["mean"]
    keys = list(m["truth"])

    def values(who: str) -> str:
        return " / ".join(f"{m[who][k]:.3f}" for k in keys)

    return (f"ceiling ({ceiling.get('name', '?')}: {' / '.join(keys)}, mean over the videos): truth {values('truth')}, "
            f"representation {values('representation')}")


def format_report(report: dict) -> str:
    """The printed table."""
    lines = [f"prior: {', '.join(f'{k}={v}' for k, v in report['prior'].items())}",
             f"held-out videos: {report['held_out_videos']} x {report['frames']} frames"]
    rt = report["round_trip"]
    lines.append("representation: pixel space (no VAE ceiling)" if rt is None else
                 f"VAE round trip: relative L2 {rt['relative_l2']:.4f}, PSNR {rt['psnr_db']:.2f} dB")
    if report.get("ceiling") is not None:
        lines.append(_ceiling_line(report["ceiling"]))
    lines.append("denoising MSE (UNet units):  sigma | video | image | video/image")
    for r in report["denoising_mse"]:
        lines.append(f"  {r['sigma']:>6g} | {r.get('video', float('nan')):.4g} | {r.get('image', float('nan')):.4g} "
                     f"| {r.get('ratio', float('nan')):.3f}")
    rough = report["temporal_roughness"]
    b = report["settings"]["blur_px"]
    lines.append(f"temporal roughness R (independent frames ~2, static 0): raw | blurred {b:g} px")
    for k in ("data", "video", "image"):
        if k in rough:
            lines.append(f"  {k + (' samples' if k != 'data' else ''):<14} {rough[k]['raw']:.3f} | "
                         f"{rough[k]['blurred']:.3f}")
    for k in ("video_over_image", "video_over_data"):
        if k in rough:
            lines.append(f"  {k.replace('_', ' '):<14} {rough[k]['raw']:.3f} | {rough[k]['blurred']:.3f}")
    return "\n".join(lines)


def load_videos(path: str | Path, count: int, channels: int) -> torch.Tensor:
    """The first ``count`` videos of a ``.npy`` / HDF5 array ``[N, T, C, H, W]``, checked finite."""
    from common.training.data import open_array

    try:
        arr = open_array(path, "videos", 5)
    except (OSError, ValueError, KeyError) as exc:
        raise ReportError(f"--data {path}: {exc}") from exc
    if arr.shape[2] != channels:
        raise ReportError(f"--data {path}: videos have {arr.shape[2]} channels, the prior takes {channels}")
    x = torch.from_numpy(np.array(arr[:count], dtype=np.float32))
    if not torch.isfinite(x).all():
        raise ReportError(f"--data {path}: non-finite values in the first {count} videos")
    return x


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("prior-report", help="judge a trained prior: representation ceiling, denoising, "
                              "temporal roughness of samples", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--prior", required=True, type=Path, help="prior folder (shipped layout or training run)")
    p.add_argument("--data", required=True, type=Path, help="held-out videos [N, T, C, H, W] (.npy or HDF5), in "
                   "the training data's units")
    p.add_argument("--out", required=True, type=Path, help="output folder (report.json, report.png)")
    p.add_argument("--videos", type=int, default=4, help="held-out videos to use")
    p.add_argument("--num", type=int, default=3, help="unconditional samples per mode")
    p.add_argument("--steps", type=int, default=50, help="PF-ODE Euler steps")
    p.add_argument("--blur-px", type=float, default=4.0, help="Gaussian blur (pixels) of the blurred roughness")
    p.add_argument("--sigmas", default=",".join(f"{s:g}" for s in DEFAULT_SIGMAS), help="denoising noise levels")
    p.add_argument("--seed", type=int, default=0)
    plugins = _ceiling_plugins()
    p.add_argument("--ceiling", choices=sorted(plugins), default=None, help="also measure the held-out videos and "
                   f"their representation in the data's own units with a domain plugin (entry points "
                   f"{CEILING_GROUP}; eht2017: closure chi2 on simulated EHT 2017 observations)")
    for name, plugin in sorted(plugins.items()):
        plugin.add_arguments(p.add_argument_group(f"--ceiling {name}"))
    p.set_defaults(func=_run, ceilings=plugins)


def _ceiling_plugins() -> dict:
    """The ``--ceiling`` plugins (entry-point group ``stepvip.ceilings``), loaded; a broken one is an error."""
    from importlib.metadata import entry_points

    from common.cli import PluginError

    plugins = {}
    for ep in entry_points(group=CEILING_GROUP):
        try:
            plugins[ep.name] = ep.load()
        except Exception as exc:  # never skipped silently
            raise PluginError(f"stepvip prior-report: ceiling plugin {ep.name!r} ({ep.value}) failed to load: "
                              f"{exc}") from exc
    return plugins


def _run(args: argparse.Namespace) -> int:
    try:
        for name in ("videos", "num", "steps"):
            if getattr(args, name) < (2 if name == "steps" else 1):
                raise ReportError(f"--{name} must be >= {2 if name == 'steps' else 1}, got {getattr(args, name)}")
        if not np.isfinite(args.blur_px) or args.blur_px < 0:
            raise ReportError(f"--blur-px must be a finite number >= 0, got {args.blur_px}")
        try:
            sigmas = tuple(float(s) for s in args.sigmas.split(","))
        except ValueError as exc:
            raise ReportError(f"--sigmas: expected comma-separated numbers, got {args.sigmas!r}") from exc
        if not all(np.isfinite(s) and s > 0 for s in sigmas):
            raise ReportError(f"--sigmas: every noise level must be finite and > 0, got {args.sigmas!r}")
        if args.out.exists() and not args.out.is_dir():
            raise ReportError(f"--out {args.out}: exists and is not a folder")
        nets = load_prior_nets(find_prior_files(args.prior))
        channels = nets.vae.config.in_channels if nets.vae is not None else nets.unet.config.in_channels
        videos = load_videos(args.data, args.videos, channels)
        ceiling = None
        if args.ceiling is not None:
            try:
                ceiling = args.ceilings[args.ceiling].from_args(args, videos)
            except ValueError as exc:
                raise ReportError(f"--ceiling {args.ceiling}: {exc}") from exc
    except ReportError as exc:
        print(f"stepvip prior-report: {exc}", file=sys.stderr)
        return 2
    report, strip = build_report(nets, videos, sigmas=sigmas, num=args.num, steps=args.steps, seed=args.seed,
                                 blur_px=args.blur_px, ceiling=ceiling, progress=lambda m: print(m, file=sys.stderr))
    from common.figures import frame_grid

    args.out.mkdir(parents=True, exist_ok=True)
    t = min(v.shape[0] for v in strip.values())
    frame_grid(args.out / "report.png", {k: v[:t] for k, v in strip.items()}, frames=list(range(min(8, t))),
               title="consecutive frames: held-out data, video-prior sample, image-mode sample (same seed)")
    atomic_write_text(args.out / "report.json", json.dumps(report, indent=2, allow_nan=False) + "\n")
    print(format_report(report))
    print(f"wrote {args.out / 'report.json'} and {args.out / 'report.png'} ({report['seconds']} s)")
    return 0
