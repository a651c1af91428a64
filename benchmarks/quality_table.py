"""Quality table of issue 6: STeP vs IDM+BCS vs IDM on held-out synthetic cases (paper Tables 1 and 6).

For each of ``--cases`` held-out cases of a domain (the demo's case and the following indices, never seen in
training), simulate the measurements exactly as the demo does, draw ``--samples`` posterior samples per method with
the shipped priors and the demo's ``default`` DAPS preset (same seeds for every method), score every sample
against the truth, and store the per-sample numbers in ``OUT/case_<index>.json`` (written atomically; cases already
there are skipped, so an interrupted run resumes; ``case_<index>.lock`` marks a case a worker is on, so several
workers can share the folder). ``summarize`` reduces them as in the paper:

* black hole (Table 1): per case, the sample with the lowest mean chi~2 ((chi2_cp + chi2_logca) / 2) of the
  ``--samples`` (5 in the paper); then mean and std over cases;
* MRI (Table 6): per case, the mean over samples; then mean and std over cases. The CG-SENSE baseline (10
  iterations, ``cardiac_mri.baselines.sense_cg``) is added as a reference row.

Usage (two workers side by side on a 2-core machine, one torch thread each, then the table)::

    python benchmarks/quality_table.py run blackhole --cases 10 --samples 5 --out benchmarks/quality/blackhole &
    python benchmarks/quality_table.py run blackhole --cases 10 --samples 5 --out benchmarks/quality/blackhole
    python benchmarks/quality_table.py summarize blackhole --out benchmarks/quality/blackhole
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from common.demo import METHODS, sample_method, truth_metrics
from common.io import atomic_write_text

IMAGE_METRICS = ("psnr", "ssim", "dpsnr", "dssim")
FIT = {"blackhole": ("chi2_cp", "chi2_logca"), "mri": ("misfit",)}


def blackhole_case(case: int, setting: str = "default"):
    """``(task, priors, config)`` of held-out black-hole case ``case`` (as ``stepvip demo blackhole --case``)."""
    from blackhole.demo import NPIX, held_out_case
    from blackhole.measurements import closure_data, vis_table_from_obs
    from blackhole.priors import default_prior_paths
    from blackhole.reconstruct import DEFAULT_FOV_UAS, blackhole_task, sampler_presets
    from common.demo import load_priors

    truth, obs, _ = held_out_case(case)
    task = blackhole_task(closure_data(vis_table_from_obs(obs)), NPIX, DEFAULT_FOV_UAS, truth=truth)
    return task, load_priors(default_prior_paths()), sampler_presets(setting)[setting], None


def mri_case(case: int, setting: str = "default"):
    """``(task, priors, config, cg_sense_video)`` of held-out MRI case ``case`` (as ``stepvip demo mri --case``)."""
    from cardiac_mri.baselines import sense_cg
    from cardiac_mri.demo import FRAMES, held_out_problem
    from cardiac_mri.priors import default_prior_paths
    from cardiac_mri.step import REFERENCE_TAU, mri_task, prior_image_size, sampler_presets
    from common.demo import load_priors

    priors = load_priors(default_prior_paths())
    size = prior_image_size(priors)
    problem = held_out_problem(size, case)
    lik = problem.likelihood(tau=REFERENCE_TAU)
    truth = (problem.target * problem.scale).numpy()
    task = mri_task(lik, FRAMES, size, truth=truth)
    cg = sense_cg(lik.op, lik.y[None], iters=10)[0].numpy()
    return task, priors, sampler_presets(setting)[setting], cg


def run_case(domain: str, case: int, samples: int, seed: int, setting: str = "default") -> dict:
    """Per-sample metrics of every method on one case: ``{method: {metric: [samples]}, "_seconds": {...}}``."""
    task, priors, cfg, reference = (blackhole_case if domain == "blackhole" else mri_case)(case, setting)
    truth01 = task.metric_images(task.truth[None])[0]
    row: dict = {"case": case, "samples": samples, "seed": seed, "setting": setting, "daps_config": cfg.to_dict(),
                 "_seconds": {}}
    for method in METHODS:
        t0 = time.perf_counter()
        x = sample_method(task, priors, method, cfg, samples, seed)
        row["_seconds"][method] = round(time.perf_counter() - t0, 2)
        scores = truth_metrics(task.metric_images(task.to_physical(x)), truth01)
        scores.update(task.data_fit(x))
        row[method] = {k: np.asarray(v, dtype=np.float64).tolist() for k, v in scores.items()}
    if reference is not None:  # MRI: CG-SENSE reference row
        scores = truth_metrics(task.metric_images(reference[None]), truth01)
        row["CG-SENSE"] = {k: np.asarray(v, dtype=np.float64).tolist() for k, v in scores.items()}
    return row


def case_indices(domain: str, n: int) -> list[int]:
    from blackhole.demo import HELDOUT_CASE as BH
    from cardiac_mri.demo import HELDOUT_CASE as MRI

    first = BH if domain == "blackhole" else MRI
    return list(range(first, first + n))


def cmd_run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    k, n = (int(v) for v in args.shard.split("/"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    todo = case_indices(args.domain, args.cases)[k::n]
    for i, case in enumerate(todo):
        path = out / f"case_{case}.json"
        if path.exists():
            print(f"[{i + 1}/{len(todo)}] case {case}: done already ({path})", file=sys.stderr)
            continue
        lock = path.with_suffix(".lock")  # lets several workers share one folder; delete stale locks by hand
        try:
            lock.touch(exist_ok=False)
        except FileExistsError:
            print(f"[{i + 1}/{len(todo)}] case {case}: taken by another worker ({lock})", file=sys.stderr)
            continue
        t0 = time.perf_counter()
        try:
            row = run_case(args.domain, case, args.samples, args.seed, "quick" if args.quick else "default")
            atomic_write_text(path, json.dumps(row, indent=1))
        finally:
            lock.unlink()
        print(f"[{i + 1}/{len(todo)}] case {case}: {time.perf_counter() - t0:.0f} s -> {path}", file=sys.stderr,
              flush=True)
    return 0


def reduce_case(domain: str, row: dict, method: str) -> dict[str, float]:
    """One number per metric for a case: best sample by mean chi~2 (black hole, Table 1) or sample mean (MRI)."""
    m = {k: np.asarray(v, dtype=np.float64) for k, v in row[method].items()}
    if domain == "blackhole" and "chi2_cp" in m:
        best = int(np.argmin(0.5 * (m["chi2_cp"] + m["chi2_logca"])))
        return {k: float(v[best]) for k, v in m.items()}
    return {k: float(v.mean()) for k, v in m.items()}


def summarize(domain: str, out: Path) -> tuple[str, dict]:
    rows = [json.loads(p.read_text()) for p in sorted(out.glob("case_*.json"))]
    if not rows:
        raise SystemExit(f"summarize: no case_*.json in {out}; run `quality_table.py run {domain}` first")
    methods = [m for m in (*METHODS, "CG-SENSE") if m in rows[0]]
    cols = [*IMAGE_METRICS, *FIT[domain]]
    table: dict = {}
    for m in methods:
        per_case = [reduce_case(domain, r, m) for r in rows]
        table[m] = {c: (float(np.mean([p[c] for p in per_case])), float(np.std([p[c] for p in per_case])))
                    for c in cols if c in per_case[0]}
    secs = {m: float(np.mean([r["_seconds"][m] for r in rows])) for m in METHODS}
    sel = "best of {} samples by mean chi~2".format(rows[0]["samples"]) if domain == "blackhole" else \
        "mean over {} samples".format(rows[0]["samples"])
    head = "| method | " + " | ".join(cols) + " |"
    lines = [f"{domain}: {len(rows)} held-out cases (indices {rows[0]['case']}..{rows[-1]['case']}), {sel}; "
             "mean +- std over cases", "", head, "|" + "---|" * (len(cols) + 1)]
    for m in methods:
        cells = [f"{table[m][c][0]:.3f} +- {table[m][c][1]:.3f}" if c in table[m] else "-" for c in cols]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("mean sampling time per case and method (s): " + ", ".join(f"{m} {s:.0f}" for m, s in secs.items()))
    return "\n".join(lines), table


def cmd_summarize(args: argparse.Namespace) -> int:
    text, table = summarize(args.domain, Path(args.out))
    atomic_write_text(Path(args.out) / "table.json", json.dumps(table, indent=1))
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="sample and score held-out cases (resumable)")
    r.add_argument("domain", choices=("blackhole", "mri"))
    r.add_argument("--cases", type=int, default=10)
    r.add_argument("--samples", type=int, default=5)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--shard", default="0/1", help="K/N: this process does cases K, K+N, ...")
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--quick", action="store_true", help="the demos' --quick sampler preset (smoke test only)")
    r.add_argument("--out", required=True)
    r.set_defaults(func=cmd_run)
    s = sub.add_parser("summarize", help="print the table (markdown) from OUT/case_*.json")
    s.add_argument("domain", choices=("blackhole", "mri"))
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_summarize)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
