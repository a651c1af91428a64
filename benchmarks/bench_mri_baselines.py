"""Classical baselines on a synthetic multi-coil cine, scored with the official CMRxRecon evaluation.

Generates one seeded SAX case in CMRxRecon geometry (readout 2x oversampled), undersamples it with the CMRxRecon
masks (24 ACS lines, R = 4, 8, 10), reconstructs the two ranked slices with zero-filled RSS, CG-SENSE, temporal-TV
SENSE and L+S (ESPIRiT maps from the ACS), and prints the official ``img4ranking`` PSNR / SSIM / NMSE (frames 1-3,
two central slices, centre crop, per-image max normalisation). Usage:

    python benchmarks/bench_mri_baselines.py [--ny 96] [--nx 192] [--coils 10] [--seed 0] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from cardiac_mri import SenseOperator
from cardiac_mri.baselines import low_rank_plus_sparse, sense_cg, tv_sense, zero_filled_rss
from cardiac_mri.coils import espirit_maps
from cardiac_mri.evaluation import image_metrics, matlab_round, ranking_subset, rss_images
from cardiac_mri.masks import cmrxrecon_mask, effective_acceleration
from cardiac_mri.synthetic import synthetic_cine

METHODS = {
    "zf": lambda op, y: zero_filled_rss(y),
    "sense": lambda op, y: sense_cg(op, y),
    "tv": lambda op, y: tv_sense(op, y),
    "lps": lambda op, y: low_rank_plus_sparse(op, y),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ny", type=int, default=96)
    parser.add_argument("--nx", type=int, default=192)
    parser.add_argument("--coils", type=int, default=10)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--slices", type=int, default=3)
    parser.add_argument("--noise", type=float, default=0.005)
    parser.add_argument("--accelerations", type=int, nargs="+", default=[4, 8, 10])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    case = synthetic_cine(args.ny, args.nx, args.coils, args.frames, args.slices, noise=args.noise, seed=args.seed)
    kspace = case.kspace.numpy()  # (t, slice, coil, ky, kx)
    truth = ranking_subset(rss_images(kspace))
    centre = matlab_round(args.slices / 2)
    ranked = [centre - 2, centre - 1]
    print(f"synthetic SAX cine {args.ny}x{args.nx}, {args.coils} coils, {args.frames} frames, {args.slices} slices, "
          f"noise {args.noise}, seed {args.seed}; official img4ranking metrics (mean over 3 frames x 2 slices)")
    print(f"{'R':>3} {'R_eff':>6} {'method':>7} {'PSNR':>7} {'SSIM':>7} {'NMSE':>9} {'time [s]':>9}")
    for acc in args.accelerations:
        mask = cmrxrecon_mask(args.ny, args.nx, acc)
        for name, method in METHODS.items():
            start = time.perf_counter()
            recon = np.zeros(kspace.shape[:2] + kspace.shape[-2:], np.float32)
            for s in ranked:
                k = torch.from_numpy(kspace[:, s]) * mask  # [T, C, H, W]
                op = SenseOperator(espirit_maps(k, calib_width=24), mask) if name != "zf" else None
                recon[:, s] = method(op, k[None])[0].abs().numpy()
            elapsed = time.perf_counter() - start
            m = image_metrics(ranking_subset(recon), truth)
            print(f"{acc:>3} {effective_acceleration(mask):>6.2f} {name:>7} {m['psnr'].mean():>7.2f} "
                  f"{m['ssim'].mean():>7.4f} {m['nmse'].mean():>9.5f} {elapsed:>9.1f}")


if __name__ == "__main__":
    main()
