"""Quality table of issue 6: STeP vs IDM+BCS vs IDM on held-out synthetic cases (paper Tables 1 and 6).

For each of ``--cases`` held-out cases of a domain (the demo's case and the following indices, never seen in
training), simulate the measurements exactly as the demo does, draw ``--samples`` posterior samples per method with
the shipped priors and the demo's ``default`` DAPS preset (same seeds for every method), score every sample
against the truth, and store the per-sample numbers in ``OUT/<method>/case_<index>.json`` (written atomically;
results already there are skipped, so an interrupted run resumes; ``case_<index>.lock`` marks one a worker is on,
so several workers can share the folder). ``summarize`` reduces them as in the paper:

* black hole (Table 1): per case, the sample with the lowest mean chi~2 ((chi2_cp + chi2_logca) / 2) of the
  ``--samples`` (5 in the paper); then mean and std over cases;
* MRI (Table 6): per case, the mean over samples; then mean and std over cases. The CG-SENSE baseline (10
  iterations, ``cardiac_mri.baselines.sense_cg``; ``--methods ...,CG-SENSE``) is a reference row.

Being stored per method and case, a method can be rerun alone, e.g. after retraining the video prior
(``--methods STeP``).

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

from common.io import atomic_write_text
from common.methods import METHODS
from common.recon.prior_set import load_priors
from common.recon.run import truth_metrics

IMAGE_METRICS = ("psnr", "ssim", "dpsnr", "dssim")
FIT = {"blackhole": ("chi2_cp", "chi2_logca"), "mri": ("misfit",)}


def blackhole_case(case: int, setting: str = "default"):
    """``(task, priors, DAPS config, None)`` of held-out black-hole case ``case`` (as ``stepvip demo blackhole
    --case``)."""
    from blackhole.demo import NPIX, held_out_case
    from blackhole.measurements import closure_data, vis_table_from_obs
    from blackhole.priors import default_prior_paths
    from blackhole.reconstruct import DEFAULT_FOV_UAS, blackhole_task, sampler_presets

    truth, obs, _ = held_out_case(case)
    task = blackhole_task(closure_data(vis_table_from_obs(obs)), NPIX, DEFAULT_FOV_UAS, truth=truth)
    return task, load_priors(default_prior_paths()), sampler_presets(setting)[setting], None


def mri_case(case: int, setting: str = "default"):
    """``(task, priors, DAPS config, cg_sense_video)`` of held-out MRI case ``case`` (as ``stepvip demo mri
    --case``)."""
    from cardiac_mri.baselines import sense_cg
    from cardiac_mri.demo import FRAMES, held_out_problem
    from cardiac_mri.priors import default_prior_paths
    from cardiac_mri.step import REFERENCE_TAU, mri_task, prior_image_size, sampler_presets

    priors = load_priors(default_prior_paths())
    size = prior_image_size(priors)
    problem = held_out_problem(size, case)
    lik = problem.likelihood(tau=REFERENCE_TAU)
    truth = (problem.target * problem.scale).numpy()
    task = mri_task(lik, FRAMES, size, truth=truth)
    cg = sense_cg(lik.op, lik.y[None], iters=10)[0].numpy()
    return task, priors, sampler_presets(setting)[setting], cg


def run_case(domain: str, case: int, method: str, samples: int, seed: int, setting: str = "default") -> dict:
    """Per-sample metrics of one method on one case: ``{"metrics": {metric: [samples]}, "seconds": ...}``; the
    MRI CG-SENSE reference (``method="CG-SENSE"``) has one "sample"."""
    task, priors, cfg, reference = (blackhole_case if domain == "blackhole" else mri_case)(case, setting)
    truth01 = task.metric_images(task.truth[None])[0]
    row: dict = {"case": case, "method": method, "samples": samples, "seed": seed, "setting": setting,
                 "priors": priors.paths}
    if method != "CG-SENSE":
        m = METHODS[method]
        cfg = cfg if m.uses_daps else m.presets(setting)  # DAPS family: the domain's preset; others: their own
        row["settings"] = settings_dict(cfg)
        if m.uses_daps:
            row["daps_config"] = cfg.to_dict()
    t0 = time.perf_counter()
    if method == "CG-SENSE":
        scores = truth_metrics(task.metric_images(reference[None]), truth01)
    else:
        x = METHODS[method].sample(task, priors, cfg, samples, seed)
        scores = truth_metrics(task.metric_images(task.to_physical(x)), truth01)
        scores.update(task.data_fit(x))
    row["seconds"] = round(time.perf_counter() - t0, 2)
    row["metrics"] = {k: np.asarray(v, dtype=np.float64).tolist() for k, v in scores.items()}
    return row


def settings_dict(settings) -> dict:
    import dataclasses

    return settings.to_dict() if hasattr(settings, "to_dict") else dataclasses.asdict(settings)


def result_path(out: Path, method: str, case: int) -> Path:
    return out / method.replace("+", "_") / f"case_{case}.json"


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
    methods = [m.strip() for m in args.methods.split(",")]
    known = (*METHODS, "CG-SENSE") if args.domain == "mri" else tuple(METHODS)
    if any(m not in known for m in methods):
        raise SystemExit(f"--methods {args.methods!r}: expected a comma-separated subset of {','.join(known)}")
    todo = [(c, m) for c in case_indices(args.domain, args.cases)[k::n] for m in methods]
    for i, (case, method) in enumerate(todo):
        path = result_path(out, method, case)
        path.parent.mkdir(parents=True, exist_ok=True)
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
            row = run_case(args.domain, case, method, args.samples, args.seed, "quick" if args.quick else "default")
            atomic_write_text(path, json.dumps(row, indent=1))
        finally:
            lock.unlink()
        print(f"[{i + 1}/{len(todo)}] case {case} {method}: {time.perf_counter() - t0:.0f} s -> {path}",
              file=sys.stderr, flush=True)
    return 0


def reduce_case(domain: str, row: dict) -> dict[str, float]:
    """One number per metric for a case: best sample by mean chi~2 (black hole, Table 1) or sample mean (MRI)."""
    m = {k: np.asarray(v, dtype=np.float64) for k, v in row["metrics"].items()}
    if domain == "blackhole" and "chi2_cp" in m:
        best = int(np.argmin(0.5 * (m["chi2_cp"] + m["chi2_logca"])))
        return {k: float(v[best]) for k, v in m.items()}
    return {k: float(v.mean()) for k, v in m.items()}


def summarize(domain: str, out: Path) -> tuple[str, dict]:
    """Markdown table (mean +- std over the cases every listed method has) and ``{method: {metric: (mean, std)}}``."""
    rows: dict[str, dict[int, dict]] = {}
    for m in (*METHODS, "CG-SENSE"):
        for p in sorted(result_path(out, m, 0).parent.glob("case_*.json")):
            r = json.loads(p.read_text())
            rows.setdefault(m, {})[r["case"]] = r
    if not rows:
        raise SystemExit(f"summarize: no results in {out}; run `quality_table.py run {domain} --out {out}` first")
    cases = sorted(set.intersection(*(set(v) for v in rows.values())))
    if not cases:
        raise SystemExit(f"summarize: no case in {out} has results for every method")
    cols = [*IMAGE_METRICS, *FIT[domain]]
    table: dict = {}
    for m, by_case in rows.items():
        per_case = [reduce_case(domain, by_case[c]) for c in cases]
        table[m] = {c: (float(np.mean([p[c] for p in per_case])), float(np.std([p[c] for p in per_case])))
                    for c in cols if c in per_case[0]}
        table[m]["seconds"] = (float(np.mean([by_case[c]["seconds"] for c in cases])), 0.0)
    n = rows["STeP"][cases[0]]["samples"] if "STeP" in rows else next(iter(rows.values()))[cases[0]]["samples"]
    sel = f"best of {n} samples by mean chi~2" if domain == "blackhole" else f"mean over {n} samples"
    lines = [f"{domain}: {len(cases)} held-out cases ({cases[0]}..{cases[-1]}), {sel}; mean +- std over cases", "",
             "| method | " + " | ".join(cols) + " | s / case | s / sample |", "|" + "---|" * (len(cols) + 3)]
    for m in rows:
        cells = [f"{table[m][c][0]:.4g} +- {table[m][c][1]:.2g}" if c in table[m] else "-" for c in cols]
        per = table[m]["seconds"][0] / max(rows[m][cases[0]]["samples"], 1)
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {table[m]['seconds'][0]:.0f} | {per:.1f} |")
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
    r.add_argument("--methods", default="STeP,IDM+BCS,IDM",
                   help=f"comma-separated subset of {','.join(METHODS)}; MRI also CG-SENSE")
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
