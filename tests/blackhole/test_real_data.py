"""Real EHT data in: the shipped 2017 Sgr A* file, other pipelines' uvfits layouts (synthesised from it), frame
binning, systematic errors, FITS frame times read back by ehtim, and the real reconstruction path end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from blackhole.data import example_uvfits
from blackhole.measurements import add_systematic_error, closure_data, flux_estimate, vis_table_from_obs
from blackhole.uvfits import UvfitsError, load_closure_data, read_uvfits

sys.path.insert(0, str(Path(__file__).parent))
from uvfits_variants import VARIANTS, make_variant  # noqa: E402

SINGLE_HAND = ("stokes_i", "ll_only")  # one correlation: Stokes I from one hand, sigma sqrt(2) x the RR/LL average's


@pytest.fixture(scope="module")
def real_obs():
    return read_uvfits(example_uvfits())


def _sorted(data: np.ndarray) -> np.ndarray:
    return data[np.lexsort((data["t2"], data["t1"], np.round(data["time"] * 3600.0, 1)))]


def test_shipped_file_is_the_release_file(real_obs):
    path = example_uvfits()
    assert path.stat().st_size == 469440
    assert "ODC-PDDL" in (path.parent / "LICENSE.txt").read_text()
    assert real_obs.mjd == 57850 and len(real_obs.data) == 5244
    assert len(np.unique(real_obs.data["time"])) == 359


@pytest.mark.parametrize("kind", VARIANTS)
def test_other_pipeline_layouts_load_to_the_same_data(kind, real_obs, tmp_path):
    ref = _sorted(np.asarray(real_obs.data))
    got = _sorted(np.asarray(read_uvfits(make_variant(example_uvfits(), kind, tmp_path / f"{kind}.uvfits")).data))
    assert len(got) == len(ref)
    assert np.abs(got["time"] - ref["time"]).max() * 3600.0 < 1e-3
    assert np.allclose(got["u"], ref["u"], rtol=1e-6) and np.allclose(got["v"], ref["v"], rtol=1e-6)
    assert np.allclose(got["vis"], ref["vis"], rtol=1e-5, atol=1e-7)
    ratio = np.sqrt(2.0) if kind in SINGLE_HAND else 1.0
    assert np.allclose(got["sigma"], ratio * ref["sigma"], rtol=1e-5)


def test_plain_ehtim_cannot_read_a_single_date_parameter_file(eh, tmp_path):
    """The layout normalisation is needed: ehtim alone fails on one DATE parameter with a PZERO offset."""
    import contextlib
    import io

    path = make_variant(example_uvfits(), "date_pzero", tmp_path / "d.uvfits")
    with pytest.raises(KeyError), contextlib.redirect_stdout(io.StringIO()):
        eh.obsdata.load_uvfits(str(path))


def test_malformed_files_give_one_line_errors(tmp_path):
    img = tmp_path / "image.fits"
    fits.PrimaryHDU(np.zeros((4, 4))).writeto(img)
    with pytest.raises(UvfitsError, match=r"image\.fits: primary HDU is a PrimaryHDU, not random groups"):
        read_uvfits(img)
    src = make_variant(example_uvfits(), "rr_ll", tmp_path / "rr_ll.uvfits")
    linear = tmp_path / "linear.uvfits"
    with fits.open(src) as hdul:
        hdul[0].header["CRVAL3"] = -5.0
        hdul.writeto(linear)
    with pytest.raises(UvfitsError, match=r"linear\.uvfits: linear polarisation feeds"):
        read_uvfits(linear)
    no_an = tmp_path / "no_an.uvfits"
    with fits.open(src) as hdul:
        fits.HDUList([hdul[0], *[h for h in hdul[1:] if h.name != "AIPS AN"]]).writeto(no_an)
    with pytest.raises(UvfitsError, match=r"no_an\.uvfits: no 'AIPS AN' antenna table"):
        read_uvfits(no_an)
    junk = tmp_path / "junk.uvfits"
    junk.write_bytes(b"not a fits file")
    with pytest.raises(UvfitsError, match="junk.uvfits"):
        read_uvfits(junk)


def test_binning_into_n_frames_over_the_span(real_obs):
    tab = vis_table_from_obs(real_obs, n_frames=64)
    t = np.asarray(real_obs.data["time"], dtype=np.float64)
    assert tab.n_frames == 64 and tab.frame.min() == 0 and tab.frame.max() == 63
    assert tab.frame_edges[0] == pytest.approx(t.min()) and tab.frame_edges[-1] == pytest.approx(t.max())
    inside = (tab.time >= tab.frame_edges[tab.frame] - 1e-9) & (tab.time <= tab.frame_edges[tab.frame + 1] + 1e-9)
    assert inside.all()
    assert np.allclose(np.diff(tab.frame_edges) * 3600.0, (t.max() - t.min()) * 3600.0 / 64)
    assert tab.meta.mjd == 57850 and tab.meta.source == "SGRA"
    with pytest.raises(ValueError, match="either"):
        vis_table_from_obs(real_obs, frame_duration_s=94.0, n_frames=64)


def test_flux_from_two_letter_station_codes(real_obs):
    """The release names stations AA, AP, ...: the ALMA-APEX flux estimate must find them."""
    tab = vis_table_from_obs(real_obs, n_frames=64)
    flux, sigma = flux_estimate(tab)
    rows = ((tab.t1 == "AA") & (tab.t2 == "AP")) | ((tab.t1 == "AP") & (tab.t2 == "AA"))
    frames = np.unique(tab.frame[rows])
    assert len(frames) > 30 and np.isfinite(flux[frames]).all()
    f0 = frames[0]
    assert flux[f0] == pytest.approx(np.abs(tab.vis[rows & (tab.frame == f0)]).mean())
    assert 1.0 < np.nanmedian(flux) < 4.0  # Sgr A* at 230 GHz: ~2-3 Jy


def test_systematic_error_is_added_in_quadrature(real_obs):
    tab = vis_table_from_obs(real_obs, n_frames=64)
    sys_tab = add_systematic_error(tab, 0.02)
    assert np.allclose(sys_tab.sigma**2, tab.sigma**2 + (0.02 * np.abs(tab.vis)) ** 2)
    assert add_systematic_error(tab, 0.0) is tab
    with pytest.raises(ValueError, match=">= 0"):
        add_systematic_error(tab, -0.1)
    a, b = closure_data(tab), closure_data(sys_tab)
    # closure phase sigma = sqrt(sum sigma_i^2/|V_i|^2): each leg gains 0.02^2
    legs = tab.sigma[a.closures.cp_rows] ** 2 / np.abs(tab.vis[a.closures.cp_rows]) ** 2
    assert np.allclose(b.cphase_sigma, np.sqrt((legs + 0.02**2).sum(axis=1)))
    assert (b.logcamp_sigma > a.logcamp_sigma).all()


def test_load_closure_data_reports_binning(tmp_path):
    data, report = load_closure_data(example_uvfits(), n_frames=64, systematic_error=0.01)
    assert report.n_frames == 64 and "64 frames of 97.2 s" in report.binning
    assert report.systematic_error == 0.01
    assert len(report.frames_without_closures) < 64 and data.n_frames == 64


def test_fits_frames_carry_times_that_ehtim_reads(eh, tmp_path):
    from blackhole.fits_io import write_fits_movie

    rng = np.random.default_rng(0)
    movie = rng.random((3, 16, 16))
    times = np.array([12.5, 12.527, 13.9])
    write_fits_movie(movie, tmp_path, 1e-11, times, prefix="mean", mjd=57849)
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        mov = eh.movie.load_fits(str(tmp_path / "mean_"), 3)
    assert np.allclose(mov.times, times, atol=1e-6) and mov.mjd == 57849
    assert np.allclose(np.asarray(mov.frames).reshape(3, 16, 16), movie.reshape(3, 16, 16), atol=1e-6)
    hdr = fits.getheader(tmp_path / "mean_0001.fits")
    assert hdr["DATE-OBS"].startswith("2017-04-06T12:31:37")  # 12.527 h = 12:31:37.2
    assert hdr["MJD-OBS"] == pytest.approx(57849 + 12.527 / 24) and hdr["TIMESYS"] == "UTC"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "common.cli", "blackhole", "reconstruct", *args],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_real_data_reconstruct_quick(eh, tmp_path):
    """The astronomer's path on the shipped file at the quick setting: default binning, outputs with times."""
    out = tmp_path / "rec"
    res = _run("--obs", str(example_uvfits()), "--out", str(out), "--quick", "--samples", "1", "--no-progress",
               "--fits-samples")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "64 frames of 97.2 s" in res.stderr
    summary = json.loads((out / "science.json").read_text())
    d = np.array(summary["methods"]["STeP"]["diameter"]["median"], dtype=float)
    assert np.isfinite(d).sum() > 32 and (d[np.isfinite(d)] >= 0).all()
    flux = np.array(summary["methods"]["STeP"]["flux"]["median"], dtype=float)
    assert np.isfinite(flux).all() and 0.5 < np.median(flux) < 5.0  # Jy: every frame on the measured light curve
    import contextlib
    import io

    import xarray as xr

    with contextlib.redirect_stdout(io.StringIO()):
        mov = eh.movie.load_fits(str(out / "fits" / "STeP" / "mean_"), 64)
    times = np.asarray(summary["frame_times_hr"])
    assert np.allclose(mov.times, times, atol=1e-6) and mov.mjd == 57850
    with contextlib.redirect_stdout(io.StringIO()):
        one = eh.movie.load_fits(str(out / "fits" / "STeP" / "sample00_"), 64)
    assert np.allclose(one.times, times, atol=1e-6)
    with xr.open_dataset(out / "science.nc") as ds:
        assert ds["STeP_diameter"].shape == (1, 64) and ds["frame"].attrs["units"] == "hours"
    assert (out / "science.png").is_file()


@pytest.mark.slow
def test_reconstruct_option_errors(tmp_path):
    obs = str(example_uvfits())
    res = _run("--obs", obs, "--out", str(tmp_path / "a"), "--frames", "0")
    assert res.returncode == 2 and "--frames must be >= 1" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = _run("--obs", obs, "--out", str(tmp_path / "b"), "--systematic-error", "-0.1")
    assert res.returncode == 2 and "--systematic-error" in res.stderr
    res = _run("--obs", obs, "--out", str(tmp_path / "c"), "--per-timestamp")
    assert res.returncode == 2 and "359 frames" in res.stderr and obs in res.stderr
    assert not (tmp_path / "c").exists()


@pytest.mark.slow
@pytest.mark.parametrize("fraction", [0.0, 0.02])
def test_real_data_chisq_equals_ehtim(eh, real_obs, fraction):
    """Oracle on the real file: our closure chi-squares of a movie binned into 64 frames equal ehtim's (nearest
    frame at each timestamp), and our systematic error equals ehtim's ``add_fractional_noise``."""
    import torch

    from blackhole.ehtim_compat import TTYPE, ehtim_fixes
    from blackhole.likelihood import ClosureLikelihood, evaluate_chisq
    from blackhole.synthetic import RADPERUAS
    from tests.blackhole.conftest import ring_movie

    data, _ = load_closure_data(example_uvfits(), n_frames=64, systematic_error=fraction)
    npix = 24
    psize = 128.0 * RADPERUAS / npix
    movie = ring_movie(64, npix=npix)
    ours = evaluate_chisq(ClosureLikelihood(data, npix, npix, psize), torch.as_tensor(movie)[None, :, None])
    obs = real_obs.add_fractional_noise(fraction) if fraction > 0 else real_obs
    mov = eh.movie.Movie(movie, times=data.table.frame_times, psize=psize, ra=obs.ra, dec=obs.dec, rf=obs.rf,
                         mjd=obs.mjd, interp="nearest", bounds_error=False)
    with ehtim_fixes():
        ref = {d: obs.chisq(mov, dtype=d, ttype=TTYPE) for d in ("cphase", "logcamp")}
    assert ours["cphase"][0] == pytest.approx(ref["cphase"], rel=1e-9)
    assert ours["logcamp"][0] == pytest.approx(ref["logcamp"], rel=1e-9)
