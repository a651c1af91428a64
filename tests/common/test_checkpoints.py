"""Checkpoints: safetensors + JSON config round trip, clear errors for mismatches and malformed files, no pickle."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from common.checkpoints import METADATA_KEY, CheckpointError, load, read_config, read_info, save
from common.nets import FrameVAE, UNetConfig, VAEConfig, VideoUNet

UNET = UNetConfig(in_channels=1, image_size=8, channels=(8, 16), attn_levels=(1,), temporal_attn_levels=(1,),
                  num_heads=2)


def _randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("model", [VideoUNet(UNET), FrameVAE(VAEConfig(channels=(8, 16)))])
def test_round_trip_rebuilds_module_and_weights(tmp_path, model):
    _randomise(model, 0)
    path = tmp_path / "m.safetensors"
    save(model, path)
    back = load(path)
    assert type(back) is type(model) and back.config == model.config and not back.training
    for (k, a), (k2, b) in zip(model.state_dict().items(), back.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)
    name, cfg = read_config(path)
    assert name == type(model).__name__ and cfg == model.config
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary file left behind
    if isinstance(model, VideoUNet):
        z = torch.randn(1, 3, 1, 8, 8)
        assert torch.equal(model.eval()(z, torch.tensor([1.0])), back(z, torch.tensor([1.0])))


def test_training_info_is_stored_beside_the_config_and_read_back(tmp_path):
    model = VideoUNet(UNET)
    plain, noted = tmp_path / "plain.safetensors", tmp_path / "noted.safetensors"
    save(model, plain)
    save(model, noted, dtype=torch.float16, info={"trained_frames": 64})
    assert read_info(plain) == {} and read_info(noted) == {"trained_frames": 64}
    assert read_config(noted) == read_config(plain) and load(noted).config == model.config
    with pytest.raises(CheckpointError, match="reserved keys \\['config'\\]"):
        save(model, tmp_path / "bad.safetensors", info={"config": {}})
    assert not (tmp_path / "bad.safetensors").exists()


def test_float16_save_halves_size_and_loads_back_as_float32(tmp_path):
    model = VideoUNet(UNET)
    _randomise(model, 1)
    full, half = tmp_path / "full.safetensors", tmp_path / "half.safetensors"
    save(model, full)
    save(model, half, dtype=torch.float16)
    with safe_open(str(half), framework="pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    assert half.stat().st_size < 0.55 * full.stat().st_size
    back = load(half)
    for k, v in back.state_dict().items():
        ref = model.state_dict()[k]
        assert v.dtype == torch.float32
        assert torch.equal(v, ref.to(torch.float16).float())  # exactly the float16 rounding of the original
    with pytest.raises(CheckpointError, match="floating dtype"):
        save(model, tmp_path / "bad.safetensors", dtype=torch.int8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.safetensors", "half.safetensors"]


def _rewrite_config(path, **changes):
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()[METADATA_KEY])
    meta["config"].update(changes)
    save_file(load_file(str(path)), str(path), metadata={METADATA_KEY: json.dumps(meta)})


def test_mismatched_config_names_file_and_tensors(tmp_path):
    path = tmp_path / "unet.safetensors"
    save(VideoUNet(UNET), path)
    _rewrite_config(path, channels=[8, 32])
    with pytest.raises(CheckpointError) as exc:
        load(path)
    msg = str(exc.value)
    assert str(path) in msg and "wrong shape" in msg and "expected" in msg
    _rewrite_config(path, channels=[8, 16], temporal=False)  # temporal tensors present but not in the config
    with pytest.raises(CheckpointError, match=r"unexpected.*tconv"):
        load(path)


def test_unknown_config_key_and_class(tmp_path):
    path = tmp_path / "vae.safetensors"
    save(FrameVAE(VAEConfig(channels=(8, 16))), path)
    _rewrite_config(path, widths=[1])
    with pytest.raises(CheckpointError, match=r"unknown key\(s\) \['widths'\]"):
        load(path)
    other = tmp_path / "vae2.safetensors"
    save(FrameVAE(VAEConfig(channels=(8, 16))), other)
    with pytest.raises(CheckpointError, match="holds a FrameVAE, expected a VideoUNet"):
        load(other, expect=VideoUNet)
    with safe_open(str(other), framework="pt") as f:
        meta = json.loads(f.metadata()[METADATA_KEY])
    meta["class"] = "Pickled"
    save_file(load_file(str(other)), str(other), metadata={METADATA_KEY: json.dumps(meta)})
    with pytest.raises(CheckpointError, match="unknown model class 'Pickled'"):
        load(other)


def test_malformed_and_missing_files(tmp_path):
    with pytest.raises(CheckpointError, match="file not found"):
        load(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load(bad)
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="no 'stepvip' metadata"):
        load(plain)


def test_save_rejects_unknown_module(tmp_path):
    with pytest.raises(CheckpointError, match="unsupported module type Linear"):
        save(torch.nn.Linear(2, 2), tmp_path / "x.safetensors")


def test_config_is_checked_before_any_module_is_built(tmp_path, monkeypatch):
    """A small file whose config asks for a huge network is refused on the meta device (no allocation); deeply
    nested metadata is a CheckpointError, not a RecursionError."""
    path = tmp_path / "unet.safetensors"
    save(VideoUNet(UNET), path)
    built = []
    monkeypatch.setattr(VideoUNet, "__init__", _recording_init(VideoUNet.__init__, built))
    _rewrite_config(path, channels=[200_000, 200_000])
    with pytest.raises(CheckpointError, match="parameters"):
        load(path)
    assert all(d == "meta" for d in built)  # only meta skeletons were made
    _rewrite_config(path, channels=[8, 32])
    with pytest.raises(CheckpointError, match="wrong shape"):
        load(path)
    assert all(d == "meta" for d in built)
    nested = "[" * 100_000 + "]" * 100_000
    save_file(load_file(str(path)), str(path), metadata={METADATA_KEY: '{"class": "VideoUNet", "config": ' + nested
                                                          + "}"})
    with pytest.raises(CheckpointError, match="malformed|invalid config"):
        load(path)


def _recording_init(init, built):
    def wrapped(self, *args, **kwargs):
        built.append(torch.empty(0).device.type)  # the default device while the module is being built
        init(self, *args, **kwargs)
    return wrapped
