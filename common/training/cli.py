"""``stepvip train vae|decoder|image|video`` and ``stepvip sample-prior`` (entry points in pyproject.toml).

    stepvip train vae   --config configs/prior_bh_tiny.yaml --out runs/bh_tiny
    stepvip train image --config configs/prior_bh_tiny.yaml --out runs/bh_tiny     # uses runs/bh_tiny/vae/ema...
    stepvip train video --config configs/prior_bh_tiny.yaml --out runs/bh_tiny     # uses runs/bh_tiny/image/ema...
    stepvip train decoder --config configs/prior_bh_tiny.yaml --out runs/bh_tiny   # optional, any time after vae:
        # fine-tunes runs/bh_tiny/vae/ema's decoder (encoder frozen, so the image / video stages stay valid)
    stepvip sample-prior --checkpoint runs/bh_tiny/video/ema.safetensors --vae runs/bh_tiny/vae/ema.safetensors \
        --num 4 --frames 16 --out runs/bh_tiny/samples

Each stage writes into ``OUT/<stage>/``. Multi-process: ``torchrun --nproc_per_node=N $(which stepvip) train ...``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import torch

from common import checkpoints
from common.io import OutputPathError, output_folder_writable
from common.nets.unet import VideoUNet
from common.nets.vae import FrameVAE
from common.training.config import STAGES, dump_prior_config, load_prior_config


class TrainingUsageError(ValueError):
    """A bad option, config, data file or checkpoint found while setting a stage up: one line, exit code 2."""


def _fail(prog: str, message: str) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def _finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")


def register_train(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train the prior: VAE, image UNet, then spatiotemporal UNet",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("stage", choices=STAGES, help="training stage")
    p.add_argument("--config", required=True, type=Path, help="prior YAML (configs/prior_*.yaml)")
    p.add_argument("--out", type=Path, default=None, help="run folder (default: runs/<config name>); the stage "
                   "writes into OUT/<stage>/")
    p.add_argument("--resume", action="store_true", help="continue from OUT/<stage>/state.safetensors")
    p.add_argument("--videos", default=None, help="override data.videos (.npy or HDF5 [N, T, C, H, W])")
    p.add_argument("--frames", default=None, help="override data.frames (.npy or HDF5 [N, C, H, W])")
    p.add_argument("--vae", type=Path, default=None, help="frozen VAE checkpoint (default OUT/vae/ema.safetensors); "
                   "decoder stage: the VAE whose decoder is fine-tuned")
    p.add_argument("--init", type=Path, default=None,
                   help="video stage: image-UNet checkpoint (default OUT/image/ema.safetensors), or a trained "
                   "video UNet to continue (e.g. a shipped prior; fresh optimiser); vae stage: a trained VAE to "
                   "start from (default: a fresh one)")
    p.add_argument("--steps", type=int, default=None, help="override the stage's number of steps")
    p.add_argument("--max-minutes", type=float, default=None, help="wall-time budget: stop after the step that "
                   "uses it up, save a resumable checkpoint and the EMA weights")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    prog = f"stepvip train {args.stage}"
    if args.max_minutes is not None and not (args.max_minutes > 0 and _finite(args.max_minutes)):
        return _fail(prog, f"--max-minutes must be a finite number > 0, got {args.max_minutes}")
    if args.steps is not None and args.steps < 1:
        return _fail(prog, f"--steps must be >= 1, got {args.steps}")
    try:
        cfg = load_prior_config(args.config)
    except ValueError as exc:
        return _fail(prog, f"--config {args.config}: {exc}")
    data = dataclasses.replace(cfg.data, **{k: v for k, v in (("videos", args.videos), ("frames", args.frames))
                                             if v is not None})
    cfg = dataclasses.replace(cfg, data=data)
    if args.steps is not None:
        stage_cfg = dataclasses.replace(cfg.stage(args.stage), steps=args.steps)
        cfg = dataclasses.replace(cfg, **{f"train_{args.stage}": stage_cfg})
    root = args.out if args.out is not None else Path("runs") / args.config.stem
    try:
        output_folder_writable(root / args.stage)
    except OutputPathError as exc:
        return _fail(prog, str(exc))
    vae = args.vae if args.vae is not None else root / "vae" / "ema.safetensors"
    init = args.init if args.init is not None or args.stage != "video" else root / "image" / "ema.safetensors"
    import torch.distributed as dist

    try:
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"# stepvip train {args.stage}: resolved config ({args.config})\n{dump_prior_config(cfg)}", end="")
            print(f"# output: {root / args.stage}", flush=True)
        _train_reporting_setup_errors(args, cfg, root, vae, init)
    except TrainingUsageError as exc:
        return _fail(prog, str(exc))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


def _train_reporting_setup_errors(args: argparse.Namespace, cfg, root: Path, vae: Path, init: Path | None) -> None:
    """Run the stage; an error of the set-up (config, data, checkpoints, resume state: raised before the first step
    finished) becomes ``TrainingUsageError``. Errors after training started keep their traceback (a bug or a
    diverging run), except a non-finite loss, reported in one line too."""
    from common.training.loop import train_stage

    started = []

    def mark(step: int, loss: float) -> None:
        if not started:
            started.append(step)

    setup_errors = (ValueError, KeyError, FileNotFoundError, FileExistsError, OSError)
    try:
        train_stage(args.stage, cfg, root / args.stage, resume=args.resume, vae_path=vae if cfg.vae else None,
                    init_path=init, progress=not args.no_progress, callback=mark,
                    max_seconds=None if args.max_minutes is None else 60.0 * args.max_minutes)
    except FloatingPointError as exc:
        raise TrainingUsageError(f"{exc} (lower the learning rate or check the data); the last checkpoint is kept"
                                 ) from exc
    except setup_errors as exc:
        if started:
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise TrainingUsageError(str(msg)) from exc


def register_sample_prior(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("sample-prior", help="unconditional videos from a trained prior (PF-ODE, Euler)",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", required=True, type=Path, help="UNet checkpoint (e.g. OUT/video/ema.safetensors)")
    p.add_argument("--vae", type=Path, default=None, help="VAE checkpoint to decode latents (omit: pixel space)")
    p.add_argument("--num", type=int, required=True, help="number of videos")
    p.add_argument("--frames", type=int, required=True, help="frames per video")
    p.add_argument("--out", type=Path, required=True, help="output folder (samples.nc, samples.gif)")
    p.add_argument("--size", type=int, default=None, help="latent height = width (default: the UNet's image_size)")
    p.add_argument("--steps", type=int, default=100, help="Euler steps")
    p.add_argument("--sigma-max", type=float, default=80.0)
    p.add_argument("--sigma-min", type=float, default=0.002)
    p.add_argument("--batch", type=int, default=4, help="videos per network call")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-mode", action="store_true", help="temporal branches OFF (independent frames, IDM)")
    p.set_defaults(func=_run_sample_prior)


def _run_sample_prior(args: argparse.Namespace) -> int:
    from common.training.sample import pf_ode_sample, write_samples

    prog = "stepvip sample-prior"
    for name in ("num", "frames", "steps", "batch"):
        if getattr(args, name) < 1:
            return _fail(prog, f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.size is not None and args.size < 1:
        return _fail(prog, f"--size must be >= 1, got {args.size}")
    if args.seed < 0:
        return _fail(prog, f"--seed must be >= 0, got {args.seed}")
    if not (_finite(args.sigma_max) and _finite(args.sigma_min) and args.sigma_max > args.sigma_min > 0):
        return _fail(prog, f"--sigma-max and --sigma-min must be finite with sigma-max > sigma-min > 0, got "
                     f"{args.sigma_max} and {args.sigma_min}")
    try:
        output_folder_writable(args.out)
    except OutputPathError as exc:
        return _fail(prog, str(exc))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    unet = checkpoints.load(args.checkpoint, map_location=device, expect=VideoUNet)
    vae = checkpoints.load(args.vae, map_location=device, expect=FrameVAE) if args.vae else None
    if vae is not None and vae.config.latent_channels != unet.config.in_channels:
        print(f"stepvip sample-prior: VAE {args.vae} has {vae.config.latent_channels} latent channels, UNet "
              f"{args.checkpoint} expects {unet.config.in_channels}", file=sys.stderr)
        return 2
    size = args.size or unet.config.image_size
    g = torch.Generator().manual_seed(args.seed)
    out = []
    with torch.no_grad():
        for start in range(0, args.num, args.batch):
            b = min(args.batch, args.num - start)

            def denoise(z, sigma):
                return unet(z, sigma, video=not args.image_mode)

            z = pf_ode_sample(denoise, (b, args.frames, unet.config.in_channels, size, size), steps=args.steps,
                              sigma_max=args.sigma_max, sigma_min=args.sigma_min, generator=g, device=device)
            out.append((vae.decode(z) if vae is not None else z).float().cpu())
    videos = torch.cat(out).numpy()
    n_bad = int((~torch.isfinite(torch.from_numpy(videos))).sum())
    if n_bad:
        return _fail(prog, f"{args.checkpoint}: the samples have {n_bad} non-finite values; nothing written")
    attrs = {"space": "image" if vae is not None else "network input (latent, or pixels for a pixel-space prior)",
             "checkpoint": str(args.checkpoint), "vae": str(args.vae or ""), "seed": args.seed, "steps": args.steps,
             "sigma_max": args.sigma_max, "sigma_min": args.sigma_min, "image_mode": int(args.image_mode),
             "solver": "PF-ODE Euler, poly-7 grid then sigma=0"}
    nc, gif = write_samples(videos, args.out, attrs)
    print(f"wrote {nc} and {gif} ({args.num} videos of {args.frames} frames, shape {tuple(videos.shape[1:])})")
    return 0
