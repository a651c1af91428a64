"""Cost of the temporal branches: paper-scale UNet (Table 4, [128, 256, 512, 512]) per video, CPU (or CUDA).

Measures, for one video at the paper's latent shapes (black hole [64, 1, 32, 32], MRI [12, 2, 48, 48]), the
forward and forward+backward time of

- ``image``: the image UNet (``temporal=False``; the first-stage network, frames as a batch), and
- ``video``: the spatiotemporal UNet in video mode (temporal branches ON, alpha != 0),

interleaved (image, video, image, video, ...) so that load from other processes hits both alike, and prints the
median times and the ratio video / image measured in the same run. On CUDA it also runs bf16 autocast.

    PYTHONPATH=$PWD python benchmarks/bench_unet.py --reps 2            # both shapes
    PYTHONPATH=$PWD python benchmarks/bench_unet.py --shape bh --reps 1 --no-warmup   # slow shared CPU
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import statistics
import time
from pathlib import Path

import torch

from common.nets import VideoUNet, count_parameters
from common.nets.temporal import TemporalBlend
from common.training.config import load_prior_config

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {"bh": ("prior_bh.yaml", (1, 64, 1, 32, 32)), "mri": ("prior_mri.yaml", (1, 12, 2, 48, 48))}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def bench(shape_name: str, reps: int, device: torch.device, bf16: bool, warmup: bool = True) -> dict[str, float]:
    cfg_file, shape = SHAPES[shape_name]
    cfg = load_prior_config(ROOT / "configs" / cfg_file).unet
    torch.manual_seed(0)
    image = VideoUNet(dataclasses.replace(cfg, temporal=False)).to(device)
    video = VideoUNet(cfg).to(device)
    video.load_state_dict(image.state_dict(), strict=False)
    for m in video.modules():  # make the temporal branches act as after fine-tuning
        if isinstance(m, TemporalBlend):
            m.alpha.data.fill_(0.1)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(shape, generator=g).to(device)
    sigma = torch.tensor([1.0], device=device)
    amp = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext

    def fwd(model):
        with torch.no_grad(), amp():
            model(z, sigma, video=True)

    def fwd_bwd(model):
        model.zero_grad(set_to_none=True)
        with amp():
            out = model(z, sigma, video=True)
        out.float().square().mean().backward()

    res: dict[str, list[float]] = {k: [] for k in ("image_fwd", "video_fwd", "image_fwdbwd", "video_fwdbwd")}
    for kind, fn in (("fwd", fwd), ("fwdbwd", fwd_bwd)):
        if warmup:
            fn(image)
            fn(video)
        for _ in range(reps):
            res[f"image_{kind}"].append(_time(lambda: fn(image), device))  # noqa: B023
            res[f"video_{kind}"].append(_time(lambda: fn(video), device))  # noqa: B023
    out = {k: statistics.median(v) for k, v in res.items()}
    out["params_image_M"] = count_parameters(image) / 1e6
    out["params_video_M"] = count_parameters(video) / 1e6
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", choices=[*SHAPES, "all"], default="all")
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up calls (slow CPUs)")
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    modes = [False, True] if device.type == "cuda" else [False]
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, reps {args.reps} "
          f"(median), warm-up {not args.no_warmup}, one video per call")
    for name in (SHAPES if args.shape == "all" else [args.shape]):
        for bf16 in modes:
            r = bench(name, args.reps, device, bf16, warmup=not args.no_warmup)
            print(f"{name} {SHAPES[name][1]} {'bf16' if bf16 else 'fp32'}: params image {r['params_image_M']:.1f}M, "
                  f"video {r['params_video_M']:.1f}M")
            for kind in ("fwd", "fwdbwd"):
                i, v = r[f"image_{kind}"], r[f"video_{kind}"]
                print(f"  {kind:7s} image {i:8.3f} s   video {v:8.3f} s   ratio video/image {v / i:5.2f}")


if __name__ == "__main__":
    main()
