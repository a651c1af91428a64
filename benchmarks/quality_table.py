"""Quality table (issues 6, 16): every method on held-out synthetic cases (paper Tables 1 and 6).

For each of ``--cases`` held-out cases of a domain (the demo's case and the following indices, never seen in
training), simulate the measurements exactly as the demo does and run every method (``--methods``, default all of
the domain's):

* the registry's diffusion methods (``common.methods.METHODS``: STeP, IDM+BCS, IDM, SVI, VISION-XL, TCVR) with the
  shipped priors at their ``default`` presets (DAPS family: the domain's preset), ``--samples`` posterior samples
  each, the same seeds for every method;
* the classical baselines, deterministic, one "sample": black hole ``RML`` (per-frame ehtim RML,
  ``blackhole.baselines.rml_movie``, its default config, flux constraint at the measured light curve); MRI
  ``CG-SENSE`` (10 iterations), ``TV`` (temporal-TV SENSE) and ``L+S`` (low rank + sparse) of
  ``cardiac_mri.baselines`` at their defaults;
* ``static-truth``: the time-averaged truth repeated over the frames, a reference row that shows what a movie without
  motion scores (high d-PSNR on the fast black-hole movies, motion SNR exactly 0 dB).

Every sample is scored against the truth (``common.recon.run.truth_metrics``: psnr, ssim, dpsnr, dssim and the motion
SNR msnr at the domain's blur) and the data (black hole chi~2_cp, chi~2_logca; MRI misfit ||A x - y||), with the
seconds it took; one file per (method, case), ``OUT/<method>/case_<index>.json``, written atomically. Results already
there are skipped, so an interrupted run resumes (a result stored at other settings stops the run: use a new OUT).
``--prior DIR`` scores a candidate prior (``image``/``video``[/``vae``]``.safetensors``) before it is shipped: the
diffusion rows record the SHA-256 of the weights, so results made with other weights stop the run, and results of
a candidate that is then shipped unchanged stay valid.

Scale-out with ``torchrun`` (no lock files): each process reads ``RANK`` / ``WORLD_SIZE`` (absent: one process)
and takes the jobs ``index % WORLD_SIZE == RANK`` of the list ordered method by method, so every method's cases are
spread over the processes; it runs them case by case, one torch thread each (``--threads``). With more than one
process they meet at a gloo barrier at the end and rank 0 prints the table once every result is there.

``summarize`` reduces as in the paper: black hole (Table 1): per case the sample with the lowest mean chi~2
((chi2_cp + chi2_logca) / 2); MRI (Table 6): per case the mean over samples; then mean +- std over the cases every
listed method has. Its header prints the command lines that regenerate the results.

Usage (two processes on a 2-core machine; ``torchrun`` is the same as ``python -m torch.distributed.run``)::

    python -m torch.distributed.run --standalone --nproc_per_node=2 benchmarks/quality_table.py run blackhole \\
        --cases 10 --samples 5 --out benchmarks/quality16/blackhole
    python -m torch.distributed.run --standalone --nproc_per_node=2 benchmarks/quality_table.py run mri \\
        --cases 10 --samples 3 --out benchmarks/quality16/mri
    python benchmarks/quality_table.py summarize blackhole --out benchmarks/quality16/blackhole   # or mri
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.distributed import LONG_WAIT, DistInfo, env_world_size, leave_distributed, setup_distributed
from common.io import atomic_write_text
from common.methods import METHODS
from common.recon.cli import settings_dict
from common.recon.prior_set import Priors, load_priors, resolve_prior_paths
from common.recon.run import mean_fit, truth_metrics
from common.recon.task import ReconTask

IMAGE_METRICS = ("psnr", "ssim", "dpsnr", "dssim", "msnr")
FIT = {"blackhole": ("chi2_cp", "chi2_logca"), "mri": ("misfit",)}
CLASSICAL = {"blackhole": ("RML",), "mri": ("CG-SENSE", "TV", "L+S")}
STATIC = "static-truth"
DEFAULT_SAMPLES = {"blackhole": 5, "mri": 3}


def domain_methods(domain: str) -> tuple[str, ...]:
    """Every method of the table of ``domain``: diffusion methods, classical baselines, the static-truth row."""
    return (*METHODS, *CLASSICAL[domain], STATIC)


@dataclass
class Case:
    """One held-out case: the task (with its truth), the priors, the domain's DAPS preset and the classical
    baselines as ``name -> (settings dict, () -> physical movie [T, H, W])``."""

    task: ReconTask
    priors: Priors
    daps: object
    classical: dict[str, tuple[dict, Callable[[], np.ndarray]]]


def load_case(domain: str, case: int, setting: str = "default", prior: Path | None = None) -> Case:
    """:class:`Case` of held-out case ``case`` of ``domain`` (as ``stepvip demo <domain> --case``); the ``quick``
    setting also shortens the classical baselines (smoke tests only). ``prior``: a folder of a candidate prior
    (``image``/``video``[/``vae``]``.safetensors``, as ``--prior`` of the demos) instead of the shipped one."""
    return (_blackhole if domain == "blackhole" else _mri)(case, setting, prior)


def prior_paths(domain: str, prior: Path | None) -> dict[str, Path]:
    """The checkpoint files of ``prior`` (a folder) or, when ``None``, of the domain's shipped prior."""
    if domain == "blackhole":
        from blackhole.priors import default_prior_paths
    else:
        from cardiac_mri.priors import default_prior_paths
    return resolve_prior_paths(prior, {}, default_prior_paths)


def prior_digests(paths: dict) -> dict[str, str]:
    """First 16 hex digits of the SHA-256 of each prior file: a result is tied to the weights, not to a path (a
    candidate evaluated from its run folder and then shipped keeps its results)."""
    return {k: hashlib.sha256(Path(v).read_bytes()).hexdigest()[:16] for k, v in sorted(paths.items())}


def _blackhole(case: int, setting: str, prior: Path | None) -> Case:
    from blackhole.baselines import RMLConfig, rml_movie
    from blackhole.demo import NPIX, held_out_case
    from blackhole.measurements import closure_data, vis_table_from_obs
    from blackhole.reconstruct import DEFAULT_FOV_UAS, blackhole_task, fill_light_curve, sampler_presets

    truth, obs, _ = held_out_case(case)
    data = closure_data(vis_table_from_obs(obs))
    task = blackhole_task(data, NPIX, DEFAULT_FOV_UAS, truth=truth)
    rml = RMLConfig(maxit=5, rounds=1) if setting == "quick" else RMLConfig()
    flux = fill_light_curve(data.flux, data.table.frame_times)
    classical = {"RML": ({"npix": NPIX, "fov_uas": DEFAULT_FOV_UAS, **settings_dict(rml)},
                         lambda: rml_movie(obs, NPIX, DEFAULT_FOV_UAS, rml, flux=flux))}
    return Case(task, load_priors(prior_paths("blackhole", prior)), sampler_presets(setting)[setting], classical)


def _mri(case: int, setting: str, prior: Path | None) -> Case:
    from cardiac_mri.baselines import low_rank_plus_sparse, sense_cg, tv_sense
    from cardiac_mri.demo import FRAMES, held_out_problem
    from cardiac_mri.step import REFERENCE_TAU, mri_task, prior_image_size, sampler_presets

    priors = load_priors(prior_paths("mri", prior))
    size = prior_image_size(priors)
    problem = held_out_problem(size, case)
    lik = problem.likelihood(tau=REFERENCE_TAU)
    truth = (problem.target * problem.scale).numpy()
    task = mri_task(lik, FRAMES, size, truth=truth)
    quick = setting == "quick"
    kw = {"CG-SENSE": {"iters": 10}, "TV": {"iters": 20 if quick else 150}, "L+S": {"iters": 10 if quick else 50}}
    fns = {"CG-SENSE": sense_cg, "TV": tv_sense, "L+S": low_rank_plus_sparse}

    def runner(name: str) -> Callable[[], np.ndarray]:
        return lambda: fns[name](lik.op, lik.y[None], **kw[name])[0].numpy()

    classical = {name: (kw[name], runner(name)) for name in fns}
    return Case(task, priors, sampler_presets(setting)[setting], classical)


def blackhole_case(case: int, setting: str = "default"):
    """``(task, priors, DAPS config, None)`` of held-out black-hole case ``case`` (for the sweep scripts)."""
    c = load_case("blackhole", case, setting)
    return c.task, c.priors, c.daps, None


def mri_case(case: int, setting: str = "default"):
    """``(task, priors, DAPS config, CG-SENSE video)`` of held-out MRI case ``case`` (for the sweep scripts)."""
    c = load_case("mri", case, setting)
    return c.task, c.priors, c.daps, c.classical["CG-SENSE"][1]()


def run_case(domain: str, case: int, method: str, samples: int, seed: int, setting: str = "default",
             prior: Path | None = None) -> dict:
    """Per-sample metrics of one method on one case: ``{"metrics": {metric: [samples]}, "seconds": ...}``;
    classical methods and ``static-truth`` have one "sample". ``prior``: see :func:`load_case`."""
    c = load_case(domain, case, setting, prior)
    task = c.task
    truth01 = task.metric_images(task.truth[None])[0]
    row: dict = {"case": case, "method": method, "seed": seed, "setting": setting}
    t0 = time.perf_counter()
    if method in METHODS:
        m = METHODS[method]
        cfg = method_config(domain, method, setting)
        row.update(kind="diffusion", samples=samples, priors=c.priors.paths, prior_sha256=prior_digests(c.priors.paths),
                   prior_dir=None if prior is None else str(prior), settings=settings_dict(cfg))
        x = m.sample(task, c.priors, cfg, samples, seed)
        seconds = time.perf_counter() - t0
        physical = task.to_physical(x)
    else:
        if method == STATIC:
            row.update(kind="reference", samples=1, settings={"movie": "time-averaged truth repeated"})
            physical = np.repeat(task.truth.mean(axis=0, keepdims=True), task.frames, axis=0)[None]
        else:
            settings, fn = c.classical[method]
            row.update(kind="classical", samples=1, settings=settings)
            physical = fn()[None]
        seconds = time.perf_counter() - t0
        x = task.from_physical(physical)
    scores = truth_metrics(task.metric_images(physical), truth01, task.motion_blur_px)
    scores.update(task.data_fit(x))
    row["seconds"] = round(seconds, 2)
    row["seconds_per_sample"] = round(seconds / row["samples"], 2)
    row["motion_blur_px"] = task.motion_blur_px
    row["metrics"] = {k: np.asarray(v, dtype=np.float64).tolist() for k, v in scores.items()}
    if row["kind"] == "diffusion":
        row["metrics_of_mean"] = metrics_of_mean(task, physical, truth01)
    return row


def metrics_of_mean(task, physical: np.ndarray, truth01: np.ndarray) -> dict[str, float]:
    """The metrics and data fit of the posterior mean of ``physical [S, T, H, W]`` (complex for MRI): the movie
    ``stepvip ... reconstruct`` writes to its FITS / submission files."""
    mean = physical.mean(axis=0)
    scores = {k: float(v[0]) for k, v in truth_metrics(task.metric_images(mean[None]), truth01,
                                                      task.motion_blur_px).items()}
    return {**scores, **mean_fit(task, mean)}


def method_config(domain: str, method: str, setting: str):
    """The settings a diffusion ``method`` runs with on ``domain`` at ``setting``: the domain's DAPS preset for the
    DAPS family, the method's own preset otherwise."""
    if not METHODS[method].uses_daps:
        return METHODS[method].presets(setting, domain)
    if domain == "blackhole":
        from blackhole.reconstruct import sampler_presets
    else:
        from cardiac_mri.step import sampler_presets
    return sampler_presets(setting)[setting]


def method_settings(domain: str, method: str, setting: str) -> dict:
    """:func:`method_config` as a stored row holds it (JSON view)."""
    return json.loads(json.dumps(settings_dict(method_config(domain, method, setting))))


def field_defaults(domain: str, method: str, setting: str) -> dict:
    """The settings of :func:`method_config`'s class at its field defaults (JSON view, as a row stores them): a row
    stored before a field was added ran at that field's default."""
    return json.loads(json.dumps(settings_dict(type(method_config(domain, method, setting))())))


def result_path(out: Path, method: str, case: int) -> Path:
    return out / method.replace("+", "_") / f"case_{case}.json"


def case_indices(domain: str, n: int) -> list[int]:
    from blackhole.demo import HELDOUT_CASE as BH
    from cardiac_mri.demo import HELDOUT_CASE as MRI

    first = BH if domain == "blackhole" else MRI
    return list(range(first, first + n))


def jobs_of_rank(cases: list[int], methods: list[str], rank: int, world: int) -> list[tuple[int, str]]:
    """The ``(case, method)`` jobs of process ``rank`` of ``world``: index ``% world == rank`` of the list ordered
    method by method (so each method's cases spread over the processes), then run case by case (complete cases
    appear early)."""
    jobs = [(c, m) for m in methods for c in cases]
    mine = jobs[rank::world]
    return sorted(mine, key=lambda j: (cases.index(j[0]), methods.index(j[1])))


def stale_results(out: Path, jobs: list[tuple[int, str]], samples: int, seed: int, setting: str,
                  digests: dict[str, str] | None = None, settings: dict[str, dict] | None = None,
                  defaults: dict[str, dict] | None = None) -> list[str]:
    """Stored results of ``jobs`` made at other settings (samples, seed or preset name) than asked for, or, for the
    diffusion methods, with other prior weights than ``digests`` (:func:`prior_digests`; results stored before the
    digests were recorded are not checked) or other sampler settings than ``settings[method]``
    (:func:`method_settings`: a preset whose values changed since the row was made; a setting the row lacks counts
    as ``defaults[method]``'s, :func:`field_defaults`)."""
    bad = []
    for case, method in jobs:
        p = result_path(out, method, case)
        if p.exists():
            r = json.loads(p.read_text())
            want = {"seed": seed, "setting": setting, **({"samples": samples} if method in METHODS else {})}
            if method in METHODS and digests is not None and "prior_sha256" in r:
                want["prior_sha256"] = used_digests(method, digests)
            if method in METHODS and settings is not None and method in settings:
                want["settings"] = settings[method]
            got = {k: r.get(k, "default" if k == "setting" else None) for k in want}
            if "prior_sha256" in want and isinstance(got["prior_sha256"], dict):
                got["prior_sha256"] = used_digests(method, got["prior_sha256"])
            if "settings" in want and isinstance(got["settings"], dict) and defaults and method in defaults:
                got["settings"] = {**defaults[method], **got["settings"]}
            if got != want:
                bad.append(f"{p}: {got} (asked {want})")
    return bad


def used_digests(method: str, digests: dict[str, str]) -> dict[str, str]:
    """The digests of the networks ``method`` samples with (``Method.network``: STeP the video UNet, the others the
    image UNet), and of the VAE where there is one: a new video prior leaves the image-prior rows valid."""
    return {k: v for k, v in digests.items() if k in (METHODS[method].network, "vae")}


def parse_methods(domain: str, text: str | None) -> list[str]:
    known = domain_methods(domain)
    if text is None:
        return list(known)
    methods = [m.strip() for m in text.split(",") if m.strip()]
    if not methods or any(m not in known for m in methods):
        raise SystemExit(f"--methods {text!r}: expected a comma-separated subset of {','.join(known)}")
    return methods


def cmd_run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    methods = parse_methods(args.domain, args.methods)
    samples = args.samples or DEFAULT_SAMPLES[args.domain]
    setting = "quick" if args.quick else "default"
    cases = case_indices(args.domain, args.cases)
    prior = None if args.prior is None else Path(args.prior)
    digests = None
    if any(m in METHODS for m in methods):
        digests = prior_digests(prior_paths(args.domain, prior))
    current = {m: method_settings(args.domain, m, setting) for m in methods if m in METHODS}
    defaults = {m: field_defaults(args.domain, m, setting) for m in current}
    stale = stale_results(out, [(c, m) for c in cases for m in methods], samples, args.seed, setting, digests,
                          current, defaults)
    if stale:
        raise SystemExit("results stored at other settings (use a new --out or delete them):\n  " + "\n  ".join(stale))
    workers = setup_distributed(LONG_WAIT) if env_world_size() > 1 else DistInfo(0, 1, torch.device("cpu"))
    rank, world = workers.rank, workers.world_size
    todo = jobs_of_rank(cases, methods, rank, world)
    failed = []
    for i, (case, method) in enumerate(todo):
        path = result_path(out, method, case)
        tag = f"[rank {rank}/{world}, {i + 1}/{len(todo)}] case {case} {method}"
        if path.exists():
            print(f"{tag}: done already ({path})", file=sys.stderr, flush=True)
            continue
        t0 = time.perf_counter()
        try:
            row = run_case(args.domain, case, method, samples, args.seed, setting, prior)
        except Exception:  # noqa: BLE001 -- report, go on with the other jobs, exit non-zero at the end
            traceback.print_exc()
            failed.append((case, method))
            print(f"{tag}: FAILED", file=sys.stderr, flush=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(row, indent=1))
        print(f"{tag}: {time.perf_counter() - t0:.0f} s ({row['seconds_per_sample']} s / sample) -> {path}",
              file=sys.stderr, flush=True)
    workers.barrier()
    leave_distributed()
    if rank == 0:
        missing = [result_path(out, m, c) for c in cases for m in methods if not result_path(out, m, c).exists()]
        if missing:
            print(f"{len(missing)} result(s) missing, e.g. {missing[0]}; rerun the same command to resume",
                  file=sys.stderr)
        else:
            text, _ = summarize(args.domain, out, methods)
            _, table = summarize(args.domain, out)  # table.json covers every method stored in OUT, not only these
            atomic_write_text(out / "table.json", json.dumps(table, indent=1))
            print(text, flush=True)
    if failed:
        print(f"rank {rank}: {len(failed)} job(s) failed: {failed}", file=sys.stderr)
        return 1
    return 0


def reduce_case(domain: str, row: dict) -> dict[str, float]:
    """One number per metric for a case: best sample by mean chi~2 (black hole, Table 1) or sample mean (MRI)."""
    m = {k: np.asarray(v, dtype=np.float64) for k, v in row["metrics"].items()}
    if domain == "blackhole" and "chi2_cp" in m:
        best = int(np.argmin(0.5 * (m["chi2_cp"] + m["chi2_logca"])))
        return {k: float(v[best]) for k, v in m.items()}
    return {k: float(v.mean()) for k, v in m.items()}


def commands(domain: str, out: Path, cases: list[int], rows: dict[str, dict[int, dict]]) -> list[str]:
    """The command lines that regenerate ``rows`` (one per (samples, seed, preset) of the diffusion methods; the
    classical and reference rows join the first group of their seed and preset)."""
    first = case_indices(domain, 1)[0]
    groups: dict[tuple, list[str]] = {}
    for m, by_case in rows.items():
        r = by_case[cases[0]]
        key = (r.get("samples") if m in METHODS else None, r.get("seed", 0), r.get("setting", "default"),
               r.get("prior_dir") if m in METHODS else None)
        groups.setdefault(key, []).append(m)
    for key in [k for k in groups if k[0] is None]:
        host = next((k for k in groups if k[0] is not None and k[1:3] == key[1:3]), None)
        if host is not None:
            groups[host] += groups.pop(key)
    lines = []
    for (samples, seed, setting, prior), methods in groups.items():
        lines.append(f"python -m torch.distributed.run --standalone --nproc_per_node=2 benchmarks/quality_table.py "
                     f"run {domain} --cases {cases[-1] - first + 1}"
                     + (f" --samples {samples}" if samples else "") + f" --seed {seed}"
                     + (" --quick" if setting == "quick" else "") + (f" --prior {prior}" if prior else "")
                     + f" --methods {','.join(methods)} --out {out}")
    lines.append(f"python benchmarks/quality_table.py summarize {domain} --out {out}")
    return lines


def summarize(domain: str, out: Path, methods: list[str] | None = None) -> tuple[str, dict]:
    """Markdown table (mean +- std over the cases every listed method has, commands in the header) and
    ``{method: {metric: (mean, std)}}``."""
    rows: dict[str, dict[int, dict]] = {}
    for m in methods or domain_methods(domain):
        for p in sorted(result_path(out, m, 0).parent.glob("case_*.json")):
            r = json.loads(p.read_text())
            rows.setdefault(m, {})[r["case"]] = r
    if not rows:
        raise SystemExit(f"summarize: no results in {out}; run `quality_table.py run {domain} --out {out}` first")
    cases = sorted(set.intersection(*(set(v) for v in rows.values())))
    if not cases:
        raise SystemExit(f"summarize: no case in {out} has results for every method ({', '.join(rows)})")
    cols = [*IMAGE_METRICS, *FIT[domain]]
    run_lines = commands(domain, out, cases, rows)
    with_means: dict[str, dict[int, dict]] = {}
    for m, by_case in rows.items():  # each method's posterior-mean row after it, where every case stores it
        with_means[m] = by_case
        if m in METHODS and all("metrics_of_mean" in by_case[c] and by_case[c].get("samples", 1) > 1 for c in cases):
            with_means[mean_row(m, by_case[cases[0]]["samples"])] = {
                c: {**r, "metrics": {k: [v] for k, v in r["metrics_of_mean"].items()}} for c, r in by_case.items()}
    rows = with_means
    table: dict = {}
    for m, by_case in rows.items():
        per_case = [reduce_case(domain, by_case[c]) for c in cases]
        table[m] = {c: (float(np.mean([p[c] for p in per_case])), float(np.std([p[c] for p in per_case])))
                    for c in cols if c in per_case[0]}
        secs = [by_case[c]["seconds"] for c in cases]
        per = [by_case[c]["seconds"] / max(by_case[c].get("samples", 1), 1) for c in cases]
        table[m]["seconds"] = (float(np.mean(secs)), float(np.std(secs)))
        table[m]["seconds_per_sample"] = (float(np.mean(per)), float(np.std(per)))
    sel = ("per case the best sample by mean chi~2 (paper Table 1)" if domain == "blackhole"
           else "per case the mean over samples (paper Table 6)")
    samples = sorted({f"{m} {rows[m][cases[0]].get('samples', '?')}" for m in rows if m in METHODS})
    lines = [f"{domain}: {len(cases)} held-out cases ({cases[0]}..{cases[-1]}), {sel}; mean +- std over cases; "
             f"samples per case: {', '.join(samples) or '-'}; classical methods and {STATIC} (time-averaged truth "
             "repeated): 1; `<method> (mean of N)`: the posterior mean of its N samples, the movie `reconstruct` "
             "writes. "
             "Regenerate with:", "", "```bash", *run_lines, "```", "",
             "| method | " + " | ".join(cols) + " | s / case | s / sample |", "|" + "---|" * (len(cols) + 3)]
    for m in rows:
        cells = [f"{table[m][c][0]:.4g} +- {table[m][c][1]:.2g}" if c in table[m] else "-" for c in cols]
        lines.append(f"| {m} | " + " | ".join(cells)
                     + f" | {table[m]['seconds'][0]:.0f} | {table[m]['seconds_per_sample'][0]:.1f} |")
    return "\n".join(lines), table


def mean_row(method: str, samples: int) -> str:
    """Table name of ``method``'s posterior-mean row."""
    return f"{method} (mean of {samples})"


def cmd_summarize(args: argparse.Namespace) -> int:
    methods = None if args.methods is None else parse_methods(args.domain, args.methods)
    text, table = summarize(args.domain, Path(args.out), methods)
    atomic_write_text(Path(args.out) / "table.json", json.dumps(table, indent=1))
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="sample and score held-out cases (resumable; under torchrun: spread over ranks)")
    r.add_argument("domain", choices=("blackhole", "mri"))
    r.add_argument("--cases", type=int, default=10)
    r.add_argument("--samples", type=int, default=None,
                   help=f"posterior samples per case of the diffusion methods (default {DEFAULT_SAMPLES})")
    r.add_argument("--methods", default=None,
                   help="comma-separated subset (default: all of the domain's): "
                        + "; ".join(f"{d}: {','.join(domain_methods(d))}" for d in ("blackhole", "mri")))
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--threads", type=int, default=1, help="torch threads per process")
    r.add_argument("--quick", action="store_true", help="the demos' --quick sampler preset (smoke test only)")
    r.add_argument("--prior", default=None, help="folder of a candidate prior (image/video[/vae].safetensors) "
                   "instead of the shipped one; results record the weights' SHA-256")
    r.add_argument("--out", required=True)
    r.set_defaults(func=cmd_run)
    s = sub.add_parser("summarize", help="print the table (markdown) from OUT/<method>/case_*.json")
    s.add_argument("domain", choices=("blackhole", "mri"))
    s.add_argument("--methods", default=None, help="comma-separated subset (default: every method with results)")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_summarize)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
