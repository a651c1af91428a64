"""Long sampling runs (issue 15): a killed reconstruction resumed with ``--resume`` writes the netCDF of an
uninterrupted run, and a 2-process ``torchrun`` (gloo, CPU) run writes the single-process one.

Every run is a subprocess with ``OMP_NUM_THREADS=1`` (what torchrun sets for its workers): float32 results depend
on the number of intra-op threads at the 1e-5 level, so bit-equality is compared at one thread per process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from common.cli import main
from common.methods import METHODS
from tests.demo_priors import make_untrained_prior

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]
SMALL = {"vae_overrides": {"channels": (8, 8, 16)},
         "unet_overrides": {"channels": (16, 16, 16), "attn_levels": (), "temporal_attn_levels": ()}}
ENV = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")


def _cli(*argv: str, torchrun: int = 0) -> list[str]:
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={torchrun}", "-m"] \
        if torchrun else [sys.executable, "-m"]
    return [*launch, "common.cli", *argv]


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    res = subprocess.run(argv, env=ENV, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def assert_same_netcdf(a: Path, b: Path) -> None:
    """Every variable and coordinate of two ``samples.nc`` equal bit for bit, and the same attributes."""
    with xr.open_dataset(a, engine="h5netcdf") as da, xr.open_dataset(b, engine="h5netcdf") as db:
        assert set(da.variables) == set(db.variables)
        for v in da.variables:
            assert np.array_equal(da[v].values, db[v].values), v
        assert da.attrs == db.attrs


@pytest.fixture(scope="module")
def bh_prior(tmp_path_factory) -> Path:
    return make_untrained_prior("prior_bh_tiny.yaml", tmp_path_factory.mktemp("bh_prior"), **SMALL)


@pytest.fixture(scope="module")
def mri_prior(tmp_path_factory) -> Path:
    return make_untrained_prior("prior_mri_tiny.yaml", tmp_path_factory.mktemp("mri_prior"), **SMALL)


def test_killed_reconstruction_resumes_to_the_uninterrupted_netcdf(bh_prior: Path, tmp_path: Path, capsys):
    """``stepvip blackhole reconstruct --samples 6`` killed (SIGKILL) once 3 samples are stored, then rerun with
    ``--resume``: it draws only the missing samples and its samples.nc equals an uninterrupted run's."""
    from blackhole.data import example_uvfits

    def argv(out: Path, *extra: str) -> list[str]:
        return _cli("blackhole", "reconstruct", "--obs", str(example_uvfits()), "--out", str(out), "--prior",
                    str(bh_prior), "--quick", "--no-progress", "--samples", "6", "--frames", "4", *extra)

    full = tmp_path / "full"
    _run(argv(full))
    out = tmp_path / "resumed"
    samples = tmp_path / "resumed.partial" / "STeP"
    proc = subprocess.Popen(argv(out), env=ENV, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while len(list(samples.glob("sample_*.safetensors"))) < 3:
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before 3 samples were stored"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored = len(list(samples.glob("sample_*.safetensors")))
    assert 3 <= stored < 6 and not out.exists()
    # without --resume the unfinished run is refused, not overwritten
    rc = main(["blackhole", "reconstruct", "--obs", str(example_uvfits()), "--out", str(out), "--prior",
               str(bh_prior), "--quick", "--no-progress", "--samples", "6", "--frames", "4"])
    err = capsys.readouterr().err
    assert rc == 2 and "resumed.partial holds the samples of an unfinished run: add --resume" in err
    res = _run(argv(out, "--resume"))
    assert f"{6 - stored} of 6 sample(s) to draw, {stored} already done" in res.stderr
    assert_same_netcdf(full / "samples.nc", out / "samples.nc")
    assert not (tmp_path / "resumed.partial").exists() and not (tmp_path / "full.partial").exists()
    assert sorted(p.name for p in full.rglob("*")) == sorted(p.name for p in out.rglob("*"))


def test_interrupted_demo_resumes_in_process_and_refuses_another_seed(mri_prior: Path, tmp_path: Path, monkeypatch,
                                                                   capsys):
    """An interruption (Ctrl-C) after 3 of 6 STeP samples leaves them in ``<out>.partial``; ``--resume`` with
    another seed is refused naming it; with the same command it finishes with the uninterrupted run's outputs."""
    base = ["demo", "mri", "--prior", str(mri_prior), "--quick", "--no-progress", "--methods", "STeP,IDM",
            "--samples", "6"]
    assert main([*base, "--out", str(tmp_path / "full")]) == 0
    step, calls = METHODS["STeP"], []

    def interrupted(task, priors, settings, n_samples, seed):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(seed)
        return step.sample(task, priors, settings, n_samples, seed)

    import dataclasses

    monkeypatch.setitem(METHODS, "STeP", dataclasses.replace(step, sample=interrupted))
    out = tmp_path / "out"
    assert main([*base, "--out", str(out)]) == 130
    monkeypatch.setitem(METHODS, "STeP", step)
    assert calls == [0, 1, 2] and not out.exists()
    assert len(list((tmp_path / "out.partial" / "STeP").glob("sample_*"))) == 3
    capsys.readouterr()
    assert main([*base, "--out", str(out), "--resume", "--seed", "1"]) == 2
    assert "holds STeP samples of a different run (seed differ)" in capsys.readouterr().err
    assert main([*base, "--out", str(out), "--resume"]) == 0
    assert "STeP: 3 of 6 sample(s) to draw, 3 already done" in capsys.readouterr().err
    assert_same_netcdf(tmp_path / "full" / "samples.nc", out / "samples.nc")
    assert json.loads((out / "uq.json").read_text()) == json.loads((tmp_path / "full" / "uq.json").read_text())
    assert not (tmp_path / "out.partial").exists()


def test_two_process_torchrun_equals_one_process(mri_prior: Path, tmp_path: Path):
    """``torchrun --nproc_per_node=2 -m common.cli demo mri``: rank r draws samples k % 2 == r, rank 0 writes one
    output folder equal to the single-process run's (metrics too, except the timing)."""
    argv = ["demo", "mri", "--prior", str(mri_prior), "--quick", "--no-progress", "--methods", "STeP,IDM+BCS",
            "--samples", "3"]
    _run(_cli(*argv, "--out", str(tmp_path / "single")))
    res = _run(_cli(*argv, "--out", str(tmp_path / "ddp"), torchrun=2))
    assert "[mri rank 1/2] STeP: 1 of 3 sample(s) to draw" in res.stderr
    assert "[mri rank 0/2] STeP: 2 of 3 sample(s) to draw" in res.stderr
    assert_same_netcdf(tmp_path / "single" / "samples.nc", tmp_path / "ddp" / "samples.nc")
    m1, m2 = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("single", "ddp"))
    for row in (*m1.values(), *m2.values()):
        row.pop("seconds_per_sample")
    assert m1 == m2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp", "single"]  # no work or temporary folder left
