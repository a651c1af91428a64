"""Movie loaders, Datasets, the synthetic generator and ``make-movies``."""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest
import torch

from blackhole.cli import main
from blackhole.fits_io import write_fits_movie
from blackhole.movies import MovieFrames, MovieVideos, load_movie, prepare_movie
from blackhole.synthetic import MovieGeometry, draw_params, generate_movies


@pytest.fixture
def movie():
    return np.random.default_rng(0).random((6, 16, 16)).astype(np.float32)


def test_all_layouts_load_the_same_movie(tmp_path, movie):
    np.save(tmp_path / "m.npy", movie)
    np.savez(tmp_path / "m.npz", frames=movie)
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f["frames"] = movie
    (tmp_path / "npyframes").mkdir()
    for k in range(6):  # natural order: frame_10 after frame_9
        np.save(tmp_path / "npyframes" / f"frame_{k}.npy", movie[k])
    write_fits_movie(movie, tmp_path / "fitsframes", psize=1e-11, times_hr=np.arange(6.0))
    for p in ["m.npy", "m.npz", "m.h5", "npyframes", "fitsframes"]:
        assert np.allclose(load_movie(tmp_path / p), movie, atol=1e-7), p


def test_malformed_movies_name_the_file(tmp_path, movie):
    bad = movie.copy()
    bad[0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(ValueError, match="nan.npy: contains NaN"):
        load_movie(tmp_path / "nan.npy")
    np.save(tmp_path / "flat.npy", movie[0])
    with pytest.raises(ValueError, match=r"flat.npy: expected an array \[T, H, W\]"):
        load_movie(tmp_path / "flat.npy")
    with h5py.File(tmp_path / "two.h5", "w") as f:
        f["a"], f["b"] = movie, movie
    with pytest.raises(ValueError, match="two.h5: HDF5 needs a 'frames' dataset"):
        load_movie(tmp_path / "two.h5")
    (tmp_path / "mixed").mkdir()
    np.save(tmp_path / "mixed" / "a.npy", movie[0])
    np.save(tmp_path / "mixed" / "b.npy", movie[0, :8])
    with pytest.raises(ValueError, match="b.npy: shape"):
        load_movie(tmp_path / "mixed")
    with pytest.raises(FileNotFoundError, match="nothing.npy"):
        load_movie(tmp_path / "nothing.npy")


def test_prepare_movie_resize_subsample_normalise(movie):
    out = prepare_movie(movie, frames=3, npix=8, normalize="none")
    assert out.shape == (3, 8, 8)
    assert np.allclose(out.sum(axis=(1, 2)), movie[[0, 2, 5]].sum(axis=(1, 2)), rtol=1e-5)  # flux preserved
    mx = prepare_movie(movie, normalize="max")
    assert mx.max() == pytest.approx(1.0) and mx.min() >= 0
    fl = prepare_movie(movie, normalize="flux", flux_jy=2.5)
    assert np.allclose(fl.sum(axis=(1, 2)), 2.5, rtol=1e-5)
    with pytest.raises(ValueError, match="normalize"):
        prepare_movie(movie, normalize="zscore")


def test_datasets_shapes(tmp_path, movie):
    vids = np.stack([movie, 2 * movie])[:, :, None]
    np.save(tmp_path / "videos.npy", vids)
    ds = MovieVideos(tmp_path / "videos.npy")
    assert len(ds) == 2 and ds[1].shape == (6, 1, 16, 16) and ds[1].dtype == torch.float32
    assert torch.allclose(ds[1], torch.as_tensor(2 * movie)[:, None])
    fr = MovieFrames(MovieVideos(tmp_path / "videos.npy", npix=8, normalize="max"))
    assert len(fr) == 12 and fr[7].shape == (1, 8, 8) and float(fr[7].max()) <= 1.0
    (tmp_path / "coll").mkdir()
    np.save(tmp_path / "coll" / "a.npy", movie)
    np.save(tmp_path / "coll" / "b.npy", movie)
    assert MovieVideos(tmp_path / "coll", frames=4, npix=8)[0].shape == (4, 1, 8, 8)


def test_synthetic_movies_seeded_and_physical():
    geom = MovieGeometry(frames=16, npix=64)
    a, meta = generate_movies(5, geom, seed=3, chunk=2)
    b, _ = generate_movies(5, geom, seed=3, chunk=5)
    c, _ = generate_movies(2, geom, seed=3, start=3)
    assert np.array_equal(a, b) and np.array_equal(a[3:], c)  # chunk- and batch-independent
    assert a.shape == (5, 16, 1, 64, 64) and a.dtype == np.float32 and np.isfinite(a).all() and a.min() >= 0
    assert not np.array_equal(a, generate_movies(5, geom, seed=4)[0])
    # ring diameter: radius of the azimuthally averaged brightness peak of a spot-free, texture-free movie
    rng = np.random.default_rng([9, 0])
    p = draw_params(rng, texture=0.0, max_spots=0)
    from blackhole.synthetic import render

    img = render([p], [rng], MovieGeometry(frames=2, npix=128)).numpy()[0, 0]
    c0 = 63.5
    yy, xx = np.mgrid[:128, :128]
    r = np.hypot(yy - c0, xx - c0) * 1.0  # 1 uas per pixel
    prof = np.bincount(r.astype(int).ravel(), img.ravel()) / np.bincount(r.astype(int).ravel())
    assert abs(np.argmax(prof[:60]) + 0.5 - p.diameter_uas / 2) < 2.0
    for m in meta:
        assert 44 <= m["diameter_uas"] <= 60 and 0.3 <= m["width_uas"] / m["diameter_uas"] <= 0.5
        for h in m["hot_spots"]:  # Keplerian: P = 2 pi r^1.5 GM/c^3 with GM/c^3 = 20 s
            assert h["period_s"] == pytest.approx(2 * math.pi * h["radius_m"] ** 1.5 * 20.0)


def test_make_movies_cli(tmp_path, capsys):
    assert main(["make-movies", "--n", "3", "--out", str(tmp_path / "d"), "--frames", "8", "--npix", "32",
                 "--seed", "1"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n"] == 3 and info["videos_per_second"] > 0
    v = np.load(tmp_path / "d" / "videos.npy")
    meta = json.loads((tmp_path / "d" / "videos.json").read_text())
    assert v.shape == (3, 8, 1, 32, 32) and v.dtype == np.float32
    assert meta["fov_uas"] == 128.0 and len(meta["videos"]) == 3 and meta["psize_rad"] > 0
    assert np.array_equal(v, generate_movies(3, MovieGeometry(frames=8, npix=32), seed=1)[0])
