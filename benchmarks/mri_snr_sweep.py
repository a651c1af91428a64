"""STeP on held-out cine at other k-space noise levels and masks than the quality table's (noise 0.005, 8x): the
generality check behind ``benchmarks/RESULTS.md``, eighth session.

For each (noise, mask) and case it builds :func:`cardiac_mri.demo.held_out_problem` (``synthetic_cine(..., noise=NOISE,
seed=case)`` on the prior's grid, ``paper_mask(MASK)``: 12 ACS lines at 8x, 24 at 6x) and prints one JSON line: the
thermal noise estimate, the truth's own residual over it and :func:`cardiac_mri.likelihood.model_error_ratio` (how much
the SENSE model with estimated coil maps misfits clean data), temporal-TV SENSE's PSNR, and STeP's mean per-sample PSNR
/ motion SNR and the PSNR of the posterior mean of its samples for each ``SPEC`` (``key=value+key=value`` DAPS
overrides of the MRI default; ``thermal`` = the likelihood at the thermal noise level alone, i.e. ``temperature = 1 /
model_error_ratio``; ``default`` = no override).

    python benchmarks/mri_snr_sweep.py 0.002:8x,0.02:8x,0.005:6x default thermal
    python benchmarks/mri_snr_sweep.py 0.005:8x default radius_scale=0.5 --cases 100001,100002,100003 --samples 2
    python benchmarks/mri_snr_sweep.py 0.005:8x default IDM+BCS IDM --view lax   # a SPEC naming a method: its default

A ``SPEC`` that names a method of ``common.methods.METHODS`` runs that method at its default setting instead.

One torch thread; ~20 s per STeP call on one core.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch

from cardiac_mri.baselines import tv_sense
from cardiac_mri.demo import FRAMES, held_out_problem
from cardiac_mri.likelihood import estimate_noise_std
from cardiac_mri.masks import PAPER_SETTINGS
from cardiac_mri.priors import default_prior_paths
from cardiac_mri.step import REFERENCE_TAU, mri_task, prior_image_size, sampler_presets
from common.methods import METHODS
from common.recon.prior_set import load_priors
from common.recon.run import truth_metrics

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_table import method_config  # noqa: E402
from try_settings import parse_value  # noqa: E402


def parse_settings(text: str) -> list[tuple[float, str]]:
    out = []
    for item in text.split(","):
        noise, _, mask = item.partition(":")
        if mask not in PAPER_SETTINGS or not float(noise) > 0:
            raise SystemExit(f"settings {item!r}: expected NOISE:MASK with NOISE > 0 and MASK in "
                             f"{sorted(PAPER_SETTINGS)}")
        out.append((float(noise), mask))
    return out


def overrides(spec: str, task) -> dict:
    if spec == "default":
        return {}
    if spec == "thermal":
        return {"temperature": 1.0 / task.attrs["model_error_ratio"]}
    kw: dict = {}
    for kv in spec.split("+"):
        key, sep, value = kv.partition("=")
        if not sep:
            raise SystemExit(f"spec {spec!r}: expected default, thermal or key=value+key=value")
        kw[key] = parse_value(value)
    return kw


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("settings", help="NOISE:MASK[,NOISE:MASK...], e.g. 0.002:8x,0.005:6x")
    ap.add_argument("specs", nargs="+", help="default, thermal or key=value+key=value DAPS overrides")
    ap.add_argument("--cases", default="100001,100002,100003")
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--view", choices=("sax", "lax"), default="sax", help="synthetic cine view (the table's: sax)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    priors = load_priors(default_prior_paths())
    size = prior_image_size(priors)
    base = sampler_presets("default")["default"]
    for noise, mask in parse_settings(args.settings):
        for case in (int(c) for c in args.cases.split(",")):
            problem = held_out_problem(size, case, noise, mask, args.view)
            lik = problem.likelihood(tau=REFERENCE_TAU)
            truth = (problem.target * problem.scale).numpy()
            task = mri_task(lik, FRAMES, size, truth=truth)
            truth01 = task.metric_images(truth[None])[0]
            y = lik.y / lik.scale
            thermal = estimate_noise_std(y, lik.op.mask)
            measured = int((lik.op.mask > 0).sum()) * y.shape[0] * y.shape[1]  # frames x coils x sampled points
            residual = float(((lik.op(problem.target.to(lik.op.maps.dtype)[None])[0] - y).abs() ** 2).sum())
            tv = tv_sense(lik.op, lik.y[None], iters=150)[0].numpy()
            row = {"noise": noise, "mask": mask, "view": args.view, "case": case,
                   "truth_residual_over_thermal": round((residual / measured) ** 0.5 / thermal, 3),
                   "model_error_ratio": round(task.attrs["model_error_ratio"], 3),
                   "TV_psnr": round(float(truth_metrics(task.metric_images(tv[None]), truth01,
                                                        task.motion_blur_px)["psnr"][0]), 2)}
            for spec in args.specs:
                if spec in METHODS:
                    method, cfg = METHODS[spec], method_config("mri", spec, "default")
                else:
                    method, cfg = METHODS["STeP"], dataclasses.replace(base, **overrides(spec, task))
                x = method.sample(task, priors, cfg, args.samples, 0)
                phys = task.to_physical(x)
                m = truth_metrics(task.metric_images(phys), truth01, task.motion_blur_px)
                of_mean = truth_metrics(task.metric_images(phys.mean(0)[None]), truth01, task.motion_blur_px)
                row[spec] = [round(float(np.mean(m["psnr"])), 2), round(float(np.mean(m["msnr"])), 2),
                             round(float(of_mean["psnr"][0]), 2)]
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
