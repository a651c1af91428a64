"""End to end: make-synthetic -> reconstruct (AccFactor and FullSample input) -> evaluate; export-training."""

import argparse
import json

import h5py
import numpy as np
import pytest
import scipy.io

from cardiac_mri.cli import register
from cardiac_mri.evaluation import read_mat_array, read_ranking


def main(argv):
    """``stepvip`` with only this plugin registered (the other groups live in other packages)."""
    parser = argparse.ArgumentParser(prog="stepvip")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmrx")
    rc = main(["mri", "make-synthetic", "--out", str(root), "--patients", "1", "--ny", "48", "--nx", "64",
               "--coils", "4", "--frames", "6", "--slices", "3", "--split", "ValidationSet"])
    assert rc == 0
    return root


def test_layout_written(synthetic_root):
    base = synthetic_root / "MultiCoil/Cine/ValidationSet"
    with h5py.File(base / "AccFactor08/P001/cine_sax.mat", "r") as f:
        assert f["kspace_sub08"].shape == (6, 3, 4, 48, 64)
    with h5py.File(base / "AccFactor08/P001/cine_sax_mask.mat", "r") as f:
        assert f["mask08"].shape == (48, 64)
    with h5py.File(synthetic_root / "SingleCoil/Cine/ValidationSet/FullSample/P001/cine_lax.mat", "r") as f:
        assert f["kspace_single_full"].shape == (6, 3, 48, 64)


def test_reconstruct_and_evaluate(synthetic_root, tmp_path, capsys):
    out = tmp_path / "sub"
    acc_file = synthetic_root / "MultiCoil/Cine/ValidationSet/AccFactor08/P001/cine_sax.mat"
    assert main(["mri", "reconstruct", "--input", str(acc_file), "--method", "zf", "--out", str(tmp_path / "zf")]) == 0
    assert main(["mri", "reconstruct", "--input", str(acc_file), "--method", "sense", "--out", str(out)]) == 0
    full = synthetic_root / "SingleCoil/Cine/ValidationSet/FullSample/P001/cine_lax.mat"
    assert main(["mri", "reconstruct", "--input", str(full), "--acc", "4", "--method", "sense", "--out", str(out),
                 "--save-full"]) == 0
    written = out / "SingleCoil/Cine/ValidationSet/AccFactor04/P001"
    sub = scipy.io.loadmat(written / "cine_lax.mat")["img4ranking"]  # MATLAB v5 by default, MATLAB order
    assert sub.dtype == np.float32 and sub.shape == (21, 24, 2, 3)
    recon = read_mat_array(written / "cine_lax_recon.mat", "recon")
    assert recon.shape == (6, 3, 48, 64) and np.iscomplexobj(recon)
    capsys.readouterr()
    assert main(["mri", "evaluate", "--pred", str(out), "--gt", str(synthetic_root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    cells = {(r["coil_type"], r["acceleration"], r["view"]): r for r in report["summary"]}
    assert set(cells) == {("MultiCoil", "AccFactor08", "sax"), ("SingleCoil", "AccFactor04", "lax")}
    assert all(r["psnr"] > 25 and 0 < r["ssim"] <= 1 for r in cells.values())
    assert main(["mri", "evaluate", "--pred", str(tmp_path / "zf"), "--gt", str(synthetic_root), "--json"]) == 0
    zf = json.loads(capsys.readouterr().out)["summary"][0]
    assert cells[("MultiCoil", "AccFactor08", "sax")]["psnr"] > zf["psnr"]
    assert main(["mri", "evaluate", "--pred", str(out), "--gt", str(synthetic_root)]) == 0
    assert "PSNR" in capsys.readouterr().out


def test_reconstruct_usage_errors(synthetic_root, tmp_path, capsys):
    full = synthetic_root / "MultiCoil/Cine/ValidationSet/FullSample/P001/cine_sax.mat"
    assert main(["mri", "reconstruct", "--input", str(full), "--method", "zf", "--out", str(tmp_path)]) == 2
    assert "--acc" in capsys.readouterr().err
    acc_file = synthetic_root / "MultiCoil/Cine/ValidationSet/AccFactor08/P001/cine_sax.mat"
    assert main(["mri", "reconstruct", "--input", str(acc_file), "--acc", "4", "--out", str(tmp_path)]) == 2
    assert "contradicts" in capsys.readouterr().err


@pytest.mark.parametrize("slices", [1, 2])
def test_one_and_two_slice_files(tmp_path, slices, capsys):
    """run4Ranking keeps every slice when there are fewer than 3; every classical method and evaluate accept them,
    in both file formats (v7.3 with a warning that the official scorer drops it)."""
    root = tmp_path / "cmrx"
    assert main(["mri", "make-synthetic", "--out", str(root), "--patients", "1", "--ny", "32", "--nx", "48",
                 "--coils", "4", "--frames", "4", "--slices", str(slices), "--split", "ValidationSet"]) == 0
    src = root / "MultiCoil/Cine/ValidationSet/AccFactor04/P001/cine_sax.mat"
    for method in ("zf", "sense", "tv", "lps"):
        out = tmp_path / method
        assert main(["mri", "reconstruct", "--input", str(src), "--method", method, "--out", str(out),
                     "--iters", "3", "--calib", "16"]) == 0
        sub = read_ranking(out / "MultiCoil/Cine/ValidationSet/AccFactor04/P001/cine_sax.mat")
        assert sub.shape == (3, slices, 16, 16)
        capsys.readouterr()
        assert main(["mri", "evaluate", "--pred", str(out), "--gt", str(root), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["summary"][0]["psnr"] > 10
    out73 = tmp_path / "v73"
    assert main(["mri", "reconstruct", "--input", str(src), "--method", "zf", "--out", str(out73),
                 "--format", "v7.3"]) == 0
    assert "official CMRxRecon Python scorer" in capsys.readouterr().err
    assert main(["mri", "evaluate", "--pred", str(out73), "--gt", str(root)]) == 0
    assert "silently drops them" in capsys.readouterr().err


def test_inputs_that_cannot_be_submitted_fail_before_work(tmp_path, capsys):
    root = tmp_path / "cmrx"
    assert main(["mri", "make-synthetic", "--out", str(root), "--patients", "1", "--ny", "32", "--nx", "48",
                 "--coils", "2", "--frames", "2", "--slices", "1"]) == 0
    src = root / "MultiCoil/Cine/TrainingSet/AccFactor04/P001/cine_sax.mat"
    for method in ("sense", "step"):
        assert main(["mri", "reconstruct", "--input", str(src), "--method", method, "--out",
                     str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(src) in err and ">= 3 frames" in err
    assert not (tmp_path / "o").exists()


def test_evaluate_reports_a_wrong_shape_on_one_line(synthetic_root, tmp_path, capsys):
    from cardiac_mri.evaluation import write_submission

    rel = "MultiCoil/Cine/ValidationSet/AccFactor08/P001/cine_sax.mat"
    write_submission(tmp_path / rel, np.ones((12, 3, 64, 64), dtype=np.float32))  # the model-grid file
    assert main(["mri", "evaluate", "--pred", str(tmp_path), "--gt", str(synthetic_root)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "(12, 3, 64, 64)" in err and "(3, 2, 24, 21)" in err


def test_export_training_synthetic(tmp_path):
    assert main(["mri", "export-training", "--synthetic", "2", "--size", "16", "--frames", "3",
                 "--out", str(tmp_path)]) == 0
    arr = np.load(tmp_path / "videos.npy")
    assert arr.shape == (2, 3, 2, 16, 16) and arr.dtype == np.float32
