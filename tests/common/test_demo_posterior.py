"""Posterior summaries, modes, netCDF output, figures and the shared demo driver (no domain code)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from skimage.metrics import peak_signal_noise_ratio

from common.figures import difference_grid, frame_grid, mean_std_maps, write_gif
from common.methods import METHODS
from common.methods.step import daps_samples
from common.posterior import MethodPosterior, find_modes, kmeans, posterior_dataset, uq_report, write_netcdf
from common.recon import cli, prior_set, run
from common.recon.errors import DemoError
from common.recon.task import ReconTask
from common.sampling import DAPSConfig, image_mode
from tests.demo_priors import make_untrained_prior

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _two_mode_samples(rng: np.random.Generator, n_a: int = 5, n_b: int = 3) -> np.ndarray:
    a = 1.0 + 0.01 * rng.standard_normal((n_a, 4, 8, 8))
    b = 0.01 * rng.standard_normal((n_b, 4, 8, 8))
    b[..., :4, :] += 2.0
    return np.concatenate([a, b])


def test_summary_matches_numpy_and_complex_uses_magnitude():
    rng = np.random.default_rng(0)
    s = rng.standard_normal((7, 3, 5, 5)) + 1j * rng.standard_normal((7, 3, 5, 5))
    post = MethodPosterior("STeP", s, {"misfit": np.arange(7.0)}, levels=(0.1, 0.9))
    summ = post.summary()
    mag = np.abs(s)
    np.testing.assert_allclose(summ["mean"], mag.mean(0))
    np.testing.assert_allclose(summ["std"], np.sqrt(((mag - mag.mean(0)) ** 2).mean(0)))
    np.testing.assert_allclose(summ["lower"], np.percentile(mag, 10, axis=0))
    np.testing.assert_allclose(summ["upper"], np.percentile(mag, 90, axis=0))
    assert (summ["lower"] <= summ["upper"]).all()
    np.testing.assert_allclose(post.mean_sample(), s.mean(0))


def test_bad_posterior_inputs_are_named():
    with pytest.raises(ValueError, match=r"samples must be \[S, T, H, W\]"):
        MethodPosterior("IDM", np.zeros((3, 4, 4)), {})
    with pytest.raises(ValueError, match="NaN"):
        MethodPosterior("IDM", np.full((1, 2, 4, 4), np.nan), {})
    with pytest.raises(ValueError, match="fit 'chi2_cp' must have 2 values"):
        MethodPosterior("IDM", np.zeros((2, 2, 4, 4)), {"chi2_cp": np.ones(3)})


def test_kmeans_separates_two_clusters_and_orders_by_size():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 0.1, (6, 3)), rng.normal(5, 0.1, (4, 3))])
    labels, centres = kmeans(x, 2, seed=3)
    assert labels.tolist() == [0] * 6 + [1] * 4
    np.testing.assert_allclose(centres[0], x[:6].mean(0))
    np.testing.assert_allclose(centres[1], x[6:].mean(0))
    one, _ = kmeans(np.ones((3, 2)), 2)  # identical points: one cluster, no division by zero
    assert one.tolist() == [0, 0, 0]


def test_modes_sizes_fit_and_representative():
    rng = np.random.default_rng(2)
    samples = _two_mode_samples(rng)
    chi2 = np.array([1.0, 1.1, 0.9, 1.0, 1.0, 5.0, 6.0, 7.0])
    post = MethodPosterior("STeP", samples, {"chi2_cp": chi2})
    modes = find_modes(post, n_modes=2, pool_factor=4, seed=0)
    assert [m.size for m in modes] == [5, 3]
    assert modes[0].members == [0, 1, 2, 3, 4] and modes[1].members == [5, 6, 7]
    assert modes[1].fit["chi2_cp"] == pytest.approx(6.0)
    assert modes[0].representative in modes[0].members
    report = uq_report([post])["STeP"]
    assert report["modes"][0]["fraction"] == pytest.approx(5 / 8)
    assert report["fit_per_sample"]["chi2_cp"] == pytest.approx(chi2.tolist())


def test_netcdf_round_trip_with_units_and_atomic_failure(tmp_path: Path):
    rng = np.random.default_rng(3)
    posts = [MethodPosterior(m, _two_mode_samples(rng), {"misfit": rng.random(8)}) for m in METHODS]
    for p in posts:
        find_modes(p, 2)
    coords = {"frame": (np.arange(4) / 4, {"units": "cardiac cycle fraction"}),
              "y": (np.arange(8), {"units": "pixel"}), "x": (np.arange(8), {"units": "pixel"})}
    ds = posterior_dataset(posts, coords, {"seed": 0, "config": {"a": 1}}, "image units", truth=np.ones((4, 8, 8)))
    path = write_netcdf(ds, tmp_path / "samples.nc")
    with xr.open_dataset(path, engine="h5netcdf") as back:
        assert back["IDM_BCS"].dims == ("sample", "frame", "y", "x")
        assert back["IDM_BCS"].attrs["method"] == "IDM+BCS"
        assert back["frame"].attrs["units"] == "cardiac cycle fraction"
        np.testing.assert_allclose(back["STeP_mean"].values, posts[0].summary()["mean"], rtol=1e-6)
        assert back["STeP_mode"].values.tolist() == [0] * 5 + [1] * 3
        assert json.loads(back.attrs["config"]) == {"a": 1}

    class Broken:
        def to_netcdf(self, path, engine):
            Path(path).write_text("half")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_netcdf(Broken(), tmp_path / "samples.nc")
    with xr.open_dataset(path, engine="h5netcdf") as back:  # the old file is intact, no temporary left
        assert "STeP" in back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples.nc"]


def test_figures_write_pngs_and_gif(tmp_path: Path):
    from PIL import Image

    rng = np.random.default_rng(4)
    rows = {"truth": rng.random((5, 8, 8)), "STeP #0": rng.random((5, 8, 8))}
    for f in (frame_grid(tmp_path / "f.png", rows), difference_grid(tmp_path / "d.png", rows),
              mean_std_maps(tmp_path / "m.png", rows["truth"], rows["STeP #0"])):
        assert Image.open(f).format == "PNG"
    gif = Image.open(write_gif(tmp_path / "v.gif", list(rows.values())))
    assert gif.n_frames == 5 and gif.size == (8 * 2 + 2, 8)
    with pytest.raises(ValueError, match="one shape"):
        frame_grid(tmp_path / "bad.png", {"a": np.zeros((5, 8, 8)), "b": np.zeros((4, 8, 8))})
    assert not (tmp_path / "bad.png").exists()


def test_truth_metrics_agree_with_skimage():
    rng = np.random.default_rng(5)
    truth = rng.random((4, 16, 16))
    pred = np.clip(truth + 0.05 * rng.standard_normal((2, 4, 16, 16)), 0, 1)
    m = run.truth_metrics(pred, truth, 1.0)
    ref = np.mean([peak_signal_noise_ratio(truth[t], pred[1, t], data_range=1.0) for t in range(4)])
    assert m["psnr"][1] == pytest.approx(ref, rel=1e-6)
    dref = np.mean([peak_signal_noise_ratio(np.diff(truth, axis=0)[t], np.diff(pred[0], axis=0)[t], data_range=1.0)
                    for t in range(3)])
    assert m["dpsnr"][0] == pytest.approx(dref, rel=1e-6)


def test_prior_paths_and_loading_errors(tmp_path: Path):
    def no_shipped():
        raise FileNotFoundError("shipped prior: vae checkpoint /x/vae.safetensors is missing")

    with pytest.raises(DemoError, match=r"shipped prior is not available .*--prior DIR"):
        prior_set.resolve_prior_paths(None, {}, no_shipped)
    with pytest.raises(DemoError, match="no such folder"):
        prior_set.resolve_prior_paths(tmp_path / "nope", {}, no_shipped)
    prior = make_untrained_prior("prior_mri_tiny.yaml", tmp_path / "p", vae_overrides={"channels": (8, 8, 16)},
                                 unet_overrides={"channels": (16, 16, 16), "attn_levels": (),
                                                 "temporal_attn_levels": ()})
    (prior / "image.safetensors").unlink()
    with pytest.raises(DemoError, match=r"image checkpoint .*image.safetensors: file not found"):
        prior_set.resolve_prior_paths(prior, {}, no_shipped)
    make_untrained_prior("prior_mri_tiny.yaml", tmp_path / "p", vae_overrides={"channels": (8, 8, 16)},
                         unet_overrides={"channels": (16, 16, 16), "attn_levels": (), "temporal_attn_levels": ()})
    paths = prior_set.resolve_prior_paths(prior, {}, no_shipped)
    priors = prior_set.load_priors(paths)
    assert priors.latent_factor == 4 and not priors.image.config.temporal
    swapped = prior_set.resolve_prior_paths(prior, {"video": paths["image"]}, no_shipped)
    with pytest.raises(DemoError, match="no temporal layers"):
        prior_set.load_priors(swapped)
    data = (prior / "video.safetensors").read_bytes()
    (prior / "video.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(DemoError, match="video.safetensors"):
        prior_set.load_priors(paths)


def test_demo_group_discovers_entry_points(monkeypatch):
    calls = []

    class FakeEP:
        name, value = "toy", "toy.demo:run"

        def load(self):
            return lambda args: calls.append(args) or 0

    monkeypatch.setattr(cli, "entry_points", lambda group: [FakeEP()] if group == cli.DEMO_GROUP else [])
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["demo", "toy", "--out", "x", "--quick", "--case", "3"])
    assert args.func(args) == 0 and calls[0].case == 3 and calls[0].quick
    args = parser.parse_args(["demo", "toy", "--out", "x", "--methods", "STeP,DPS"])
    assert [m.name for m in cli.parse_methods("IDM,STeP")] == ["IDM", "STeP"]
    with pytest.raises(DemoError, match="--methods"):
        cli.parse_methods(args.methods)


def test_sample_method_same_seed_same_start(tmp_path: Path):
    """IDM and IDM+BCS share the image prior; with one frame batch-consistent noise is i.i.d. noise, so the two
    methods must give identical samples for the same seed (seeds are per sample, not per method)."""
    prior = make_untrained_prior("prior_mri_tiny.yaml", tmp_path / "p", vae_overrides={"channels": (8, 8, 16)},
                                 unet_overrides={"channels": (16, 16, 16), "attn_levels": (),
                                                 "temporal_attn_levels": ()})
    priors = prior_set.load_priors(prior_set.resolve_prior_paths(prior, {}, dict))
    target = torch.zeros(1, 1, 2, 64, 64)
    task = ReconTask(name="toy", frames=1, image_shape=(2, 64, 64),
                          log_likelihood=lambda x: -((x - target) ** 2).flatten(1).sum(1),
                          to_physical=lambda x: x[:, :, 0].numpy(), data_fit=lambda x: {}, metric_images=np.abs,
                          units="", coords={})
    cfg = DAPSConfig(annealing_steps=1, ode_steps=2, mcmc_steps=1, lr=1e-4)
    a = METHODS["IDM"].sample(task, priors, cfg, 2, seed=7)
    b = METHODS["IDM+BCS"].sample(task, priors, cfg, 2, seed=7)
    c = METHODS["IDM"].sample(task, priors, cfg, 2, seed=8)
    assert a.shape == (2, 1, 2, 64, 64)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    idm = image_mode(priors.image)
    whole = daps_samples(task, priors, idm, False, cfg, 3, seed=7, batch=3)  # one call; the default is 1 per call
    torch.testing.assert_close(whole[:2], a, rtol=1e-3, atol=1e-3)  # batched convs round differently
    torch.testing.assert_close(daps_samples(task, priors, idm, False, cfg, 3, seed=7, batch=2), whole,
                               rtol=1e-3, atol=1e-3)
