"""How close can a black-hole VAE's decoder come to held-out movies? The round trip against the decoder's range.

The representation ceiling of ``stepvip prior-report --ceiling eht2017`` is the round trip ``D(E(x))``: what the
encoder finds. A latent sampler (DAPS) never calls the encoder; it optimises the latent against the data, so what
caps its reconstructions is the decoder's range: ``min_z loss(D(z), x)``. This script measures both on the same
simulated EHT 2017 observations (``blackhole.ceiling.closure_ceiling``, seed i for movie i): for each movie the latent
starts at ``E(x)`` and takes ``--steps`` Adam steps (lr ``--lr``) on L1 + 0.1 x the whitened low-frequency error of
the decoder stage (``common.training.objectives``, 6 bins, whitening from the movies themselves), then the
closure chi~2 of ``D(z)`` is printed beside the round trip's, with the relative latent move ``|z - E(x)| / |E(x)|``.

    PYTHONPATH=$PWD python benchmarks/bh_decoder_range.py --vae blackhole/priors/vae.safetensors \
        --videos data/bh_held/videos.npy --num 4 --steps 200
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from blackhole.ceiling import closure_ceiling
from common import checkpoints
from common.nets.vae import FrameVAE
from common.training.objectives import mean_power, whitened_error, whitening_weights


def fit_latent(vae: FrameVAE, video: torch.Tensor, whitening: torch.Tensor, steps: int, lr: float
               ) -> tuple[torch.Tensor, float]:
    """``video [T, 1, H, W] -> (D(z*) [T, 1, H, W], |z* - E(x)| / |E(x)|)``, ``z*`` after ``steps`` Adam steps."""
    with torch.no_grad():
        z0 = vae.encode(video)[0]
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    with torch.enable_grad():  # closure_ceiling calls the representation under no_grad
        for _ in range(steps):
            rec = vae.decode(z)
            loss = (rec - video).abs().mean() + 0.1 * whitened_error(rec, video, whitening)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return vae.decode(z), float((z - z0).norm() / z0.norm())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vae", required=True, help="FrameVAE checkpoint (safetensors)")
    p.add_argument("--videos", required=True, help=".npy [N, 64, 1, H, H] held-out movies in the prior's units")
    p.add_argument("--num", type=int, default=4, help="first N movies")
    p.add_argument("--steps", type=int, default=200, help="Adam steps on the latent")
    p.add_argument("--lr", type=float, default=0.02, help="Adam learning rate")
    p.add_argument("--fov-uas", type=float, default=128.0, help="field of view of the movies [uas]")
    args = p.parse_args()
    if args.num < 1 or args.steps < 1 or not args.lr > 0:
        p.error(f"--num and --steps must be >= 1 and --lr > 0, got {args.num}, {args.steps}, {args.lr}")
    torch.set_num_threads(1)
    vae = checkpoints.load(args.vae, expect=FrameVAE).eval()
    for param in vae.parameters():
        param.requires_grad_(False)
    videos = torch.from_numpy(np.load(args.videos, mmap_mode="r")[: args.num].astype(np.float32))
    whitening = whitening_weights(mean_power(videos.flatten(0, 1)), 6.0)
    t0 = time.perf_counter()
    moves: list[float] = []

    def fitted(video: torch.Tensor) -> torch.Tensor:
        rec, move = fit_latent(vae, video[0], whitening, args.steps, args.lr)
        moves.append(move)
        return rec[None]

    with torch.no_grad():
        trip = closure_ceiling(videos, lambda v: vae.decode(vae.encode(v)[0]), args.fov_uas)
    fit = closure_ceiling(videos, fitted, args.fov_uas)
    out = {"vae": args.vae, "videos": args.videos, "num": args.num, "steps": args.steps, "lr": args.lr,
           "truth": trip["truth"], "round_trip": trip["representation"], "decoder_range": fit["representation"],
           "latent_move": moves, "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
