"""One method, one held-out case, any prior folder and DAPS overrides: the experiment harness behind the settings
tables of ``benchmarks/RESULTS.md`` (issue 11 "Second/Third session", quality table third session).

Builds the case exactly as ``benchmarks/quality_table.py`` does (same simulation, data, seeds), swaps in the priors
of ``PRIOR_DIR`` (``image.safetensors``, ``video.safetensors``, ``vae.safetensors`` when present), applies
``key=value`` overrides to the domain's default ``DAPSConfig`` and prints one JSON line: mean per-sample PSNR,
d-PSNR, motion SNR, the PSNR of the posterior mean, the data fit (chi~2 or misfit) and seconds per sample.

    python benchmarks/try_settings.py DOMAIN PRIOR_DIR CASE SAMPLES [method=NAME] [key=value ...]
    python benchmarks/try_settings.py mri cardiac_mri/priors 100000 2 annealing_steps=50
    python benchmarks/try_settings.py blackhole runs/gpu_bh/ship 100000 1 annealing_steps=25 ode_steps=2

One torch thread (as in the tables).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from common.methods import METHODS
from common.recon.prior_set import load_priors
from common.recon.run import truth_metrics

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_table import blackhole_case, mri_case  # noqa: E402


def parse_value(text: str) -> int | float | str:
    """A ``key=value`` override's value: int, else float, else the text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[0] not in ("blackhole", "mri"):
        print(__doc__)
        return 2
    domain, prior, case, samples = argv[0], Path(argv[1]), int(argv[2]), int(argv[3])
    overrides = dict(a.split("=", 1) for a in argv[4:])
    method = overrides.pop("method", "STeP")
    if method not in METHODS:
        raise SystemExit(f"try_settings: method={method!r} unknown; known: {sorted(METHODS)}")
    torch.set_num_threads(1)
    task, _, cfg, _ = (blackhole_case if domain == "blackhole" else mri_case)(case)
    paths = {s: prior / f"{s}.safetensors" for s in ("image", "video", "vae") if (prior / f"{s}.safetensors").exists()}
    priors = load_priors(paths)
    cfg = dataclasses.replace(cfg, progress=False, **{k: parse_value(v) for k, v in overrides.items()})
    t0 = time.perf_counter()
    x = METHODS[method].sample(task, priors, cfg, samples, 0)
    seconds = (time.perf_counter() - t0) / samples
    phys = task.to_physical(x)
    truth01 = task.metric_images(task.truth[None])[0]
    per = truth_metrics(task.metric_images(phys), truth01, task.motion_blur_px)
    of_mean = truth_metrics(task.metric_images(phys.mean(0)[None]), truth01, task.motion_blur_px)
    fit = {k: float(np.mean(v)) for k, v in task.data_fit(x).items()}
    print(json.dumps({"args": argv[2:], "psnr": float(per["psnr"].mean()), "dpsnr": float(per["dpsnr"].mean()),
                      "msnr": float(per["msnr"].mean()), "psnr_mean": float(of_mean["psnr"][0]), **fit,
                      "s_per_sample": round(seconds, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
