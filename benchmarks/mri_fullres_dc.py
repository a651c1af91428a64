"""Choose the final full-resolution data-consistency solve of the diffusion methods (issue 12).

For synthetic CMRxRecon files (``stepvip mri make-synthetic``; by default 2 patients, 3 slices, 8 coils, 96 x 96,
AccFactor08 with the official mask rule) the STeP posterior samples are drawn once per slice on the prior's grid
(shipped prior unless ``--prior``, default sampler setting), then moved to the acquisition matrix and solved with
``(A^H A + lam I) x = A^H y + lam x_up`` for several ``lam`` and CG iteration counts. Each variant's posterior mean
is scored with the official CMRxRecon metrics (``img4ranking`` subset, :mod:`cardiac_mri.evaluation`) against the
fully sampled ground truth, beside CG-SENSE and temporal TV on the same files. Usage:

    python benchmarks/mri_fullres_dc.py --out /tmp/dc [--patients 2] [--size 96] [--lams 0.01 0.03 0.1 0.3 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from cardiac_mri import baselines
from cardiac_mri.data import read_kspace, read_mask
from cardiac_mri.evaluation import ground_truth_ranking, image_metrics, ranking_subset
from cardiac_mri.fullres import data_consistency, from_model_grid
from cardiac_mri.sense import SenseOperator
from cardiac_mri.step import (
    full_maps,
    full_resolution_noise,
    grid_problem,
    load_mri_priors,
    mri_task,
    prior_image_size,
    sampler_presets,
    user_likelihood,
)
from cardiac_mri.synthetic import write_synthetic_dataset
from common.methods import METHODS
from common.recon.run import run_task


def score(recon: np.ndarray, truth: np.ndarray) -> float:
    """Official PSNR (mean over the ranking images) of complex ``(t, slice, ny, nx)`` against ``img4ranking``."""
    return float(image_metrics(ranking_subset(recon), truth)["psnr"].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--patients", type=int, default=2)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--acc", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--lams", type=float, nargs="+", default=[0.01, 0.03, 0.1, 0.3, 1.0])
    parser.add_argument("--iters", type=int, nargs="+", default=[10, 30])
    parser.add_argument("--prior", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    write_synthetic_dataset(args.out, args.patients, ny=args.size, nx=args.size, coils=8, frames=12, slices=3,
                            split="ValidationSet", noise=0.005, seed=args.seed)
    prior_args = argparse.Namespace(prior=args.prior, vae=None, image=None, video=None, device="cpu")
    priors = load_mri_priors(prior_args)
    size = prior_image_size(priors)
    cfg = sampler_presets("default")["default"]
    rows: dict[str, list[float]] = {}
    for p in range(1, args.patients + 1):
        base = args.out / "MultiCoil/Cine/ValidationSet"
        path = base / f"AccFactor{args.acc:02d}/P{p:03d}/cine_sax.mat"
        truth = ground_truth_ranking(base / f"FullSample/P{p:03d}/cine_sax.mat")
        kspace = read_kspace(path)
        mask = torch.from_numpy(read_mask(path.with_name("cine_sax_mask.mat"), acc=args.acc))
        grid_samples, ops, ys, classical = [], [], [], {"CG-SENSE": [], "TV": []}
        start = time.perf_counter()
        for s in range(kspace.shape[1]):
            k = torch.from_numpy(kspace[:, s])
            maps = full_maps(k, 24)
            op_full = SenseOperator(maps, mask)
            y_full = op_full.mask * k
            op, y = grid_problem(k, mask, size, 24, maps=maps)
            task = mri_task(user_likelihood(op, y), k.shape[0], size, noise_std=full_resolution_noise(k, mask, size))
            posts, _ = run_task(task, priors, [(METHODS["STeP"], cfg)], 3, 0, 1)
            grid_samples.append(torch.from_numpy(posts[0].samples))
            ops.append(op_full)
            ys.append(y_full)
            classical["CG-SENSE"].append(baselines.sense_cg(op_full, y_full[None])[0])
            classical["TV"].append(baselines.tv_sense(op_full, y_full[None])[0])
        print(f"P{p:03d}: sampling and baselines {time.perf_counter() - start:.0f} s")
        for name, recs in classical.items():
            rows.setdefault(name, []).append(score(torch.stack(recs, 1).numpy(), truth))
        ups = [from_model_grid(g, op.image_shape) for g, op in zip(grid_samples, ops, strict=True)]
        rows.setdefault("upsampled, no DC", []).append(
            score(torch.stack([u.mean(0) for u in ups], 1).numpy(), truth))
        for lam in args.lams:
            for iters in args.iters:
                t0 = time.perf_counter()
                means = [data_consistency(op, y, u, lam=lam, iters=iters)[0].mean(0)
                         for op, y, u in zip(ops, ys, ups, strict=True)]
                key = f"DC lam={lam:g}, {iters} it"
                rows.setdefault(key, []).append(score(torch.stack(means, 1).numpy(), truth))
                rows.setdefault(key + " [s]", []).append(time.perf_counter() - t0)
    print(f"\nofficial PSNR (dB) of the posterior mean, {args.patients} patients x 3 slices, {args.size}x{args.size}, "
          f"8 coils, AccFactor{args.acc:02d}, prior grid {size}")
    print("| variant | " + " | ".join(f"P{p:03d}" for p in range(1, args.patients + 1)) + " | mean |")
    print("|---|" + "---|" * (args.patients + 1))
    for name, vals in rows.items():
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in vals) + f" | {np.mean(vals):.2f} |")


if __name__ == "__main__":
    main()
