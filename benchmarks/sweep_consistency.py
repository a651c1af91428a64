"""Sweep of the DAPS data-consistency steps (issue 10): per step, per method, quality and data fit on held-out cases.

For each held-out case (the demo's case and the following indices, as ``benchmarks/quality_table.py``), each
variant of the data-consistency step and each method (STeP, IDM+BCS, IDM: the same step for all three), draw
``--samples`` posterior samples with the shipped priors and record per sample PSNR, d-PSNR (paper Sec. 4.1), the
PSNR of the samples' mean (what the FITS / submission files hold),
data fit (black hole: chi~2_cp, chi~2_logca of the flux-aligned movie; MRI: misfit ||A x - y|| in data units) and
seconds per sample. Results go to ``OUT/<variant>/<method>/case_<index>.json`` (resumable: done ones are skipped);
``summarize`` prints the Markdown table (medians over cases of the per-case sample means; black hole also the
median over all samples of max(chi~2_cp, chi~2_logca)).

Variants (the ``default`` preset of the domain with these changes):

* black hole: ``latent`` = the previous CPU default (paper's latent Langevin, 3 x (3 ODE + 4 MCMC), lr 1.5e-4,
  tau 0.021); ``pixel-gn`` = the new default (pixel Gauss-Newton); ``pixel-gn-both`` = the same with the prior
  centre perturbed too (full RML); ``pixel-gn-white`` = white instead of smooth prior correction;
  ``pixel-langevin`` = pixel Langevin at the curvature step size (20 steps per
  annealing step, 50 at the last).
* MRI: ``latent`` = the previous CPU default (latent HMC, 4 x (3 + 10), Table 3 step size, tau 0.10);
  ``linear-gaussian`` = the new default (exact perturb-and-solve draws); ``linear-gaussian-mean`` = its
  posterior-mean variant; ``pixel-langevin`` (20 / 50 steps, calibrated likelihood). ``CG-SENSE`` (10 iterations)
  is the reference row.

Usage::

    python benchmarks/sweep_consistency.py run blackhole --cases 4 --out benchmarks/sweep/blackhole
    python benchmarks/sweep_consistency.py run mri --cases 4 --samples 2 --out benchmarks/sweep/mri
    python benchmarks/sweep_consistency.py summarize blackhole --out benchmarks/sweep/blackhole
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality_table import blackhole_case, case_indices, mri_case  # noqa: E402

from common.io import atomic_write_text  # noqa: E402
from common.methods import DAPS_METHODS as METHODS  # noqa: E402
from common.methods import METHODS as REGISTRY  # noqa: E402
from common.recon.run import truth_metrics  # noqa: E402

VARIANTS = {
    "blackhole": {
        "latent": dict(data_step="latent", annealing_steps=3, ode_steps=3, mcmc_steps=4, lr=1.5e-4),
        "pixel-gn": {},
        "pixel-gn-both": dict(perturb="both"),
        "pixel-gn-white": dict(smooth_px=0.0),
        "pixel-langevin": dict(pixel_kernel="langevin", dc_iters=20, dc_final_iters=50),
    },
    "mri": {
        "latent": dict(data_step="latent", annealing_steps=4, ode_steps=3, mcmc_steps=10),
        "linear-gaussian": {},
        "linear-gaussian-mean": dict(perturb="none"),
        "pixel-langevin": dict(data_step="pixel", pixel_kernel="langevin", dc_iters=20, dc_final_iters=50),
    },
}


def run_one(domain: str, variant: str, case: int, method: str, samples: int, seed: int) -> dict:
    task, priors, cfg, reference = (blackhole_case if domain == "blackhole" else mri_case)(case)
    cfg = dataclasses.replace(cfg, **VARIANTS[domain].get(variant, {}))
    truth01 = task.metric_images(task.truth[None])[0]
    t0 = time.perf_counter()
    if method == "CG-SENSE":
        scores = truth_metrics(task.metric_images(reference[None]), truth01, task.motion_blur_px)
        scores.update(task.data_fit(task.from_physical(reference[None])))
    else:
        x = REGISTRY[method].sample(task, priors, cfg, samples, seed)
        phys = task.to_physical(x)
        scores = truth_metrics(task.metric_images(phys), truth01, task.motion_blur_px)
        scores.update(task.data_fit(x))
        of_mean = truth_metrics(task.metric_images(phys.mean(0)[None]), truth01, task.motion_blur_px)
        scores["psnr_of_mean"] = of_mean["psnr"]
    seconds = (time.perf_counter() - t0) / (1 if method == "CG-SENSE" else samples)
    return {"domain": domain, "variant": variant, "case": case, "method": method, "seed": seed,
            "daps_config": cfg.to_dict(), "seconds_per_sample": round(seconds, 2),
            "metrics": {k: np.asarray(v, dtype=np.float64).tolist() for k, v in scores.items()}}


def cmd_run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    variants = args.variants.split(",") if args.variants else list(VARIANTS[args.domain])
    methods = args.methods.split(",")
    out = Path(args.out)
    jobs = [(v, m, c) for c in case_indices(args.domain, args.cases) for v in variants for m in methods]
    if args.domain == "mri" and "CG-SENSE" not in methods:
        jobs += [("reference", "CG-SENSE", c) for c in case_indices(args.domain, args.cases)]
    for i, (variant, method, case) in enumerate(jobs):
        path = out / variant / method.replace("+", "_") / f"case_{case}.json"
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        row = run_one(args.domain, variant, case, method, args.samples, args.seed)
        atomic_write_text(path, json.dumps(row, indent=1))
        m = row["metrics"]
        fit = " ".join(f"{k} {np.mean(v):.3g}" for k, v in m.items() if k not in ("ssim", "dssim"))
        print(f"[{i + 1}/{len(jobs)}] {variant} {method} case {case}: {fit}, {row['seconds_per_sample']} s/sample",
              file=sys.stderr, flush=True)
    return 0


def summarize(out: Path) -> str:
    rows: dict[tuple[str, str], list[dict]] = {}
    for path in sorted(out.glob("*/*/case_*.json")):
        row = json.loads(path.read_text())
        rows.setdefault((row["variant"], row["method"]), []).append(row)
    lines = ["| data step | method | cases | PSNR | PSNR of mean | d-PSNR | chi~2_cp | chi~2_logca "
             "| median max chi~2 | "
             "misfit | s / sample |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (variant, method), rs in sorted(rows.items(), key=lambda kv: (kv[0][0], METHODS.index(kv[0][1])
                                                                       if kv[0][1] in METHODS else 9)):
        def med(key: str, rs: list[dict] = rs) -> str:
            vals = [np.mean(r["metrics"][key]) for r in rs if key in r["metrics"]]
            return f"{np.median(vals):.4g}" if vals else "-"

        chi = [max(a, b) for r in rs if "chi2_cp" in r["metrics"]
               for a, b in zip(r["metrics"]["chi2_cp"], r["metrics"]["chi2_logca"], strict=True)]
        lines.append(f"| {variant} | {method} | {len(rs)} | {med('psnr')} | {med('psnr_of_mean')} | {med('dpsnr')} | "
                     f"{med('chi2_cp')} | "
                     f"{med('chi2_logca')} | {f'{np.median(chi):.3g}' if chi else '-'} | {med('misfit')} | "
                     f"{np.median([r['seconds_per_sample'] for r in rs]):.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("domain", choices=sorted(VARIANTS))
    r.add_argument("--cases", type=int, default=4)
    r.add_argument("--samples", type=int, default=1)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--variants", default=None, help="comma-separated subset (default: all of the domain)")
    r.add_argument("--methods", default=",".join(METHODS))
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--out", type=Path, required=True)
    s = sub.add_parser("summarize")
    s.add_argument("domain", choices=sorted(VARIANTS))
    s.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if args.cmd == "run":
        return cmd_run(args)
    print(summarize(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
