"""benchmarks/quality_table.py (every method, resumable, torchrun) and benchmarks/paper_scale.py, on smoke settings."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def test_jobs_are_spread_over_ranks_method_by_method():
    qt = _load("quality_table")
    cases, methods = [0, 1, 2, 3, 4], ["a", "b", "c"]
    shares = [qt.jobs_of_rank(cases, methods, r, 2) for r in range(2)]
    assert sorted(shares[0] + shares[1]) == sorted((c, m) for c in cases for m in methods)
    for m in methods:  # every method's cases split 3 / 2 or 2 / 3, not all on one rank
        assert sorted(sum(1 for j in s if j[1] == m) for s in shares) == [2, 3]
    assert shares[0] == sorted(shares[0], key=lambda j: (j[0], methods.index(j[1])))  # case by case
    assert qt.domain_methods("blackhole")[-2:] == ("RML", "static-truth")
    assert {"CG-SENSE", "TV", "L+S", "STeP", "SVI", "VISION-XL", "TCVR"} <= set(qt.domain_methods("mri"))


@pytest.mark.slow
def test_quality_table_run_resume_and_summarize(tmp_path, capsys):
    qt = _load("quality_table")
    runs = {"mri": "IDM,TV,static-truth", "blackhole": "IDM,RML"}
    for domain, methods in runs.items():
        out = tmp_path / domain
        args = ["run", domain, "--quick", "--cases", "1", "--samples", "1", "--methods", methods, "--out", str(out)]
        assert qt.main(args) == 0
        text = capsys.readouterr().out
        assert "| method | psnr | ssim | dpsnr | dssim | msnr |" in text and "s / sample" in text
        assert f"quality_table.py run {domain} --cases 1 --samples 1 --seed 0 --quick --methods {methods}" in text
        for m in methods.split(","):
            row = json.loads(qt.result_path(out, m, 100000).read_text())
            assert {"psnr", "ssim", "dpsnr", "dssim", "msnr", *qt.FIT[domain]} <= set(row["metrics"])
            assert row["seconds_per_sample"] >= 0 and row["samples"] == 1
            if m == "IDM":  # the posterior mean of one sample is that sample
                assert row["metrics_of_mean"] == pytest.approx({k: v[0] for k, v in row["metrics"].items()})
        assert qt.main(args) == 0  # resumes: everything is done already
        assert "done already" in capsys.readouterr().err
        first = methods.split(",")[0]
        assert qt.main([*args[:-4], "--methods", first, "--out", str(out)]) == 0  # a run of one method ...
        stored = json.loads((out / "table.json").read_text())
        assert set(stored) == set(methods.split(",")), stored.keys()  # ... keeps every stored method in table.json
        with pytest.raises(SystemExit, match="other settings"):
            qt.main([*args[:-2], "--seed", "1", "--out", str(out)])
        # a row made before a setting existed ran at its default: not stale
        path = qt.result_path(out, "IDM", 100000)
        row = json.loads(path.read_text())
        assert row["settings"].pop("radius_scale") == 1.0
        path.write_text(json.dumps(row))
        assert qt.main(args) == 0
        # a row made before the preset's values changed (same preset name) is stale too
        row["settings"]["annealing_steps"] += 1
        path.write_text(json.dumps(row))
        with pytest.raises(SystemExit, match="annealing_steps"):
            qt.main(args)
    # a candidate prior from its own folder: results tied to the weights' digests, the command names the folder
    shipped = json.loads(qt.result_path(tmp_path / "mri", "IDM", 100000).read_text())
    cand = tmp_path / "candidate"
    cand.mkdir()
    for key in ("image", "video"):
        (cand / f"{key}.safetensors").write_bytes(Path(shipped["priors"][key]).read_bytes())
    args = ["run", "mri", "--quick", "--cases", "1", "--samples", "1", "--methods", "IDM", "--prior", str(cand),
            "--out", str(tmp_path / "cand_out")]
    assert qt.main(args) == 0
    assert f"--prior {cand} --methods IDM" in capsys.readouterr().out
    row = json.loads(qt.result_path(tmp_path / "cand_out", "IDM", 100000).read_text())
    assert row["prior_dir"] == str(cand) and row["prior_sha256"] == shipped["prior_sha256"]
    assert set(row["prior_sha256"]) == {"image", "video"}
    other = {**row["prior_sha256"], "image": "0" * 16}
    assert qt.stale_results(tmp_path / "cand_out", [(100000, "IDM")], 1, 0, "quick", other)
    # IDM samples with the image UNet only: another video prior leaves its rows valid
    assert not qt.stale_results(tmp_path / "cand_out", [(100000, "IDM")], 1, 0, "quick",
                                {**row["prior_sha256"], "video": "0" * 16})
    assert qt.used_digests("STeP", {"image": "a", "video": "b", "vae": "c"}) == {"video": "b", "vae": "c"}
    assert not qt.stale_results(tmp_path / "cand_out", [(100000, "IDM")], 1, 0, "quick", row["prior_sha256"])
    static = json.loads(qt.result_path(tmp_path / "mri", "static-truth", 100000).read_text())
    assert static["metrics"]["msnr"] == [0.0]
    assert qt.main(["summarize", "blackhole", "--out", str(tmp_path / "blackhole")]) == 0
    assert "| RML |" in capsys.readouterr().out


@pytest.mark.slow
def test_quality_table_under_torchrun_two_processes(tmp_path):
    out = tmp_path / "mri"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(ROOT / "benchmarks" / "quality_table.py"), "run", "mri", "--quick", "--cases", "2", "--samples", "1",
           "--methods", "CG-SENSE,static-truth", "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    for case in (100000, 100001):
        for m in ("CG-SENSE", "static-truth"):
            assert (out / m / f"case_{case}.json").is_file()
    assert "rank 0/2" in res.stderr and "rank 1/2" in res.stderr
    assert res.stdout.count("| CG-SENSE |") == 1 and "2 held-out cases" in res.stdout  # rank 0 only
    assert not list(out.rglob("*.lock"))


@pytest.mark.slow
def test_paper_scale_smoke_on_cpu(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "paper_scale.py"), "mri", "--config",
           str(ROOT / "configs" / "prior_mri_tiny.yaml"), "--annealing-steps", "1", "--ode-steps", "2",
           "--mcmc-steps", "1", "--device", "cpu", "--threads", "1", "--json", str(tmp_path / "r.json")]
    res = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    (r,) = json.loads((tmp_path / "r.json").read_text())
    assert r["paper_seconds"] == 332.0 and r["paper_memory_gb"] == 23.0 and not r["paper_preset"]
    assert r["seconds_per_sample"] > 0 and r["peak_memory_gb"] > 0 and r["peak_memory_kind"] == "process peak RSS"
    assert "x the paper's 332 s" in res.stdout


def test_field_defaults_are_stored_settings_of_every_diffusion_method():
    """A row stored before a setting existed is compared at that setting's default: every diffusion method's
    defaults have the keys of its stored settings (nested settings such as SVI's data fit included)."""
    qt = _load("quality_table")
    for domain in ("blackhole", "mri"):
        for method in qt.domain_methods(domain):
            if method in qt.METHODS:
                assert set(qt.field_defaults(domain, method, "default")) == set(
                    qt.method_settings(domain, method, "default")), (domain, method)


def test_summarize_adds_the_posterior_mean_row_of_sampling_methods(tmp_path):
    """``<method> (mean of N)``: the per-case metrics of the posterior mean, beside the per-sample reduction; not a
    method of the regenerating command lines."""
    qt = _load("quality_table")
    out = tmp_path / "mri"
    for case, (psnrs, of_mean) in {100000: ([30.0, 32.0], 33.0), 100001: ([28.0, 30.0], 31.0)}.items():
        base = {"case": case, "seed": 0, "setting": "default", "seconds": 4.0}
        rows = {"STeP": {**base, "kind": "diffusion", "samples": 2, "prior_dir": None,
                         "metrics": {"psnr": psnrs, "misfit": [1e-4, 1e-4]},
                         "metrics_of_mean": {"psnr": of_mean, "misfit": 2e-4}},
                "TV": {**base, "kind": "classical", "samples": 1, "metrics": {"psnr": [31.5], "misfit": [1e-4]}}}
        for m, row in rows.items():
            qt.result_path(out, m, case).parent.mkdir(parents=True, exist_ok=True)
            qt.result_path(out, m, case).write_text(json.dumps({"method": m, **row}))
    text, table = qt.summarize("mri", out)
    assert list(table) == ["STeP", "STeP (mean of 2)", "TV"]
    assert table["STeP"]["psnr"][0] == pytest.approx(30.0)
    assert table["STeP (mean of 2)"]["psnr"][0] == pytest.approx(32.0)
    assert table["STeP (mean of 2)"]["misfit"][0] == pytest.approx(2e-4)
    assert "| STeP (mean of 2) | 32 +- 1 |" in text and "--methods STeP,TV --out" in text
