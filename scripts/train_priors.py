"""Train, ship and report one domain's pixel-space STeP prior in a wall-time budget (the GPU recipe).

    python scripts/train_priors.py --domain bh  --config configs/gpu/prior_bh_pixel_gpu.yaml  --out runs/gpu_bh \
        --minutes 8 --ship runs/gpu_bh/ship
    python scripts/train_priors.py --domain mri --config configs/gpu/prior_mri_pixel_gpu.yaml --out runs/gpu_mri \
        --minutes 8 --ship runs/gpu_mri/ship

Steps (each printed with its wall time):

1. training data, generated once and cached at the config's ``data.videos`` path (the generators are the training
   data; seed 0 only): black hole ``make-movies --seed 0`` normalised by each movie's maximum (the shipped
   prior's convention, ``blackhole.movies.prepare_movie``), MRI ``export-training --synthetic N --seed 0``;
   held-out videos (seed 1) beside them for the report;
2. the image stage, then the video stage initialised from it (``stepvip train``), each stopped by its share of the
   budget (``--image-share``) with a resumable checkpoint (rerun the same command to continue: finished stages
   are skipped, stopped ones resumed);
3. shipping: float16 EMA weights ``image.safetensors`` / ``video.safetensors`` plus the logs into ``--ship``;
4. ``stepvip prior-report`` of the shipped files on the held-out videos (``--ship``/report).

Runs on CPU too (the test runs it at a tiny size); on CUDA the configs' ``bf16: true`` autocasts to bfloat16.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import checkpoints  # noqa: E402
from common.cli import main as stepvip  # noqa: E402
from common.io import atomic_path  # noqa: E402
from common.training.config import load_prior_config  # noqa: E402


def _step(label: str, t0: float) -> None:
    print(f"[{time.perf_counter() - t0:7.1f} s] {label}", flush=True)


def make_videos(domain: str, path: Path, n: int, frames: int, size: int, seed: int) -> None:
    """Write ``n`` generator videos ``[n, frames, C, size, size]`` (network units) to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if domain == "mri":
        tmp = path.parent / f".export_{path.stem}"
        rc = stepvip(["mri", "export-training", "--synthetic", str(n), "--size", str(size), "--frames", str(frames),
                      "--seed", str(seed), "--out", str(tmp)])
        if rc:
            raise SystemExit(f"train_priors: export-training failed with exit code {rc}")
        os.replace(tmp / "videos.npy", path)
        shutil.rmtree(tmp)
        return
    from blackhole.movies import prepare_movie
    from blackhole.synthetic import MovieGeometry, generate_movies

    geom = MovieGeometry(frames=frames, npix=size)
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, frames, 1, size, size))
        for lo in range(0, n, 64):  # chunks: a few hundred MB at most in memory
            raw, _ = generate_movies(min(64, n - lo), geom, seed=seed, start=lo)
            for i, movie in enumerate(raw):
                out[lo + i, :, 0] = prepare_movie(movie[:, 0], normalize="max")
        out.flush()
        del out


def run_stage(stage: str, config: Path, out: Path, minutes: float) -> None:
    """Train ``stage`` for at most ``minutes`` (skipped if finished, resumed if a checkpoint exists)."""
    cfg = load_prior_config(config)
    done_steps = cfg.stage(stage).steps
    folder = out / stage
    if (folder / "ema.safetensors").exists() and not (folder / "state.safetensors").exists():
        return
    argv = ["train", stage, "--config", str(config), "--out", str(out), "--no-progress",
            "--max-minutes", f"{minutes:.4f}"]
    if (folder / "state.safetensors").exists():
        from common.training.state import load_training_state

        step = int(load_training_state(folder / "state.safetensors")[0]["step"])
        if step >= done_steps:
            return
        argv.append("--resume")
    rc = stepvip(argv)
    if rc:
        raise SystemExit(f"train_priors: stage {stage} failed with exit code {rc}")


def ship(out: Path, dest: Path) -> None:
    """float16 EMA weights and the logs of both stages into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for stage in ("image", "video"):
        src = out / stage / "ema.safetensors"
        checkpoints.save(checkpoints.load(src), dest / f"{stage}.safetensors", dtype=torch.float16,
                         info=checkpoints.read_info(src))
        (dest / "training" / stage).mkdir(parents=True, exist_ok=True)
        for name in ("log.jsonl", "loss.png", "config.yaml"):
            if (out / stage / name).exists():
                shutil.copyfile(out / stage / name, dest / "training" / stage / name)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--domain", choices=("bh", "mri"), required=True)
    p.add_argument("--config", type=Path, required=True, help="pixel-space prior YAML (vae: null)")
    p.add_argument("--out", type=Path, required=True, help="run folder (stages in OUT/image, OUT/video)")
    p.add_argument("--minutes", type=float, default=8.0, help="training budget of both stages together")
    p.add_argument("--image-share", type=float, default=0.35, help="fraction of the budget for the image stage")
    p.add_argument("--ship", type=Path, default=None, help="folder for the float16 prior and its report")
    p.add_argument("--videos", type=int, default=None, help="training videos (default: 2000 bh, 4000 mri)")
    p.add_argument("--frames", type=int, default=None, help="frames per video (default: 64 bh, 12 mri)")
    p.add_argument("--held-out", type=int, default=4, help="held-out videos (seed 1) for the report")
    p.add_argument("--report-steps", type=int, default=50, help="PF-ODE steps of the report's samples")
    args = p.parse_args(argv)
    if not args.minutes > 0 or not 0 < args.image_share < 1:
        p.error(f"need --minutes > 0 and 0 < --image-share < 1, got {args.minutes}, {args.image_share}")
    cfg = load_prior_config(args.config)
    if cfg.vae is not None or cfg.data.videos is None:
        p.error(f"--config {args.config}: the recipe trains pixel-space priors (vae: null) from data.videos")
    t0 = time.perf_counter()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"train_priors: {args.domain} on {device}, budget {args.minutes:g} min", flush=True)
    n = args.videos or (2000 if args.domain == "bh" else 4000)
    frames = args.frames or (64 if args.domain == "bh" else 12)
    size = cfg.unet.image_size
    train_path = Path(cfg.data.videos)
    held_path = train_path.parent / "held_out" / "videos.npy"
    if not train_path.exists():
        make_videos(args.domain, train_path, n, frames, size, seed=0)
    if not held_path.exists():
        make_videos(args.domain, held_path, args.held_out, frames, size, seed=1)
    _step(f"data: {train_path} (training, seed 0), {held_path} (held out, seed 1)", t0)
    cfg_path = args.out / "recipe_config.yaml"
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.config, cfg_path)
    run_stage("image", cfg_path, args.out, args.minutes * args.image_share)
    _step("image stage done", t0)
    run_stage("video", cfg_path, args.out, args.minutes * (1 - args.image_share))
    _step("video stage done", t0)
    if args.ship is not None:
        ship(args.out, args.ship)
        rc = stepvip(["prior-report", "--prior", str(args.ship), "--data", str(held_path), "--out",
                      str(args.ship / "report"), "--videos", str(args.held_out), "--steps", str(args.report_steps)])
        if rc:
            raise SystemExit(f"train_priors: prior-report failed with exit code {rc}")
        _step(f"shipped to {args.ship} (report in {args.ship / 'report'})", t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
