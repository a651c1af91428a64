"""``stepvip prior-report``: its measures against closed forms and an independent blur, and the command end to end."""

import json

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from common import checkpoints
from common.cli import main
from common.nets import UNetConfig, VideoUNet
from common.prior_report import gaussian_blur, temporal_roughness

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_roughness_of_independent_static_and_smooth_videos():
    g = torch.Generator().manual_seed(0)
    iid = torch.randn(4, 400, 1, 8, 8, generator=g, dtype=torch.float64)
    assert temporal_roughness(iid) == pytest.approx(2.0, rel=0.03)  # E||a - b||^2 = 2 E||a - mean||^2
    assert temporal_roughness(iid[:, :1].expand(-1, 10, -1, -1, -1)) == 0.0  # a static video
    t = torch.arange(200, dtype=torch.float64)
    slow = torch.sin(2 * torch.pi * t / 200)[None, :, None, None, None].expand(1, 200, 1, 2, 2)
    # a sine of period P over a whole period: R ~ (2 sin(pi / P))^2 (differences of samples a step apart)
    assert temporal_roughness(slow) == pytest.approx((2 * np.sin(np.pi / 200)) ** 2, rel=1e-2)  # 199 differences


def test_blur_matches_scipy_gaussian_filter():
    x = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ours = gaussian_blur(x, 2.0).numpy()
    ref = np.stack([gaussian_filter(f, 2.0, mode="constant", truncate=3.0) for f in x.numpy()])
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_blur_lowers_the_roughness_of_moving_spots():
    """A compact spot moving 2 of its widths per frame decorrelates raw frames; blurring brings R down."""
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    frames = [torch.exp(-((xx - 4 - 2 * k) ** 2 + (yy - 16) ** 2) / 2) for k in range(12)]
    video = torch.stack(frames)[None, :, None]
    assert temporal_roughness(video) > 1.0 > temporal_roughness(video, 4.0)


def _tiny_prior(folder, temporal_alpha):
    cfg = UNetConfig(in_channels=1, image_size=8, channels=(8, 16), attn_levels=(1,), temporal_attn_levels=(1,),
                     num_heads=2)
    torch.manual_seed(0)
    image = VideoUNet(cfg.__class__(**{**cfg.__dict__, "temporal": False}))
    video = VideoUNet.from_image_unet(image)
    with torch.no_grad():
        for n, p in video.named_parameters():
            if n.endswith(".alpha"):
                p.fill_(temporal_alpha)
            elif ".tconv." in n or ".tattn." in n:
                p.normal_(0, 0.2)
    folder.mkdir()
    checkpoints.save(image, folder / "image.safetensors")
    checkpoints.save(video, folder / "video.safetensors")


def test_prior_report_command_writes_json_and_png(tmp_path, capsys):
    _tiny_prior(tmp_path / "prior", 0.5)
    data = np.random.default_rng(0).random((3, 6, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "held.npy", data)
    out = tmp_path / "report"
    rc = main(["prior-report", "--prior", str(tmp_path / "prior"), "--data", str(tmp_path / "held.npy"),
               "--out", str(out), "--videos", "2", "--num", "2", "--steps", "3", "--sigmas", "0.5,1", "--blur-px", "1"])
    assert rc == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["round_trip"] is None and [r["sigma"] for r in rep["denoising_mse"]] == [0.5, 1.0]
    for r in rep["denoising_mse"]:
        assert r["ratio"] == pytest.approx(r["video"] / r["image"])
    assert rep["temporal_roughness"]["data"]["raw"] == pytest.approx(temporal_roughness(torch.from_numpy(data[:2])))
    assert set(rep["temporal_roughness"]) >= {"data", "video", "image", "video_over_image"}
    assert (out / "report.png").stat().st_size > 0 and "temporal roughness" in capsys.readouterr().out


def test_prior_report_rejects_bad_input_before_work(tmp_path, capsys):
    _tiny_prior(tmp_path / "prior", 0.0)
    np.save(tmp_path / "two.npy", np.zeros((2, 4, 2, 8, 8), np.float32))
    rc = main(["prior-report", "--prior", str(tmp_path / "prior"), "--data", str(tmp_path / "two.npy"),
               "--out", str(tmp_path / "o")])
    assert rc == 2 and "2 channels, the prior takes 1" in capsys.readouterr().err
    rc = main(["prior-report", "--prior", str(tmp_path / "nope"), "--data", str(tmp_path / "two.npy"),
               "--out", str(tmp_path / "o")])
    assert rc == 2 and "no such folder" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
