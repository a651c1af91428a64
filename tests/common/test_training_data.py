"""Training data: array files (.npy, HDF5), the image set, seeded batches and augmentation, config loading."""

import h5py
import numpy as np
import pytest
import torch

from common.training.config import load_prior_config
from common.training.data import (
    ArrayFrames,
    ArrayVideos,
    FramesOfVideos,
    augment,
    draw_batch,
    draw_pseudo_videos,
    image_set,
    random_clip,
)


def _videos(n=3, t=4, c=2, hw=8):
    return np.arange(n * t * c * hw * hw, dtype=np.float32).reshape(n, t, c, hw, hw)


def test_npy_and_hdf5_videos_read_the_same(tmp_path):
    v = _videos()
    np.save(tmp_path / "v.npy", v)
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f["videos"] = v
    a, b = ArrayVideos(tmp_path / "v.npy"), ArrayVideos(tmp_path / "v.h5")
    assert len(a) == len(b) == 3
    assert torch.equal(a[2], torch.from_numpy(v[2])) and torch.equal(b[2], a[2]) and a[2].dtype == torch.float32


def test_bad_array_files_name_the_file(tmp_path):
    np.save(tmp_path / "wrong.npy", np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"wrong.npy: videos must have shape \[N, T, C, H, W\], found shape"):
        ArrayVideos(tmp_path / "wrong.npy")
    np.save(tmp_path / "int.npy", np.zeros((2, 1, 4, 4), np.int64))
    with pytest.raises(ValueError, match="int.npy: frames must be floating point"):
        ArrayFrames(tmp_path / "int.npy")
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["other"] = np.zeros(3)
    with pytest.raises(KeyError, match=r"x.h5: HDF5 file has no dataset 'videos'"):
        ArrayVideos(tmp_path / "x.h5")
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        ArrayVideos(tmp_path / "missing.npy")
    (tmp_path / "v.txt").write_text("1")
    with pytest.raises(ValueError, match="unsupported suffix"):
        ArrayVideos(tmp_path / "v.txt")


def test_image_set_is_all_frames_plus_extra_images(tmp_path):
    v = _videos()
    np.save(tmp_path / "v.npy", v)
    extra = np.full((2, 2, 8, 8), -1.0, np.float32)
    np.save(tmp_path / "f.npy", extra)
    vids = ArrayVideos(tmp_path / "v.npy")
    fov = FramesOfVideos(vids)
    assert len(fov) == 12 and torch.equal(fov[6], torch.from_numpy(v[1, 2]))
    imgs = image_set(vids, ArrayFrames(tmp_path / "f.npy"))
    assert len(imgs) == 14 and torch.equal(imgs[13], torch.from_numpy(extra[1]))
    with pytest.raises(ValueError, match="neither"):
        image_set(None, None)


def test_batches_are_seeded_and_pseudo_videos_mix_images(tmp_path):
    np.save(tmp_path / "v.npy", _videos(n=5))
    vids = ArrayVideos(tmp_path / "v.npy")
    b1 = draw_batch(vids, 3, torch.Generator().manual_seed(4))
    b2 = draw_batch(vids, 3, torch.Generator().manual_seed(4))
    assert b1.shape == (3, 4, 2, 8, 8) and torch.equal(b1, b2)
    pv = draw_pseudo_videos(FramesOfVideos(vids), 2, 6, torch.Generator().manual_seed(0))
    assert pv.shape == (2, 6, 2, 8, 8)
    frame_ids = (pv[:, :, 0, 0, 0] // (2 * 64)).flatten()  # global frame index of each pseudo frame
    assert len(set(frame_ids.tolist())) > 3  # frames come from many different places
    clip = random_clip(b1, 2, torch.Generator().manual_seed(1))
    assert clip.shape == (3, 2, 2, 8, 8)
    start = int((clip[0, 0, 0, 0, 0] - b1[0, 0, 0, 0, 0]) // (2 * 64))
    assert torch.equal(clip[0], b1[0, start:start + 2])


def test_augment_transforms_all_frames_of_a_video_alike():
    g = torch.Generator().manual_seed(0)
    base = torch.rand(1, 1, 16, 16)
    video = base.expand(4, 3, 1, 16, 16).clone()
    out = augment(video, g, hflip=True, vflip=True, zoom=0.3)
    assert out.shape == video.shape
    for b in range(4):
        assert torch.allclose(out[b, 0], out[b, 2])  # same transform on every frame
    assert not torch.allclose(out[0], out[1]) or not torch.allclose(out[2], out[3])  # different per sample
    flip_only = augment(video, torch.Generator().manual_seed(0), hflip=True, vflip=False, zoom=0.0)
    for b in range(4):
        assert torch.equal(flip_only[b], video[b]) or torch.equal(flip_only[b], video[b].flip(-1))
    ident = augment(video, g, hflip=False, vflip=False, zoom=0.0)
    assert torch.equal(ident, video)
    one = torch.zeros(1, 1, 9, 9)
    one[0, 0, 4, 4] = 1.0  # zooming keeps the centre pixel where it is
    z = augment(one, torch.Generator().manual_seed(3), hflip=False, vflip=False, zoom=0.5)
    assert z[0, 0].argmax() == 4 * 9 + 4


def test_phase_rotation_is_one_global_phase_per_video():
    g = torch.Generator().manual_seed(0)
    video = torch.randn(5, 3, 2, 8, 8, dtype=torch.float64)
    out = augment(video, g, hflip=False, vflip=False, phase_rotation=True)
    zin = torch.complex(video[:, :, 0], video[:, :, 1])
    zout = torch.complex(out[:, :, 0], out[:, :, 1])
    ratio = zout / zin  # exp(i theta_b): unit modulus, the same at every pixel of every frame of sample b
    assert torch.allclose(ratio.abs(), torch.ones_like(ratio.abs()))
    assert torch.allclose(ratio, ratio[:, :1, :1, :1].expand_as(ratio))
    angles = ratio[:, 0, 0, 0].angle()
    assert angles.std() > 0.3  # different samples get different phases
    with pytest.raises(ValueError, match="2-channel"):
        augment(torch.zeros(2, 1, 8, 8), g, phase_rotation=True)


def test_yaml_unknown_key_names_file(tmp_path):
    cfg = tmp_path / "p.yaml"
    cfg.write_text("unet: {in_channels: 1, widths: [3]}\n")
    with pytest.raises(ValueError, match=r"p.yaml: unet: unknown key\(s\) \['widths'\]"):
        load_prior_config(cfg)
    cfg.write_text("train_video: {p_joint: 2.0}\n")
    with pytest.raises(ValueError, match="p.yaml.*p_joint"):
        load_prior_config(cfg)
    cfg.write_text("vae: {latent_channels: 2}\nunet: {in_channels: 1}\n")
    with pytest.raises(ValueError, match="must equal vae.latent_channels"):
        load_prior_config(cfg)
