"""uvfits/FITS I/O, the ehtim adapter, frame splitting, seeded simulation and the ``blackhole`` CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from blackhole.cli import main
from blackhole.ehtim_compat import TTYPE, ehtim_fixes, tlist
from blackhole.fits_io import read_fits_frame, to_ehtim_movie, write_fits_frame
from blackhole.measurements import closure_data, vis_table_from_obs
from blackhole.simulate import Corruption, simulate_observation
from blackhole.uvfits import UvfitsError, load_closure_data, read_uvfits, write_uvfits

from .conftest import FOV_UAS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sim_files(tmp_path_factory, obs0, truth, psize):
    d = tmp_path_factory.mktemp("bh")
    obs = simulate_observation(truth, psize, obs0, seed=11)
    write_uvfits(obs, d / "obs.uvfits")
    np.save(d / "movie.npy", truth)
    return d, obs


def test_ehtim_adapter_fixes_tlist_only_inside(obs0):
    cls = type(obs0)
    original = cls.__dict__["tlist"]
    assert original(obs0).ndim == 2  # the ehtim 1.3.2 pitfall this adapter exists for
    groups = tlist(obs0, conj=True)
    assert groups.ndim == 1 and len(groups) == 64 and all(len(g) == 42 for g in groups)
    with ehtim_fixes():
        assert obs0.tlist().ndim == 1
        assert len(obs0.c_phases(count="min")) == 960
    assert cls.__dict__["tlist"] is original  # ehtim restored for the rest of the program


def test_uvfits_round_trip(sim_files, obs0):
    d, obs = sim_files
    back = read_uvfits(d / "obs.uvfits")
    a, b = np.asarray(obs.data), np.asarray(back.data)
    assert len(a) == len(b) == 1344
    key = lambda x: np.lexsort((x["t2"], x["t1"], np.round(x["time"], 5)))  # noqa: E731
    a, b = a[key(a)], b[key(b)]
    assert np.array_equal(a["t1"], b["t1"]) and np.array_equal(a["t2"], b["t2"])
    assert np.abs(a["time"] - b["time"]).max() < 1e-5  # hours (float32 on disk)
    assert np.abs(a["u"] - b["u"]).max() < 1e-6 * np.abs(a["u"]).max()
    assert np.abs(a["vis"] - b["vis"]).max() < 1e-6 * np.abs(a["vis"]).max()
    assert np.allclose(a["sigma"], b["sigma"], rtol=1e-6)
    data, report = load_closure_data(d / "obs.uvfits")
    assert report.n_frames == 64 and report.frames_without_closures == [] and report.sparse_times == ()
    assert len(data.cphase) == 960 and len(data.logcamp) == 896
    assert np.isfinite(data.flux).all() and 1.5 < np.median(data.flux) < 2.5  # ALMA-APEX ~ total flux (2 Jy)


def test_malformed_uvfits_errors(tmp_path):
    with pytest.raises(UvfitsError, match="missing.uvfits: no such file"):
        read_uvfits(tmp_path / "missing.uvfits")
    junk = tmp_path / "junk.uvfits"
    junk.write_bytes(b"this is not a FITS file" * 100)
    with pytest.raises(UvfitsError, match="junk.uvfits: cannot be read"):
        read_uvfits(junk)
    image_only = tmp_path / "image.uvfits"
    fits.PrimaryHDU(np.zeros((4, 4))).writeto(image_only)
    with pytest.raises(UvfitsError, match="image.uvfits"):
        read_uvfits(image_only)


def test_frame_duration_split_and_sparse_frames(obs0, truth, psize):
    obs = simulate_observation(truth, psize, obs0, seed=2, cfg=Corruption(gains=False, phases=False))
    tab2 = vis_table_from_obs(obs, frame_duration_s=204.0)
    assert tab2.n_frames == 32
    data2 = closure_data(tab2)
    assert np.all(np.bincount(data2.closures.cp_frame) == 30)  # two timestamps of 15 closure phases per frame
    # keep only ALMA-APEX at the first timestamp: too sparse for closures, reported not raised
    d = np.asarray(obs.data)
    t0 = d["time"].min()
    keep = (d["time"] != t0) | ((d["t1"] == "ALMA") & (d["t2"] == "APEX"))
    sparse = obs.copy()
    sparse.data = d[keep]
    data = closure_data(vis_table_from_obs(sparse))
    assert data.closures.sparse_times == (t0,)
    assert data.frames_without_closures == [0]
    assert len(data.cphase) == 63 * 15


def test_simulation_reproducible_across_processes(obs0, truth, psize, tmp_path):
    a = simulate_observation(truth, psize, obs0, seed=5)
    b = simulate_observation(truth, psize, obs0, seed=5)
    c = simulate_observation(truth, psize, obs0, seed=6)
    assert np.array_equal(a.data["vis"], b.data["vis"]) and not np.allclose(a.data["vis"], c.data["vis"])
    np.save(tmp_path / "m.npy", truth)
    code = ("import numpy as np; from blackhole.array import make_observation; "
            "from blackhole.simulate import simulate_observation; import sys; "
            f"o = simulate_observation(np.load(r'{tmp_path / 'm.npy'}'), {psize!r}, make_observation(), seed=5); "
            f"np.save(r'{tmp_path / 'v.npy'}', o.data['vis'])")
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)
    assert np.array_equal(np.load(tmp_path / "v.npy"), a.data["vis"])


def test_fits_frames_read_by_ehtim(eh, tmp_path, truth, psize, times):
    p = write_fits_frame(truth[3], tmp_path / "f.fits", psize, times[3])
    im = eh.image.load_fits(str(p))
    assert np.allclose(im.imarr(), truth[3]) and np.isclose(im.psize, psize)
    back, ps = read_fits_frame(p)
    assert np.allclose(back, truth[3]) and np.isclose(ps, psize)
    assert fits.getheader(p)["TIME"] == pytest.approx(times[3])
    mov = to_ehtim_movie(truth, psize, times)
    assert np.allclose(mov.get_image(times[10]).imarr(), truth[10])


def test_cli_chisq_matches_ehtim_and_rejects_bad_movies(sim_files, truth, times, psize, capsys):
    d, _ = sim_files
    assert main(["chisq", "--movie", str(d / "movie.npy"), "--obs", str(d / "obs.uvfits"),
                 "--fov-uas", str(FOV_UAS)]) == 0
    res = json.loads(capsys.readouterr().out)
    obs = read_uvfits(d / "obs.uvfits")
    with ehtim_fixes():
        ref = {k: obs.chisq(to_ehtim_movie(truth, psize, np.unique(obs.data["time"])), dtype=k, ttype=TTYPE)
               for k in ("cphase", "logcamp")}
    for k in ("cphase", "logcamp"):
        assert abs(res[k] / ref[k] - 1) < 0.01
    assert res["n_cphase"] == 960 and res["n_logcamp"] == 896
    np.save(d / "short.npy", truth[:10])
    assert main(["chisq", "--movie", str(d / "short.npy"), "--obs", str(d / "obs.uvfits"), "--fov-uas", "128"]) == 2
    err = capsys.readouterr().err
    assert "short.npy" in err and "10 frames" in err and "64" in err
    bad = truth.copy()
    bad[3, 4, 5] = np.nan
    np.save(d / "nan.npy", bad)
    assert main(["chisq", "--movie", str(d / "nan.npy"), "--obs", str(d / "obs.uvfits"), "--fov-uas", "128"]) == 2
    assert "nan.npy" in capsys.readouterr().err


def test_cli_simulate_then_chisq(tmp_path, truth, capsys):
    np.save(tmp_path / "m.npy", truth)
    assert main(["simulate", "--movie", str(tmp_path / "m.npy"), "--out", str(tmp_path / "o.uvfits"),
                 "--seed", "3"]) == 0
    capsys.readouterr()
    assert main(["chisq", "--movie", str(tmp_path / "m.npy"), "--obs", str(tmp_path / "o.uvfits"),
                 "--fov-uas", "128", "--align-flux"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert 0.7 < res["cphase"] < 1.4 and 0.7 < res["logcamp"] < 1.4 and res["flux_aligned"]


def test_rml_baseline_fits_closures_better_than_its_prior(sim_files, capsys, eh):
    import torch

    from blackhole.baselines import gaussian_image
    from blackhole.forward import ClosureForward
    from blackhole.likelihood import chisq_cphase, chisq_logcamp

    d, obs = sim_files
    n = 16
    assert main(["rml", "--obs", str(d / "obs.uvfits"), "--out", str(d / "rml.npy"), "--npix", str(n),
                 "--frames", "0", "--maxit", "20"]) == 0
    capsys.readouterr()
    movie = np.load(d / "rml.npy")
    assert movie.shape == (64, n, n) and np.all(movie[1:] == 0) and movie[0].min() >= 0
    data, _ = load_closure_data(d / "obs.uvfits")
    fwd = ClosureForward(data, n, n, 128.0 * eh.RADPERUAS / n)
    cs = data.closures
    sel, sel2 = cs.cp_frame == 0, cs.lca_frame == 0

    def chis(m):
        out = fwd(torch.as_tensor(m, dtype=torch.float64)[None, :, None])
        return (chisq_cphase(out.cphase[0, sel], torch.as_tensor(data.cphase[sel]),
                             torch.as_tensor(data.cphase_sigma[sel])).item(),
                chisq_logcamp(out.logcamp[0, sel2], torch.as_tensor(data.logcamp[sel2]),
                              torch.as_tensor(data.logcamp_sigma[sel2])).item())

    prior = np.repeat(gaussian_image(n, 128.0, 2.0, 50.0, obs).imarr()[None], 64, axis=0)
    rml, ref = chis(np.where(movie == 0, prior, movie)), chis(prior)
    assert rml[0] < 0.2 * ref[0] and rml[1] < 0.2 * ref[1], (rml, ref)
