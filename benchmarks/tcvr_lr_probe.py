"""TCVR learning-rate probe (issue 14): one MAP estimate of a held-out case per setting, PSNR, data fit, loss trace.

Usage: ``python benchmarks/tcvr_lr_probe.py mri "" "lr_shared=3e-2,lr_residual=1e-2" "lr_shared=0.3,lr_residual=0.1"``
(each argument: keyword changes to ``TCVRConfig()``, the ``paper`` preset; seed 0); ``--cases 100001,100002``
(default 100000) runs every setting on each case.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality_table import blackhole_case, mri_case  # noqa: E402
from try_settings import parse_value  # noqa: E402

from common.methods.base import seeded  # noqa: E402
from common.methods.tcvr import TCVRConfig, fit_seeds  # noqa: E402
from common.recon.run import truth_metrics  # noqa: E402


def main(domain: str, specs: list[str], case: int) -> None:
    task, priors, _, _ = (mri_case if domain == "mri" else blackhole_case)(case)
    truth01 = task.metric_images(task.truth[None])[0]
    for spec in specs:
        kw = {k: parse_value(v) for k, v in (item.split("=") for item in spec.split(",") if item)}
        cfg = dataclasses.replace(TCVRConfig(), **kw)
        log: list[tuple[int, float]] = []
        t0 = time.time()
        x, _ = fit_seeds(task, priors, cfg, seeded(0), callback=lambda e, d, _, log=log: log.append((e, d)))
        psnr = truth_metrics(task.metric_images(task.to_physical(x)), truth01, task.motion_blur_px)["psnr"][0]
        fit = {k: float(v[0]) for k, v in task.data_fit(x).items()}
        trace = [(e, round(d, 3)) for e, d in log[:: max(1, len(log) // 6)]]
        print(case, spec or "paper", f"{time.time() - t0:.0f}s", "psnr", round(float(psnr), 2), fit, trace, flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("domain", choices=("blackhole", "mri"))
    ap.add_argument("specs", nargs="*", help="key=value[,key=value] changes to TCVRConfig(); '' = the paper preset")
    ap.add_argument("--cases", default="100000")
    args = ap.parse_intermixed_args()  # --cases may stand before the specs
    for c in (int(c) for c in args.cases.split(",")):
        main(args.domain, args.specs, c)
