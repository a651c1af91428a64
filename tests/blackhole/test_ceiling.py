"""The closure-chi2 representation ceiling (blackhole.ceiling) and ``prior-report --ceiling eht2017``."""

import json

import numpy as np
import pytest
import torch

from blackhole.ceiling import closure_ceiling, track_frames
from common.cli import main
from common.prior_report import gaussian_blur

from .conftest import FOV_UAS, NPIX, ring_movie

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def held_out(obs0):
    """Two normalised ring movies of the track's length ``[2, T, 1, NPIX, NPIX]``."""
    t = track_frames(obs0)
    movies = np.stack([ring_movie(t, shift=s) for s in (0.5, 1.0)])
    movies /= movies.max(axis=(1, 2, 3), keepdims=True)
    return torch.from_numpy(movies[:, :, None])


def test_truth_fits_its_own_observation_and_a_blurred_representation_does_not(held_out):
    ident = closure_ceiling(held_out, lambda v: v, FOV_UAS)
    for k in ("chi2_cp", "chi2_logca"):
        assert all(0.6 < c < 1.6 for c in ident["truth"][k])  # thermal noise only: chi~2 ~ 1
        assert ident["representation"][k] == ident["truth"][k]  # identity (a pixel-space prior)
    # closures are invariant to the flux scale: a representation off by a factor fits exactly as well
    half = closure_ceiling(held_out, lambda v: 0.5 * v, FOV_UAS)
    np.testing.assert_allclose(half["representation"]["chi2_cp"], ident["truth"]["chi2_cp"], rtol=1e-9)
    np.testing.assert_allclose(half["representation"]["chi2_logca"], ident["truth"]["chi2_logca"], rtol=1e-9)
    # a representation that loses the ring's sharpness (a 1 px = 4 uas Gaussian blur) fails the bar of 2 by far in
    # log closure amplitudes, but not in closure phases: a kernel with a real positive transform leaves them alone
    blurred = closure_ceiling(held_out, lambda v: gaussian_blur(v.reshape(-1, NPIX, NPIX), 1.0).reshape(v.shape),
                              FOV_UAS)
    assert blurred["mean"]["representation"]["chi2_logca"] > 10 * ident["mean"]["truth"]["chi2_logca"]
    np.testing.assert_allclose(blurred["representation"]["chi2_cp"], ident["truth"]["chi2_cp"], rtol=1e-5)
    # the movie turned by 180 degrees: V(-u) = conj V(u) flips every closure phase, amplitudes are unchanged
    turned = closure_ceiling(held_out, lambda v: v.flip(-1, -2), FOV_UAS)
    assert turned["mean"]["representation"]["chi2_cp"] > 10 * ident["mean"]["truth"]["chi2_cp"]
    np.testing.assert_allclose(turned["representation"]["chi2_logca"], ident["truth"]["chi2_logca"], rtol=1e-9)


def test_closure_ceiling_rejects_a_movie_of_the_wrong_length(held_out):
    with pytest.raises(ValueError, match="timestamps"):
        closure_ceiling(held_out[:, :10], lambda v: v, FOV_UAS)


def _pixel_prior(folder):
    from common import checkpoints
    from common.nets import UNetConfig, VideoUNet

    torch.manual_seed(0)
    image = VideoUNet(UNetConfig(in_channels=1, image_size=NPIX, channels=(4, 8), attn_levels=(), temporal=False,
                                 temporal_attn_levels=(), num_heads=1))
    folder.mkdir()
    checkpoints.save(image, folder / "image.safetensors")
    checkpoints.save(VideoUNet.from_image_unet(image), folder / "video.safetensors")


def test_prior_report_prints_the_closure_ceiling(tmp_path, held_out, capsys):
    _pixel_prior(tmp_path / "prior")
    np.save(tmp_path / "held.npy", held_out.numpy().astype(np.float32))
    out = tmp_path / "report"
    args = ["prior-report", "--prior", str(tmp_path / "prior"), "--data", str(tmp_path / "held.npy"), "--out",
            str(out), "--videos", "1", "--num", "1", "--steps", "2", "--sigmas", "1", "--ceiling", "eht2017"]
    assert main(args) == 0
    rep = json.loads((out / "report.json").read_text())["ceiling"]
    assert rep["representation"] == rep["truth"] and len(rep["truth"]["chi2_cp"]) == 1  # pixel prior: identity
    assert rep["settings"]["fov_uas"] == 128.0 and rep["name"] == "eht2017 closure chi~2"
    assert "ceiling (eht2017 closure chi~2: chi2_cp / chi2_logca" in capsys.readouterr().out
    np.save(tmp_path / "short.npy", held_out[:, :8].numpy().astype(np.float32))
    args[4] = str(tmp_path / "short.npy")
    args[6] = str(tmp_path / "o2")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--ceiling eht2017: needs" in err and "8 frames" in err and not (tmp_path / "o2").exists()
    assert main([*args, "--flux-jy", "0"]) == 2
    assert "--ceiling eht2017: --flux-jy must be a finite number > 0, got 0.0" in capsys.readouterr().err
