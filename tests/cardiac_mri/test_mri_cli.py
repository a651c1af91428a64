"""End to end: make-synthetic -> reconstruct (AccFactor and FullSample input) -> evaluate; export-training."""

import argparse
import json

import h5py
import numpy as np
import pytest

from cardiac_mri.cli import register


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
    with h5py.File(written / "cine_lax.mat", "r") as f:
        assert f["img4ranking"].dtype == np.float32 and f["img4ranking"].shape == (3, 2, 24, 21)
    with h5py.File(written / "cine_lax_recon.mat", "r") as f:
        assert f["recon"].shape == (6, 3, 48, 64)
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


def test_export_training_synthetic(tmp_path):
    assert main(["mri", "export-training", "--synthetic", "2", "--size", "16", "--frames", "3",
                 "--out", str(tmp_path)]) == 0
    arr = np.load(tmp_path / "videos.npy")
    assert arr.shape == (2, 3, 2, 16, 16) and arr.dtype == np.float32
