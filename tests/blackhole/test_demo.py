"""``stepvip demo blackhole`` and ``stepvip blackhole reconstruct`` end to end at --quick, with throwaway priors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from astropy.io import fits
from skimage.metrics import peak_signal_noise_ratio

from blackhole.demo import run
from common.cli import main, run_command
from common.recon.cli import add_demo_parser
from tests.demo_priors import make_untrained_prior

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow]
SMALL = {"vae_overrides": {"channels": (8, 8, 16)},
         "unet_overrides": {"channels": (16, 16, 16), "attn_levels": (), "temporal_attn_levels": ()}}


def demo_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    add_demo_parser(parser.add_subparsers(dest="d", required=True), "blackhole", run, "test")
    args = parser.parse_args(["blackhole", *argv])
    return run_command(args.func, args, "stepvip demo blackhole")


@pytest.fixture(scope="module")
def prior(tmp_path_factory) -> Path:
    return make_untrained_prior("prior_bh_tiny.yaml", tmp_path_factory.mktemp("bh_prior"), **SMALL)


@pytest.fixture(scope="module")
def demo_out(prior, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bh_demo") / "out"
    assert demo_main(["--out", str(out), "--prior", str(prior), "--quick", "--no-progress"]) == 0
    return out


def test_demo_outputs_open_and_metrics_match_truth(demo_out: Path):
    metrics = json.loads((demo_out / "metrics.json").read_text())
    assert list(metrics) == ["STeP", "IDM+BCS", "IDM"]
    for row in metrics.values():
        assert set(row) == {"psnr", "ssim", "dpsnr", "dssim", "msnr", "chi2_cp", "chi2_logca", "chi2_cp_of_mean",
                            "chi2_logca_of_mean", "psnr_of_mean", "seconds_per_sample"}
        assert row["chi2_cp"] >= 1 and row["chi2_logca"] >= 1  # chi~2 of Eq. 4
        assert row["chi2_cp_of_mean"] >= 1 and row["chi2_logca_of_mean"] >= 1  # the FITS movie's own fit
    with xr.open_dataset(demo_out / "samples.nc", engine="h5netcdf") as ds:
        assert ds["STeP"].dims == ("sample", "frame", "y", "x") and ds.sizes["frame"] == 64
        assert ds["frame"].attrs["units"] == "hours" and ds["x"].attrs["units"] == "uas"
        assert 12.0 < float(ds["frame"][0]) < float(ds["frame"][-1]) < 15.0
        assert ds["y"].values[0] > 0 > ds["y"].values[-1]  # row 0 north
        assert ds.attrs["setting"] == "quick" and "stepvip" in json.loads(ds.attrs["versions"])
        truth = np.load(demo_out / "truth.npy")
        np.testing.assert_allclose(ds["truth"].values, truth, rtol=1e-6)
        sample = ds["IDM"].values[1].astype(np.float64)
        # flux-aligned outputs: every frame's total equals the measured ALMA-APEX flux, close to the truth's flux
        np.testing.assert_allclose(sample.sum((-2, -1)), ds["IDM_mean"].values.sum((-2, -1)), rtol=1e-4)
        for key in ("STeP_std", "STeP_lower", "STeP_upper", "STeP_chi2_cp", "STeP_mode", "STeP_mode_representative"):
            assert key in ds
        # one metric recomputed independently: PSNR per frame with scikit-image, movies divided by their maxima
        t01, s0 = truth / truth.max(), ds["IDM"].values[0] / ds["IDM"].values[0].max()
        s1 = sample / sample.max()
        ref = np.mean([np.mean([peak_signal_noise_ratio(t01[f], s[f], data_range=1.0) for f in range(64)])
                       for s in (s0, s1)])
        assert metrics["IDM"]["psnr"] == pytest.approx(ref, rel=1e-4)
    uq = json.loads((demo_out / "uq.json").read_text())
    assert sum(m["size"] for m in uq["STeP"]["modes"]) == uq["STeP"]["samples"] == 2
    with fits.open(demo_out / "fits" / "IDM_BCS" / "best_0063.fits") as hdul:  # the best-fitting sample
        assert hdul[0].data.shape == (64, 64)
    with fits.open(demo_out / "fits" / "IDM_BCS" / "mean_0000.fits") as hdul:
        assert hdul[0].header["BUNIT"] == "JY/PIXEL" and hdul[0].data.shape == (64, 64)
    science = json.loads((demo_out / "science.json").read_text())  # ring features shown against the truth's
    assert set(science["methods"]) == {"STeP", "IDM+BCS", "IDM"}
    assert np.isfinite(science["truth"]["diameter"]).all() and len(science["truth"]["diameter"]) == 64
    assert 40.0 < np.median(science["truth"]["diameter"]) < 65.0  # the synthetic movies' rings (~52 uas)
    for name in ("frames.png", "differences.png", "mean_std_STeP.png", "STeP.gif", "IDM_BCS.gif", "obs.uvfits",
                 "science.png", "science.nc"):
        assert (demo_out / name).stat().st_size > 0
    assert not [p for p in demo_out.rglob(".*")]  # no temporary files left


def test_image_prior_methods_run_end_to_end(demo_out: Path, prior: Path, tmp_path: Path):
    """SVI, VISION-XL and TCVR at --quick through ``stepvip blackhole reconstruct`` (closure data: their
    Gauss-Newton / gradient data steps): every method gives samples and chi~2 values."""
    out = tmp_path / "rec"
    rc = main(["blackhole", "reconstruct", "--obs", str(demo_out / "obs.uvfits"), "--out", str(out), "--prior",
               str(prior), "--quick", "--samples", "1", "--no-progress", "--methods", "SVI,VISION-XL,TCVR"])
    assert rc == 0
    with xr.open_dataset(out / "samples.nc", engine="h5netcdf") as ds:
        for m in ("SVI", "VISION_XL", "TCVR"):
            assert ds[m].shape == (1, 64, 64, 64) and (ds[m].values >= 0).all()
            assert np.isfinite(ds[f"{m}_chi2_cp"].values).all()
        settings = json.loads(ds.attrs["settings"])
        assert settings["SVI"]["steps"] == 3 and "daps_config" not in ds.attrs


def test_reconstruct_user_uvfits(demo_out: Path, prior: Path, tmp_path: Path):
    out = tmp_path / "rec"
    rc = main(["blackhole", "reconstruct", "--obs", str(demo_out / "obs.uvfits"), "--out", str(out), "--prior",
               str(prior), "--quick", "--samples", "1", "--no-progress"])
    assert rc == 0
    assert not (out / "metrics.json").exists()  # no truth, no truth metrics
    with xr.open_dataset(out / "samples.nc", engine="h5netcdf") as ds:
        assert ds["STeP"].shape == (1, 64, 64, 64) and "IDM" not in ds and "truth" not in ds
        assert ds["STeP_chi2_logca"].shape == (1,)


def test_bad_inputs_fail_clearly_without_outputs(prior: Path, tmp_path: Path, capsys):
    out = tmp_path / "out"
    rc = main(["blackhole", "reconstruct", "--obs", str(tmp_path / "missing.uvfits"), "--out", str(out),
               "--prior", str(prior), "--quick"])
    assert rc == 2 and "missing.uvfits: no such file" in capsys.readouterr().err
    bad = tmp_path / "bad_prior"
    bad.mkdir()
    for name in ("vae", "image", "video"):
        data = (prior / f"{name}.safetensors").read_bytes()
        (bad / f"{name}.safetensors").write_bytes(data if name != "vae" else data[:1000])
    assert demo_main(["--out", str(out), "--prior", str(bad), "--quick"]) == 2
    assert "vae.safetensors" in capsys.readouterr().err
    assert demo_main(["--out", str(out), "--prior", str(tmp_path / "nowhere"), "--quick"]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert not out.exists()


def test_presets():
    from blackhole.reconstruct import sampler_presets

    p = sampler_presets("paper")
    assert (p["paper"].annealing_steps, p["paper"].mcmc_steps, p["paper"].lr) == (25, 60, 1.2e-5)
    assert p["quick"].annealing_steps < p["default"].annealing_steps < p["paper"].annealing_steps
    assert p["default"].grad_clamp == pytest.approx(p["paper"].grad_clamp)
    assert p["paper"].data_step == "latent" and p["default"].data_step == "pixel"
    assert (p["default"].pixel_kernel, p["default"].temperature) == ("gauss-newton", 1.0)


def test_shipped_prior_demo(tmp_path: Path):
    try:
        from blackhole.priors import default_prior_paths

        default_prior_paths()
    except (ImportError, FileNotFoundError) as exc:
        pytest.skip(f"shipped black-hole prior not present: {exc}")
    out = tmp_path / "out"
    assert demo_main(["--out", str(out), "--quick", "--no-progress"]) == 0
    assert set(json.loads((out / "metrics.json").read_text())) == {"STeP", "IDM+BCS", "IDM"}
