"""Nothing corrupt, nothing lost (issue 15): the probe sweep's bad inputs, as a matrix.

Every case runs the real ``stepvip`` entry point (``common.cli.main``, with its top-level error handler) in-process on
tiny inputs made in ``tmp_path`` and asserts the exit code, exactly one ``error:`` line on stderr (no traceback)
naming the problem, and that nothing was written where the output would go.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import h5py
import numpy as np
import pytest

from common.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ACC = "MultiCoil/Cine/TrainingSet/AccFactor04/P001"


# ---------------------------------------------------------------- inputs


def _kspace_copy(root: Path, name: str, change) -> Path:
    """A copy of the synthetic AccFactor04 case (with its mask) whose k-space went through ``change``."""
    src = root / "syn" / ACC
    dst = root / name / ACC
    dst.mkdir(parents=True)
    for f in ("cine_sax.mat", "cine_sax_mask.mat"):
        shutil.copy(src / f, dst / f)
    with h5py.File(dst / "cine_sax.mat", "r+") as f:
        a = f["kspace_sub04"][()]
        change(a)
        f["kspace_sub04"][...] = a
    return dst / "cine_sax.mat"


def _set_nan(a):
    a["real"][0, 0, 0, 5, 5] = np.nan


def _set_inf(a):
    a["imag"][0, 0, 1, 7, 3] = np.inf


def _times_1e30(a):
    a["real"] *= 1e30
    a["imag"] *= 1e30


def _zero(a):
    a["real"] = 0
    a["imag"] = 0


@pytest.fixture(scope="module")
def mri(tmp_path_factory):
    """Tiny synthetic CMRxRecon root and corrupted copies of one case."""
    root = tmp_path_factory.mktemp("mri")
    assert main(["mri", "make-synthetic", "--out", str(root / "syn"), "--patients", "1", "--ny", "32", "--nx", "32",
                 "--coils", "2", "--frames", "3", "--slices", "1"]) == 0
    files = {"good": root / "syn" / ACC / "cine_sax.mat", "root": root / "syn"}
    for name, change in (("nan", _set_nan), ("inf", _set_inf), ("big", _times_1e30), ("zero", _zero)):
        files[name] = _kspace_copy(root, name, change)
    sub = root / "nan_submission" / ACC
    sub.mkdir(parents=True)
    import scipy.io

    scipy.io.savemat(sub / "cine_sax.mat", {"img4ranking": np.full((11, 16, 1, 3), np.nan, np.float32)})
    files["nan_submission"] = root / "nan_submission"
    a_file = root / "a_file"
    a_file.write_text("not a folder")
    files["a_file"] = a_file
    return files


@pytest.fixture(scope="module")
def bh(tmp_path_factory):
    """A ring movie (16 x 16 pixels on the 64 timestamps of the Sgr A* track), its simulated observation and copies
    of that observation restricted to 2, 3 and 4 stations; an all-zero movie."""
    from blackhole.uvfits import read_uvfits, write_uvfits
    from tests.blackhole.conftest import ring_movie

    root = tmp_path_factory.mktemp("bh")
    movie = ring_movie(64, npix=16)
    np.save(root / "ring.npy", movie)
    np.save(root / "zero.npy", np.zeros_like(movie))
    assert main(["blackhole", "simulate", "--movie", str(root / "ring.npy"), "--out", str(root / "full.uvfits")]) == 0
    obs = read_uvfits(root / "full.uvfits")
    d = obs.data
    files = {"root": root, "ring": root / "ring.npy", "zero": root / "zero.npy", "full": root / "full.uvfits"}
    for k, keep in ((2, {"ALMA", "APEX"}), (3, {"ALMA", "APEX", "LMT"}), (4, {"ALMA", "APEX", "LMT", "SMT"})):
        rows = np.array([a in keep and b in keep for a, b in zip(d["t1"], d["t2"], strict=True)])
        o = obs.copy()
        o.data = d[rows]
        write_uvfits(o, root / f"s{k}.uvfits")
        files[f"s{k}"] = root / f"s{k}.uvfits"
    a_file = root / "a_file"
    a_file.write_text("not a folder")
    files["a_file"] = a_file
    return files


# ---------------------------------------------------------------- the matrix

# (id, domain fixture, argv builder (files, out) -> argv, expected exit code, text the error line must contain)
MRI_RECON = ["mri", "reconstruct", "--input"]
CASES = [
    *[(f"mri-{bad}-{m}", "mri", lambda f, o, bad=bad, m=m: [*MRI_RECON, str(f[bad]), "--method", m, "--out", str(o)],
       2, "non-finite") for bad in ("nan", "inf") for m in ("zf", "sense", "tv")],
    *[(f"mri-1e30-{m}", "mri", lambda f, o, m=m: [*MRI_RECON, str(f["big"]), "--method", m, "--out", str(o)],
       2, "k-space norm") for m in ("zf", "sense", "tv")],
    ("mri-zero-kspace", "mri", lambda f, o: [*MRI_RECON, str(f["zero"]), "--method", "sense", "--out", str(o)],
     2, "all zeros"),
    *[(f"mri-option{opt}{val}", "mri",
       lambda f, o, opt=opt, val=val: [*MRI_RECON, str(f["good"]), "--method", "sense", "--out", str(o), opt, val],
       2, opt) for opt, val in (("--lam", "-1"), ("--lam", "nan"), ("--lam", "inf"), ("--iters", "0"),
                                 ("--calib", "0"), ("--lam-l", "-1"), ("--dc-iters", "0"), ("--acc", "0"),
                                 ("--samples", "0"), ("--temperature", "0"))],
    ("mri-missing-input", "mri", lambda f, o: [*MRI_RECON, str(o.parent / "nope.mat"), "--out", str(o)],
     2, "no such file"),
    ("mri-out-is-a-file", "mri", lambda f, o: [*MRI_RECON, str(f["good"]), "--method", "zf", "--out",
                                              str(f["a_file"])], 2, "existing file"),
    ("mri-out-under-a-file", "mri", lambda f, o: [*MRI_RECON, str(f["good"]), "--method", "zf", "--out",
                                                 str(f["a_file"] / "sub")], 2, "is a file"),
    ("mri-evaluate-nan", "mri", lambda f, o: ["mri", "evaluate", "--pred", str(f["nan_submission"]), "--gt",
                                             str(f["root"]), "--json"], 2, "non-finite"),
    *[(f"mri-synthetic{opt}{val}", "mri",
       lambda f, o, opt=opt, val=val: ["mri", "make-synthetic", "--out", str(o), "--patients", "1", "--ny", "32",
                                       "--nx", "32", "--coils", "2", "--frames", "3", "--slices", "1", opt, val],
       2, opt) for opt, val in (("--noise", "nan"), ("--noise", "-1"), ("--patients", "0"), ("--ny", "8"),
                                 ("--frames", "0"), ("--coils", "0"))],
    ("mri-export-training-0", "mri", lambda f, o: ["mri", "export-training", "--synthetic", "0", "--out", str(o)],
     2, "--synthetic"),
    ("bh-chisq-2-stations", "bh", lambda f, o: ["blackhole", "chisq", "--movie", str(f["ring"]), "--obs",
                                                str(f["s2"]), "--fov-uas", "128"], 2, "3 or more stations"),
    ("bh-chisq-zero-movie", "bh", lambda f, o: ["blackhole", "chisq", "--movie", str(f["zero"]), "--obs",
                                                str(f["full"]), "--fov-uas", "128"], 2, "total flux <= 0"),
    *[(f"bh-chisq-fov{v}", "bh", lambda f, o, v=v: ["blackhole", "chisq", "--movie", str(f["ring"]), "--obs",
                                                    str(f["full"]), "--fov-uas", v], 2, "--fov-uas")
      for v in ("0", "-128", "nan")],
    *[(f"bh-rml-{k}-stations", "bh", lambda f, o, k=k: ["blackhole", "rml", "--obs", str(f[k]), "--out",
                                                        str(o.parent / "m.npy"), "--npix", "8", "--maxit", "2"],
       2, why) for k, why in (("s2", "3 or more stations"), ("s3", "lack one of them"))],
    ("bh-rml-bad-frames", "bh", lambda f, o: ["blackhole", "rml", "--obs", str(f["s4"]), "--out",
                                              str(o.parent / "m.npy"), "--frames", "0,99"], 2, "outside"),
    *[(f"bh-reconstruct-fov{v}", "bh", lambda f, o, v=v: ["blackhole", "reconstruct", "--obs", str(f["full"]),
                                                          "--out", str(o), "--quick", "--fov-uas", v],
       2, "--fov-uas") for v in ("0", "-128")],
    *[(f"bh-reconstruct-{k}-stations", "bh", lambda f, o, k=k: ["blackhole", "reconstruct", "--obs", str(f[k]),
                                                                "--out", str(o), "--quick"], 2, why)
      for k, why in (("s2", "3 or more stations"), ("s3", "logcamp chi-square not computable"))],
    ("bh-reconstruct-out-is-a-file", "bh", lambda f, o: ["blackhole", "reconstruct", "--obs", str(f["full"]),
                                                         "--out", str(f["a_file"]), "--quick"], 2, "existing file"),
    ("bh-make-movies-1tb", "bh", lambda f, o: ["blackhole", "make-movies", "--n", "1000000", "--out", str(o)],
     2, "free"),
    *[(f"bh-make-movies{opt}{val}", "bh",
       lambda f, o, opt=opt, val=val: ["blackhole", "make-movies", "--n", "1", "--frames", "2", "--npix", "8",
                                       "--out", str(o), opt, val], 2, opt)
      for opt, val in (("--n", "0"), ("--npix", "2"), ("--fov-uas", "nan"), ("--frame-dt", "0"),
                       ("--texture", "-1"))],
    ("bh-rml-out-folder-missing", "bh", lambda f, o: ["blackhole", "rml", "--obs", str(f["s4"]), "--out",
                                                      str(o / "m.npy")], 2, "does not exist"),
    ("bh-simulate-out-folder-missing", "bh", lambda f, o: ["blackhole", "simulate", "--movie", str(f["ring"]),
                                                           "--out", str(o / "x.uvfits")], 2, "does not exist"),
    ("bh-simulate-fov0", "bh", lambda f, o: ["blackhole", "simulate", "--movie", str(f["ring"]), "--out",
                                             str(o.parent / "x.uvfits"), "--fov-uas", "0"], 2, "--fov-uas"),
    *[(f"demo-{d}{opt}{val}", None,
       lambda f, o, d=d, opt=opt, val=val: ["demo", d, "--out", str(o), "--quick", opt, val],
       2, f"{opt} must be {want}, got {val}")
      for d in ("mri", "blackhole")
      for opt, val, want in (("--samples", "0", ">= 1"), ("--modes", "0", ">= 1"), ("--seed", "-1", ">= 0"),
                             ("--case", "-1", ">= 0"), ("--temperature", "0", "a finite number > 0"),
                             ("--temperature", "nan", "a finite number > 0"),
                             ("--radius-floor", "-1", "a finite number >= 0"))],
    ("train-missing-config", None, lambda f, o: ["train", "image", "--config", str(o.parent / "no.yaml"), "--out",
                                                 str(o)], 2, "not found"),
    ("train-steps-0", None, lambda f, o: ["train", "image", "--config", "configs/prior_bh_tiny.yaml", "--out",
                                          str(o), "--steps", "0"], 2, "--steps"),
    ("train-missing-data", None, lambda f, o: ["train", "image", "--config", "configs/prior_bh_pixel_tiny.yaml",
                                               "--videos", str(o.parent / "none.npy"), "--out", str(o)],
     2, "none.npy"),
    ("sample-prior-missing-checkpoint", None, lambda f, o: ["sample-prior", "--checkpoint", str(o.parent / "x.st"),
                                                            "--num", "1", "--frames", "2", "--out", str(o)],
     2, "x.st"),
    ("sample-prior-sigma", None, lambda f, o: ["sample-prior", "--checkpoint", str(o.parent / "x.st"), "--num", "1",
                                               "--frames", "2", "--out", str(o), "--sigma-min", "0"],
     2, "--sigma-min"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_writes_nothing(case, request, tmp_path, capsys, monkeypatch):
    name, domain, argv, code, text = case
    files = request.getfixturevalue(domain) if domain else {}
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # configs/ resolve from the repository root
    out = tmp_path / "out"
    before = sorted(p.name for p in tmp_path.iterdir())
    rc = main(argv(files, out))
    err = capsys.readouterr().err
    assert rc == code, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    assert text in lines[0], lines[0]
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temporary or partial file beside it
    if "a_file" in files:
        assert files["a_file"].read_text() == "not a folder"


# ---------------------------------------------------------------- undefined chi-squares, JSON without NaN


def test_three_stations_chisq_reports_logcamp_as_not_computable(bh, capsys):
    assert main(["blackhole", "chisq", "--movie", str(bh["ring"]), "--obs", str(bh["s3"]), "--fov-uas", "128"]) == 0
    cap = capsys.readouterr()
    report = json.loads(cap.out, parse_constant=lambda c: pytest.fail(f"JSON contains {c}"))
    assert report["logcamp"] is None and report["logcamp_tilde"] is None and report["n_logcamp"] == 0
    assert np.isfinite(report["cphase"]) and report["n_cphase"] > 0
    assert "fewer than 4 stations" in report["not_computable"]["logcamp"]
    notes = [line for line in cap.err.splitlines() if line.strip()]
    assert len(notes) == 1 and "logcamp chi-square not computable" in notes[0]


def test_four_stations_chisq_has_both(bh, capsys):
    assert main(["blackhole", "chisq", "--movie", str(bh["ring"]), "--obs", str(bh["s4"]), "--fov-uas", "128"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["not_computable"] == {} and report["logcamp"] > 0 and report["cphase"] > 0


def test_empty_closure_sets_do_not_crash_the_likelihood(bh):
    """2-3 stations: the data loss is finite (an empty set adds nothing), its chi-square is NaN (undefined)."""
    import torch

    from blackhole.likelihood import ClosureLikelihood
    from blackhole.measurements import closure_data, vis_table_from_obs
    from blackhole.uvfits import read_uvfits

    data = closure_data(vis_table_from_obs(read_uvfits(bh["s3"])))
    assert len(data.logcamp) == 0 and len(data.cphase) > 0
    lik = ClosureLikelihood(data, 16, 16, 1e-11)
    x = torch.as_tensor(np.load(bh["ring"]))[None, :, None]
    assert torch.isfinite(lik.data_loss(x)).all()
    chi = lik.chisq(x)
    assert torch.isnan(chi["logcamp"]).all() and torch.isfinite(chi["cphase"]).all()


# ---------------------------------------------------------------- make-movies: killed mid-write


def test_make_movies_sigterm_leaves_no_temporary_file(tmp_path, monkeypatch, capsys):
    """SIGTERM while videos.npy is being written: exit 143, no hidden temporary file, no videos.npy."""
    import blackhole.synthetic as synthetic

    real = synthetic.generate_movies

    def killed(*args, **kwargs):
        result = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # arrives between two chunks, the memory-mapped file half written
        return result

    monkeypatch.setattr(synthetic, "generate_movies", killed)
    out = tmp_path / "movies"
    with pytest.raises(SystemExit) as exc:
        main(["blackhole", "make-movies", "--n", "2", "--frames", "2", "--npix", "8", "--out", str(out)])
    assert exc.value.code == 143
    assert list(out.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is removed again


def test_make_movies_size_estimate_against_free_space(tmp_path, monkeypatch, capsys):
    import blackhole.cli as cli

    assert cli.movies_bytes(1_000_000, 64, 64) == 4 * 1_000_000 * 64 * 64 * 64 + 128  # ~1 TB
    monkeypatch.setattr(cli, "free_bytes", lambda path: 100)
    assert main(["blackhole", "make-movies", "--n", "1", "--frames", "2", "--npix", "8",
                 "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "is free there" in err and "lower --n" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "m").exists()
    monkeypatch.setattr(cli, "free_bytes", lambda path: 10**9)
    assert main(["blackhole", "make-movies", "--n", "1", "--frames", "2", "--npix", "8",
                 "--out", str(tmp_path / "m")]) == 0
    assert np.load(tmp_path / "m" / "videos.npy").shape == (1, 2, 1, 8, 8)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["videos.json", "videos.npy"]


# ---------------------------------------------------------------- the top-level handler


def _parser_with(func):
    import argparse

    parser = argparse.ArgumentParser(prog="stepvip")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("boom").set_defaults(func=func)
    return parser


def test_user_errors_are_one_line_and_bugs_keep_their_traceback(monkeypatch, capsys):
    import common.cli as cli
    from common.checkpoints import CheckpointError
    from common.sampling.errors import SamplingError

    def sampling(args):
        raise SamplingError("DAPS: NaN in the likelihood at annealing step 3\n(prior sample diverged)", anneal_step=3,
                            mcmc_step=None, source="likelihood")

    monkeypatch.setattr(cli, "build_parser", lambda: _parser_with(sampling))
    assert cli.main(["boom"]) == 2
    err = capsys.readouterr().err
    assert err == "stepvip boom: error: DAPS: NaN in the likelihood at annealing step 3 (prior sample diverged)\n"

    def missing(args):
        raise FileNotFoundError(2, "No such file or directory", "/data/obs.uvfits")

    monkeypatch.setattr(cli, "build_parser", lambda: _parser_with(missing))
    assert cli.main(["boom"]) == 2
    assert "/data/obs.uvfits" in capsys.readouterr().err

    def checkpoint(args):
        raise CheckpointError("ckpt.safetensors: not a stepvip checkpoint")

    monkeypatch.setattr(cli, "build_parser", lambda: _parser_with(checkpoint))
    assert cli.main(["boom"]) == 2

    def bug(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "build_parser", lambda: _parser_with(bug))
    with pytest.raises(ZeroDivisionError):
        cli.main(["boom"])
    monkeypatch.setenv("STEPVIP_TRACEBACK", "1")
    monkeypatch.setattr(cli, "build_parser", lambda: _parser_with(checkpoint))
    with pytest.raises(CheckpointError):
        cli.main(["boom"])
