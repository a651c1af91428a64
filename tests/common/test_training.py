"""Training pipeline: overfitting a tiny dataset, bit-identical resume after a crash, CLI end to end."""

import argparse
import dataclasses
import json

import numpy as np
import pytest
import torch
import xarray as xr
from safetensors.torch import load_file

from common import checkpoints
from common.nets import UNetConfig, VAEConfig, VideoUNet
from common.nets.temporal import TemporalBlend
from common.nets.vae import FrameVAE
from common.training.cli import register_sample_prior, register_train
from common.training.config import DataConfig, PriorConfig, StageConfig
from common.training.loop import train_stage
from common.training.objectives import (
    DecoderObjective,
    low_frequency_mask,
    mean_power,
    whitened_error,
    whitening_weights,
)
from tests.common.test_nets import randomise

TINY_UNET = UNetConfig(in_channels=1, image_size=8, channels=(8, 16), attn_levels=(1,), temporal_attn_levels=(1,),
                       num_heads=2)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Frames(torch.utils.data.Dataset):
    """A plain in-memory frame dataset (``[C, H, W]`` items): the project-wide dataset convention."""

    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


def blobs(centres, hw=16):
    yy, xx = torch.meshgrid(torch.arange(hw, dtype=torch.float32), torch.arange(hw, dtype=torch.float32),
                            indexing="ij")
    return torch.stack([torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 8) for cx, cy in centres])[:, None]


def moving_blob_videos(n=4, t=4, hw=8, seed=0):
    g = np.random.default_rng(seed)
    vids = []
    for _ in range(n):
        cx, cy, vx = g.uniform(2, hw - 2), g.uniform(2, hw - 2), g.uniform(-1, 1)
        vids.append(blobs([(cx + vx * k, cy) for k in range(t)], hw))
    return torch.stack(vids).numpy()


def losses(folder):
    return [json.loads(line)["loss"] for line in (folder / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_tiny_vae_overfits(tmp_path):
    cfg = PriorConfig(data=DataConfig(hflip=False, vflip=False), vae=VAEConfig(channels=(8, 16)),
                      train_vae=StageConfig(steps=150, batch_size=4, lr=3e-3, beta_kl=1e-4, checkpoint_every=1000))
    train_stage("vae", cfg, tmp_path, frames=Frames(blobs([(5, 8), (10, 8)])), progress=False)
    loss = losses(tmp_path)
    assert np.mean(loss[:10]) / np.mean(loss[-10:]) >= 10


@pytest.mark.slow
def test_tiny_unet_overfits(tmp_path):
    cfg = PriorConfig(data=DataConfig(hflip=False, vflip=False), unet=UNetConfig(
        in_channels=1, image_size=16, channels=(16, 32), attn_levels=(1,), temporal_attn_levels=(1,), num_heads=2),
        train_image=StageConfig(steps=200, batch_size=4, lr=3e-3, p_mean=-1.0, p_std=1.0, checkpoint_every=1000))
    train_stage("image", cfg, tmp_path, frames=Frames(blobs([(5, 8)])), progress=False)
    loss = losses(tmp_path)
    assert np.mean(loss[:10]) / np.mean(loss[-10:]) >= 10


class Crash(RuntimeError):
    pass


def _crash_at(step):
    def cb(done, loss):
        if done == step:
            raise Crash(f"simulated kill at step {done}")
    return cb


@pytest.mark.parametrize("stage", ["vae", "decoder", "video"])
def test_killed_run_resumes_bit_identically(tmp_path, stage):
    videos = moving_blob_videos(n=4, t=4, hw=8)
    vids = Frames(torch.from_numpy(videos))
    sc = StageConfig(steps=6, batch_size=2, lr=2e-3, checkpoint_every=2, ema_decay=0.9, seed=3, p_joint=0.5)
    vae_cfg = VAEConfig(channels=(8, 16), latent_channels=TINY_UNET.in_channels)
    cfg = PriorConfig(data=DataConfig(zoom=0.2), vae=vae_cfg if stage in ("vae", "decoder") else None,
                      unet=TINY_UNET, train_vae=dataclasses.replace(sc, fourier_weight=0.5),
                      train_decoder=dataclasses.replace(sc, fourier_weight=0.5),
                      train_video=sc)
    init = tmp_path / "image.safetensors"
    image = VideoUNet(UNetConfig(**{**TINY_UNET.__dict__, "temporal": False}))
    checkpoints.save(image, init)
    torch.manual_seed(0)
    checkpoints.save(FrameVAE(vae_cfg), tmp_path / "vae.safetensors")
    # the vae stage starts from the saved VAE (train vae --init), the video stage from the image UNet
    start = {"video": init, "vae": tmp_path / "vae.safetensors"}.get(stage)
    kw = dict(videos=vids, init_path=start, vae_path=tmp_path / "vae.safetensors", progress=False)
    train_stage(stage, cfg, tmp_path / "full", **kw)
    with pytest.raises(Crash):
        train_stage(stage, cfg, tmp_path / "killed", callback=_crash_at(5), **kw)
    assert not (tmp_path / "killed" / "ema.safetensors").exists()
    with pytest.raises(FileExistsError, match="--resume"):
        train_stage(stage, cfg, tmp_path / "killed", **kw)
    train_stage(stage, cfg, tmp_path / "killed", resume=True, **kw)
    for name in ("ema.safetensors", "model.safetensors"):
        a, b = load_file(tmp_path / "full" / name), load_file(tmp_path / "killed" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert losses(tmp_path / "full") == losses(tmp_path / "killed")
    assert len(losses(tmp_path / "killed")) == 6
    other = dataclasses.replace(cfg, **{f"train_{stage}": dataclasses.replace(sc, lr=1e-3)})
    with pytest.raises(ValueError, match="different config"):
        train_stage(stage, other, tmp_path / "killed", resume=True, **kw)
    a0 = load_file(init)
    moved = load_file(tmp_path / "full" / "model.safetensors")
    if stage == "video":  # the run did train: spatial weights moved and some alpha left 0
        assert any(not torch.equal(moved[f"{k}"], a0[k]) for k in a0)
        assert any(moved[k].abs().item() > 0 for k in moved if k.endswith(".alpha"))


def test_run_saved_before_a_config_field_existed_resumes(tmp_path):
    """A state whose saved config text lacks a field added later (its default) is the same run, and so is one
    whose YAML gained another stage's section; a changed value of the stage or the networks is not."""
    from safetensors.torch import save_file

    from common.checkpoints import read_metadata
    from common.training.state import STATE_KEY

    vids = Frames(torch.from_numpy(moving_blob_videos(n=4, t=4, hw=8)))
    sc = StageConfig(steps=2, batch_size=2, checkpoint_every=2, seed=3)
    cfg = PriorConfig(data=DataConfig(zoom=0.2), unet=TINY_UNET, train_video=sc)
    init = tmp_path / "image.safetensors"
    checkpoints.save(VideoUNet(UNetConfig(**{**TINY_UNET.__dict__, "temporal": False})), init)
    train_stage("video", cfg, tmp_path / "run", videos=vids, init_path=init, progress=False)
    state = tmp_path / "run" / "state.safetensors"
    meta = json.loads(read_metadata(state)[STATE_KEY])
    old_text = "\n".join(ln for ln in meta["run_config"].splitlines() if "fourier_" not in ln)
    assert old_text != meta["run_config"]
    save_file(load_file(state), state, metadata={STATE_KEY: json.dumps({**meta, "run_config": old_text})})
    longer = dataclasses.replace(cfg, train_video=dataclasses.replace(sc, steps=3))
    train_stage("video", longer, tmp_path / "run", videos=vids, init_path=init, resume=True, progress=False)
    assert len(losses(tmp_path / "run")) == 3
    # another stage's section (here a decoder stage added to the YAML) is not part of this run
    other_stage = dataclasses.replace(longer, train_video=dataclasses.replace(sc, steps=4),
                                      train_decoder=StageConfig(steps=9, fourier_weight=0.1))
    train_stage("video", other_stage, tmp_path / "run", videos=vids, init_path=init, resume=True, progress=False)
    assert len(losses(tmp_path / "run")) == 4
    changed = dataclasses.replace(longer, train_video=dataclasses.replace(sc, steps=5, fourier_weight=0.5))
    with pytest.raises(ValueError, match="different config"):
        train_stage("video", changed, tmp_path / "run", videos=vids, init_path=init, resume=True, progress=False)
    wider = dataclasses.replace(longer, unet=dataclasses.replace(TINY_UNET, temporal_kernel=5),
                                train_video=dataclasses.replace(sc, steps=5))
    with pytest.raises(ValueError, match="different config"):
        train_stage("video", wider, tmp_path / "run", videos=vids, init_path=init, resume=True, progress=False)


def _cli(argv):
    parser = argparse.ArgumentParser(prog="stepvip")
    sub = parser.add_subparsers()
    register_train(sub)
    register_sample_prior(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_end_to_end_latent_prior(tmp_path, capsys):
    videos = moving_blob_videos(n=4, t=4, hw=16)
    np.save(tmp_path / "videos.npy", videos.astype(np.float32))
    cfg = tmp_path / "prior.yaml"
    cfg.write_text(f"""
data: {{videos: {tmp_path / 'videos.npy'}, zoom: 0.1, clip_frames: 3}}
vae: {{in_channels: 1, latent_channels: 1, channels: [8, 16], num_res_blocks: 1}}
unet: {{in_channels: 1, image_size: 8, channels: [8, 16], attn_levels: [1], temporal_attn_levels: [1], num_heads: 2}}
train_vae: {{steps: 3, batch_size: 4, checkpoint_every: 2, latent: sample}}
train_image: {{steps: 3, batch_size: 4, checkpoint_every: 2, latent: sample}}
train_video: {{steps: 3, batch_size: 2, checkpoint_every: 2, p_joint: 0.5}}
""")
    run = tmp_path / "run"
    for stage in ("vae", "image", "video"):
        assert _cli(["train", stage, "--config", str(cfg), "--out", str(run), "--no-progress"]) == 0
        printed = capsys.readouterr().out
        assert f"# stepvip train {stage}: resolved config" in printed and "clip_frames: 3" in printed
        for f in ("state.safetensors", "ema.safetensors", "model.safetensors", "log.jsonl", "loss.png",
                  "config.yaml"):
            assert (run / stage / f).is_file(), (stage, f)
    video = checkpoints.load(run / "video" / "ema.safetensors")
    assert video.config.temporal and any(isinstance(m, TemporalBlend) for m in video.modules())
    capsys.readouterr()
    assert _cli(["train", "vae", "--config", str(cfg), "--out", str(tmp_path / "other"), "--resume"]) == 2
    err = capsys.readouterr().err  # a set-up error: one line, exit code 2, no traceback
    assert err.count("\n") == 1 and "stepvip train vae: error: --resume: no training state" in err
    out = tmp_path / "samples"
    assert _cli(["sample-prior", "--checkpoint", str(run / "video" / "ema.safetensors"), "--vae",
                 str(run / "vae" / "ema.safetensors"), "--num", "3", "--frames", "5", "--steps", "4", "--batch", "2",
                 "--out", str(out)]) == 0
    ds = xr.open_dataset(out / "samples.nc", engine="h5netcdf")
    assert ds["video"].dims == ("sample", "frame", "channel", "y", "x") and ds["video"].shape == (3, 5, 1, 16, 16)
    assert np.isfinite(ds["video"].values).all() and ds.attrs["steps"] == 4
    ds.close()
    from PIL import Image

    with Image.open(out / "samples.gif") as im:
        assert im.n_frames == 5 and im.size == (3 * 16, 16)


def test_train_video_needs_image_checkpoint(tmp_path):
    cfg = PriorConfig(unet=TINY_UNET)
    vids = Frames(torch.from_numpy(moving_blob_videos()))
    with pytest.raises(FileNotFoundError, match="image-UNet checkpoint"):
        train_stage("video", cfg, tmp_path, videos=vids, init_path=tmp_path / "missing.safetensors", progress=False)
    with pytest.raises(ValueError, match="'vae: null'"):
        train_stage("vae", cfg, tmp_path, videos=vids, progress=False)


def test_video_stage_may_add_temporal_modules_the_image_checkpoint_never_had(tmp_path):
    """The image stage trains no temporal modules, so a video stage may use other temporal fields (more attention
    levels, kernel, frame budget) than the image checkpoint recorded; a spatial difference is still refused."""
    vids = Frames(torch.from_numpy(moving_blob_videos(n=4, t=4, hw=8)))
    init = tmp_path / "image.safetensors"
    checkpoints.save(VideoUNet(UNetConfig(**{**TINY_UNET.__dict__, "temporal": False})), init)
    richer = dataclasses.replace(TINY_UNET, temporal_attn_levels=(0, 1), temporal_kernel=5, max_frames=32)
    sc = StageConfig(steps=1, batch_size=2, p_joint=1.0)
    train_stage("video", PriorConfig(unet=richer, train_video=sc), tmp_path / "ok", videos=vids, init_path=init,
                progress=False)
    assert checkpoints.load(tmp_path / "ok" / "ema.safetensors").config.temporal_attn_levels == (0, 1)
    wider = dataclasses.replace(TINY_UNET, channels=(8, 24))
    with pytest.raises(ValueError, match="different UNet config .*channels"):
        train_stage("video", PriorConfig(unet=wider, train_video=sc), tmp_path / "bad", videos=vids, init_path=init,
                    progress=False)


def test_non_finite_loss_stops_the_run_loudly(tmp_path):
    x = blobs([(5, 8)], hw=8)
    x[0, 0, 2, 2] = float("nan")
    cfg = PriorConfig(data=DataConfig(hflip=False, vflip=False), unet=TINY_UNET,
                      train_image=StageConfig(steps=3, batch_size=2, checkpoint_every=10))
    with pytest.raises(FloatingPointError, match="non-finite loss .* at step 1"):
        train_stage("image", cfg, tmp_path, frames=Frames(x), progress=False)
    assert not (tmp_path / "state.safetensors").exists()


def test_alpha_lr_scale_speeds_up_the_blend_factors_only(tmp_path):
    """With ``alpha_lr_scale`` the Eq. 3 blend factors move ``scale`` times faster than at the UNet's rate (Adam's
    first step moves every parameter by about its learning rate), the other parameters as before."""
    videos = Frames(torch.from_numpy(moving_blob_videos(n=4, t=4, hw=8)))
    init = tmp_path / "image.safetensors"
    image = VideoUNet(UNetConfig(**{**TINY_UNET.__dict__, "temporal": False}))
    randomise(image, 0)  # a "trained" image prior: a fresh UNet's zero output layer passes no gradient back
    checkpoints.save(image, init)
    moved = {}
    for scale in (1.0, 50.0):
        sc = StageConfig(steps=1, batch_size=2, lr=1e-4, ema_decay=0.0, p_joint=1.0, alpha_lr_scale=scale)
        out = tmp_path / f"s{scale}"
        train_stage("video", PriorConfig(data=DataConfig(), unet=TINY_UNET, train_video=sc), out, videos=videos,
                    init_path=init, progress=False)
        net = checkpoints.load(out / "ema.safetensors")
        moved[scale] = max(abs(float(m.alpha)) for m in net.modules() if isinstance(m, TemporalBlend))
    assert moved[1.0] == pytest.approx(1e-4, rel=0.05)
    assert moved[50.0] == pytest.approx(5e-3, rel=0.05)
    with pytest.raises(ValueError, match="alpha_lr_scale"):
        StageConfig(alpha_lr_scale=0.0)


def test_wall_time_budget_stops_with_a_resumable_checkpoint(tmp_path):
    """``max_seconds`` stops after the step that uses it up (EMA written, checkpoint saved); ``--resume`` then
    finishes the same run bit-identically to an uninterrupted one (video stage on clips, random frame offsets)."""
    vids = Frames(torch.from_numpy(moving_blob_videos(n=4, t=6, hw=8)))
    sc = StageConfig(steps=4, batch_size=2, lr=2e-3, checkpoint_every=10, ema_decay=0.9, seed=3, p_joint=1.0)
    cfg = PriorConfig(data=DataConfig(clip_frames=4), unet=TINY_UNET, train_video=sc)
    init = tmp_path / "image.safetensors"
    checkpoints.save(VideoUNet(UNetConfig(**{**TINY_UNET.__dict__, "temporal": False})), init)
    kw = dict(videos=vids, init_path=init, progress=False)
    train_stage("video", cfg, tmp_path / "full", **kw)
    train_stage("video", cfg, tmp_path / "cut", max_seconds=1e-9, **kw)
    assert len(losses(tmp_path / "cut")) == 1 and (tmp_path / "cut" / "ema.safetensors").exists()
    train_stage("video", cfg, tmp_path / "cut", resume=True, **kw)
    assert losses(tmp_path / "cut") == losses(tmp_path / "full")
    a, b = load_file(tmp_path / "full" / "ema.safetensors"), load_file(tmp_path / "cut" / "ema.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="max_seconds"):
        train_stage("video", cfg, tmp_path / "bad", max_seconds=0, **kw)


def test_resume_drops_a_half_written_last_log_line(tmp_path):
    vids = Frames(torch.from_numpy(moving_blob_videos(n=4, t=4, hw=8)))
    sc = StageConfig(steps=4, batch_size=2, lr=2e-3, checkpoint_every=2, ema_decay=0.9, seed=3, p_joint=1.0)
    cfg = PriorConfig(unet=TINY_UNET, train_video=sc)
    init = tmp_path / "image.safetensors"
    checkpoints.save(VideoUNet(UNetConfig(**{**TINY_UNET.__dict__, "temporal": False})), init)
    kw = dict(videos=vids, init_path=init, progress=False)
    with pytest.raises(Crash):
        train_stage("video", cfg, tmp_path / "run", callback=_crash_at(3), **kw)
    with open(tmp_path / "run" / "log.jsonl", "a") as fh:
        fh.write('{"step": 4, "lo')  # the kill cut the last line short
    train_stage("video", cfg, tmp_path / "run", resume=True, **kw)
    assert [json.loads(ln)["step"] for ln in (tmp_path / "run" / "log.jsonl").read_text().splitlines()] == [1, 2, 3, 4]


def test_whitened_low_frequency_error_matches_numpy():
    g = np.random.default_rng(0)
    frames, x, rec = (g.random((n, 1, 8, 8)) for n in (16, 3, 3))
    k = np.fft.fftfreq(8) * 8
    keep = k[:, None] ** 2 + k[None, :] ** 2 <= 2.5**2
    power = (np.abs(np.fft.fft2(frames)) ** 2).mean(0)
    per_image = [(np.abs(np.fft.fft2(r - t)) ** 2 / power)[:, keep].sum() / keep.sum()
                 for r, t in zip(rec, x, strict=True)]
    expected = np.mean(per_image)
    assert torch.equal(low_frequency_mask(8, 8, 2.5), torch.from_numpy(keep))
    obj = DecoderObjective(FrameVAE(VAEConfig(channels=(8, 16))), mean_power(torch.from_numpy(frames)), 1.0, 2.5)
    got = whitened_error(torch.from_numpy(rec), torch.from_numpy(x), obj.fourier.whitening)
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_flux_normalised_whitened_error_matches_numpy_and_ignores_each_frames_scale():
    """``dc_power``: each frame's error times mean |F_0|^2 / its own |F(x)_0|^2 (floored), so scaling one frame and
    its reconstruction by any factor leaves its term unchanged (closure data are scale invariant)."""
    from common.training.objectives import FLUX_FLOOR

    g = np.random.default_rng(1)
    frames, x, rec = (g.random((n, 1, 8, 8)) for n in (16, 3, 3))
    x[2] *= 1e-3  # a frame below the flux floor
    rec[2] *= 1e-3
    power = mean_power(torch.from_numpy(frames))
    w = whitening_weights(power, 2.5)
    dc = power[:, 0, 0].float()
    plain = [float(whitened_error(torch.from_numpy(r[None]), torch.from_numpy(t[None]), w))
             for r, t in zip(rec, x, strict=True)]
    scale = [float(dc) / max(t.sum() ** 2, FLUX_FLOOR * float(dc)) for t in x]
    got = whitened_error(torch.from_numpy(rec), torch.from_numpy(x), w, dc)
    assert float(got) == pytest.approx(np.mean(np.multiply(plain, scale)), rel=1e-5)
    assert scale[2] == pytest.approx(1 / FLUX_FLOOR)
    c = torch.tensor([0.2, 5.0, 1.0])[:, None, None, None]  # frames 0 and 1 rescaled, both above the floor
    rescaled = whitened_error(c * torch.from_numpy(rec), c * torch.from_numpy(x), w, dc)
    assert float(rescaled) == pytest.approx(float(got), rel=1e-4)


def test_vae_stage_init_starts_from_the_given_vae(tmp_path):
    """``train vae --init``: the run starts from a trained VAE (a new objective on it), whose config must match."""
    from common.training.loop import _build

    cfg = PriorConfig(vae=VAEConfig(channels=(8, 16)))
    trained = FrameVAE(cfg.vae)
    randomise(trained, seed=3)
    checkpoints.save(trained, tmp_path / "vae.safetensors")
    started = _build("vae", cfg, tmp_path / "vae.safetensors", None)
    for name, value in trained.state_dict().items():
        assert torch.equal(started.state_dict()[name], value), name
    fresh = _build("vae", cfg, None, None)
    last = "decoder.layers.11.weight"
    assert not torch.equal(fresh.state_dict()[last], trained.state_dict()[last])
    with pytest.raises(ValueError, match="differs from the YAML"):
        _build("vae", dataclasses.replace(cfg, vae=VAEConfig(channels=(8, 8))), tmp_path / "vae.safetensors", None)
    with pytest.raises(FileNotFoundError, match="--init"):
        _build("vae", cfg, tmp_path / "missing.safetensors", None)
    with pytest.raises(ValueError, match="vae and video stages only"):
        _build("image", dataclasses.replace(cfg, unet=TINY_UNET), tmp_path / "vae.safetensors", None)
    # the decoder stage loads its VAE through the same check, naming --vae
    with pytest.raises(ValueError, match="--vae VAE checkpoint .* differs from the YAML"):
        _build("decoder", dataclasses.replace(cfg, vae=VAEConfig(channels=(8, 8))), None, tmp_path / "vae.safetensors")
    with pytest.raises(FileNotFoundError, match="--vae VAE checkpoint .* not found"):
        _build("decoder", cfg, None, tmp_path / "missing.safetensors")


def test_vae_objective_adds_the_weighted_whitened_error():
    """The vae stage's optional Fourier term: loss = Eq. 18 + weight x whitened error of the same reconstruction."""
    from common.nets.vae import kl_to_standard_normal
    from common.training.objectives import VAEObjective

    torch.manual_seed(0)
    vae = FrameVAE(VAEConfig(channels=(8, 16)))
    x, frames = torch.rand(3, 1, 8, 8), torch.rand(16, 1, 8, 8)
    eps = torch.randn(3, 1, 4, 4)
    power = mean_power(frames)
    loss, l1, kl, fourier = VAEObjective(vae, 1e-3, power, 0.5, 2.5)(x, eps)
    mean, logvar = vae.encode(x)
    rec = vae.decode(mean + (0.5 * logvar).exp() * eps)
    want_f = whitened_error(rec, x, whitening_weights(power, 2.5))
    want = (rec - x).abs().mean() + 1e-3 * kl_to_standard_normal(mean, logvar).mean() + 0.5 * want_f
    assert float(fourier) == pytest.approx(float(want_f), rel=1e-5)
    assert float(loss) == pytest.approx(float(want), rel=1e-5)
    plain = VAEObjective(vae, 1e-3)(x, eps)
    assert float(plain[3]) == 0.0 and float(plain[0]) == pytest.approx(float(want - 0.5 * want_f), rel=1e-5)
    with pytest.raises(ValueError, match="weight > 0"):
        VAEObjective(vae, 1e-3, power, 0.0)


@pytest.mark.slow
def test_decoder_stage_keeps_the_encoder_and_sharpens_the_round_trip(tmp_path):
    """The optional decoder fine-tune: encoder bit-identical (the diffusion stages' latent space), round trip sharper
    in the whitened low-frequency error it targets and in L1."""
    frames = blobs([(4 + k, 5 + 0.7 * k) for k in range(8)])
    sc = dict(batch_size=4, lr=3e-3, checkpoint_every=1000)
    cfg = PriorConfig(data=DataConfig(hflip=False, vflip=False), vae=VAEConfig(channels=(8, 16)),
                      train_vae=StageConfig(steps=40, beta_kl=1e-4, **sc),
                      train_decoder=StageConfig(steps=120, fourier_weight=1.0, fourier_radius=4.0, **sc))
    train_stage("vae", cfg, tmp_path / "vae", frames=Frames(frames), progress=False)
    train_stage("decoder", cfg, tmp_path / "decoder", frames=Frames(frames), progress=False,
                vae_path=tmp_path / "vae" / "ema.safetensors")
    before = checkpoints.load(tmp_path / "vae" / "ema.safetensors")
    after = checkpoints.load(tmp_path / "decoder" / "ema.safetensors")
    b, a = before.state_dict(), after.state_dict()
    assert all(torch.equal(b[k], a[k]) for k in b if k.startswith("encoder."))  # the latent space is the same
    assert any(not torch.equal(b[k], a[k]) for k in b if k.startswith("decoder."))
    w = DecoderObjective(before, mean_power(frames), 1.0, 4.0).fourier.whitening

    def round_trip_error(vae):
        with torch.no_grad():
            rec = vae.decode(vae.encode(frames)[0])
        return float((rec - frames).abs().mean()), float(whitened_error(rec, frames, w))

    (l1_b, f_b), (l1_a, f_a) = round_trip_error(before), round_trip_error(after)
    print(f"round trip before / after: L1 {l1_b:.4f} / {l1_a:.4f}, whitened {f_b:.4f} / {f_a:.4f}")
    assert f_a < 0.6 * f_b and l1_a < l1_b
    with pytest.raises(ValueError, match="no VAE to train"):
        train_stage("decoder", dataclasses.replace(cfg, vae=None), tmp_path / "pix", frames=Frames(frames),
                    progress=False)


def test_video_stage_init_continues_a_trained_video_unet(tmp_path):
    """``train video --init VIDEO``: a trained spatiotemporal UNet (a shipped prior) is continued as it is, temporal
    branches and blend factors included; an image UNet still starts fresh temporal branches."""
    from common.training.loop import _build

    cfg = PriorConfig(unet=TINY_UNET)
    trained = VideoUNet(TINY_UNET)
    randomise(trained, seed=4)
    checkpoints.save(trained, tmp_path / "video.safetensors")
    started = _build("video", cfg, tmp_path / "video.safetensors", None)
    assert started.state_dict().keys() == trained.state_dict().keys()
    for name, value in trained.state_dict().items():
        assert torch.equal(started.state_dict()[name], value), name
    other = dataclasses.replace(cfg, unet=dataclasses.replace(TINY_UNET, temporal_kernel=5))
    with pytest.raises(ValueError, match="video checkpoint .* different UNet config.*temporal_kernel"):
        _build("video", other, tmp_path / "video.safetensors", None)
    image = VideoUNet(dataclasses.replace(TINY_UNET, temporal=False))
    randomise(image, seed=5)
    checkpoints.save(image, tmp_path / "image.safetensors")
    fresh = _build("video", cfg, tmp_path / "image.safetensors", None)
    blends = [m.alpha for m in fresh.modules() if isinstance(m, TemporalBlend)]
    trained_blends = [m.alpha for m in started.modules() if isinstance(m, TemporalBlend)]
    assert blends and all(float(a.detach().abs().max()) == 0 for a in blends)
    assert any(float(a.detach().abs().max()) > 0 for a in trained_blends)
