"""Prior networks: image mode is per-frame, the temporal branches start as the identity of Eq. 3, image weights
carry over to the spatiotemporal UNet, the VAE is per-frame, and the paper-scale configs build."""

from pathlib import Path

import pytest
import torch

from common.checkpoints import load, save
from common.denoisers import EDMPrecond
from common.nets import FrameVAE, UNetConfig, VAEConfig, VideoUNet, count_parameters
from common.nets.temporal import TemporalAttention, TemporalBlend, TemporalConv, frame_offset
from common.training.config import load_prior_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY = UNetConfig(in_channels=2, image_size=8, channels=(8, 16), attn_levels=(1,), temporal_attn_levels=(1,),
                  num_heads=2)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def randomise(model: torch.nn.Module, seed: int, temporal: bool = True, spatial: bool = True) -> None:
    """Overwrite parameters with random values (also the zero-initialised ones), as after training."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            is_t = ".tconv." in name or ".tattn." in name
            if (is_t and temporal) or (not is_t and spatial):
                p.copy_(0.2 * torch.randn(p.shape, generator=g))


def inputs(b=2, t=5, c=2, hw=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, c, hw, hw, generator=g), torch.tensor([0.3, 4.0])[:b]


def test_image_mode_is_strictly_per_frame():
    model = VideoUNet(TINY)
    randomise(model, 1)  # temporal branches active (alpha != 0) in video mode
    z, sigma = inputs()
    out = model(z, sigma, video=False)
    for t in range(z.shape[1]):
        single = model(z[:, t:t + 1], sigma, video=False)
        torch.testing.assert_close(out[:, t:t + 1], single, rtol=1e-5, atol=1e-6)
    z2 = z.clone()
    z2[:, 3] += 1.0  # change one frame: image mode leaves the others untouched, video mode does not
    out2 = model(z2, sigma, video=False)
    assert torch.equal(out2[:, :3], out[:, :3]) and torch.equal(out2[:, 4:], out[:, 4:])
    video_diff = (model(z2, sigma, video=True) - model(z, sigma, video=True))[:, 0].abs().max()
    assert video_diff > 1e-4


def test_fresh_spatiotemporal_unet_equals_its_image_mode():
    model = VideoUNet(TINY)
    randomise(model, 2, temporal=False)  # trained-looking spatial weights, fresh temporal branches
    z, sigma = inputs()
    assert torch.equal(model(z, sigma, video=True), model(z, sigma, video=False))
    for m in model.modules():  # negative control: a non-zero alpha makes the branches act
        if isinstance(m, TemporalBlend):
            m.alpha.data.fill_(0.5)
    assert not torch.allclose(model(z, sigma, video=True), model(z, sigma, video=False))


def test_temporal_branches_receive_gradient_at_initialisation():
    model = VideoUNet(TINY)
    randomise(model, 3, temporal=False)
    z, sigma = inputs()
    model(z, sigma).square().sum().backward()
    alphas = [m.alpha.grad for m in model.modules() if isinstance(m, TemporalBlend)]
    assert alphas and all(a is not None and a.abs().item() > 0 for a in alphas)


def test_image_checkpoint_in_spatiotemporal_unet_reproduces_image_unet(tmp_path):
    image = VideoUNet(UNetConfig(**{**TINY.__dict__, "temporal": False}))
    assert count_parameters(image, temporal=True) == 0
    randomise(image, 4)
    save(image, tmp_path / "image.safetensors")
    video = VideoUNet.from_image_unet(load(tmp_path / "image.safetensors"))
    assert video.config.temporal and count_parameters(video, temporal=True) > 0
    z, sigma = inputs(t=6)
    out = video(z, sigma, video=True)
    for t in range(z.shape[1]):
        ref = image(z[:, t:t + 1], sigma, video=False)
        torch.testing.assert_close(out[:, t:t + 1], ref, rtol=1e-5, atol=1e-6)


def test_from_image_unet_rejects_spatial_changes():
    image = VideoUNet(UNetConfig(**{**TINY.__dict__, "temporal": False}))
    with pytest.raises(ValueError, match="only temporal fields"):
        VideoUNet.from_image_unet(image, channels=(8, 32))


def test_videounet_is_edm_precond_of_backbone():
    model = VideoUNet(TINY)
    randomise(model, 5)
    assert isinstance(model.precond, EDMPrecond)
    z, sigma = inputs()
    sd = TINY.sigma_data
    s = sigma.reshape(-1, 1, 1, 1, 1)
    raw = model.precond.net(z / (s**2 + sd**2).sqrt(), sigma.log() / 4, video=True)
    expect = sd**2 / (s**2 + sd**2) * z + s * sd / (s**2 + sd**2).sqrt() * raw
    torch.testing.assert_close(model(z, sigma), expect)


def test_videounet_input_errors():
    model = VideoUNet(TINY)
    with pytest.raises(ValueError, match=r"\[B, T, 2, H, W\]"):
        model(torch.zeros(1, 3, 1, 8, 8), torch.ones(1))
    with pytest.raises(ValueError, match="divisible"):
        model(torch.zeros(1, 3, 2, 7, 7), torch.ones(1))
    with pytest.raises(ValueError, match="sigma"):
        model(torch.zeros(2, 3, 2, 8, 8), torch.ones(3))


def test_temporal_conv_mixes_only_within_a_video():
    branch = TemporalConv(4, 3)
    randomise(branch, 6)
    f = torch.randn(2 * 5, 4, 3, 3)
    f2 = f.clone()
    f2[7] += 1.0  # a frame of the second video
    d = (branch(f2, 5) - branch(f, 5)).abs().amax(dim=(1, 2, 3))
    assert torch.all(d[:5] == 0) and d[6:9].min() > 0  # neighbours within the same video change


def test_vae_is_per_frame_and_downsamples():
    vae = FrameVAE(VAEConfig(in_channels=2, latent_channels=3, channels=(8, 16, 16)))
    assert vae.config.downsampling == 4
    randomise(vae, 7)
    x = torch.randn(2, 3, 2, 16, 16)
    mean, logvar = vae.encode(x)
    assert mean.shape == logvar.shape == (2, 3, 3, 4, 4)
    m1, _ = vae.encode(x[1, 2])  # a single frame [C, H, W]
    torch.testing.assert_close(mean[1, 2], m1, rtol=1e-5, atol=1e-6)
    assert vae.decode(mean).shape == x.shape
    with pytest.raises(ValueError, match="FrameVAE.encode"):
        vae.encode(torch.zeros(1, 1, 16, 16))


def test_channelwise_vae_encodes_each_channel_with_the_same_network():
    cfg = VAEConfig(in_channels=2, latent_channels=2, channels=(8, 16), channelwise=True)
    vae = FrameVAE(cfg)
    randomise(vae, 3)
    x = torch.randn(3, 2, 2, 16, 16)  # [B, T, (real, imag), H, W]
    mean, logvar = vae.encode(x)
    assert mean.shape == logvar.shape == (3, 2, 2, 8, 8)
    swapped, _ = vae.encode(x.flip(2))  # exchanging real and imag exchanges the latent channels
    torch.testing.assert_close(swapped, mean.flip(2), rtol=1e-5, atol=1e-6)
    out = vae.decode(mean)
    assert out.shape == x.shape
    torch.testing.assert_close(vae.decode(mean.flip(2)), out.flip(2), rtol=1e-5, atol=1e-6)
    one = vae.decode(mean[:, :, :1].expand(-1, -1, 2, -1, -1))  # both channels from the same latent: equal outputs
    torch.testing.assert_close(one[:, :, 0], one[:, :, 1])
    with pytest.raises(ValueError, match="divisible"):
        VAEConfig(in_channels=2, latent_channels=3, channelwise=True)


@pytest.mark.parametrize("name", ["prior_bh.yaml", "prior_mri.yaml", "prior_bh_tiny.yaml", "prior_mri_tiny.yaml",
                                  "prior_bh_pixel_tiny.yaml", "prior_bh_pixel_ship.yaml",
                                  "prior_mri_pixel_ship.yaml"])
def test_shipped_configs_load(name):
    cfg = load_prior_config(CONFIGS / name)
    assert cfg.unet.temporal


def test_paper_scale_parameter_counts():
    """Table 4: 14.8M (BH VAE), 57.5M (MRI VAE), 131.7M (UNet); ours within 5 %."""
    bh, mri = load_prior_config(CONFIGS / "prior_bh.yaml"), load_prior_config(CONFIGS / "prior_mri.yaml")
    with torch.device("meta"):
        counts = {
            "bh_vae": count_parameters(FrameVAE(bh.vae)),
            "mri_vae": count_parameters(FrameVAE(mri.vae)),
            "bh_unet": count_parameters(VideoUNet(bh.unet)),
            "mri_unet": count_parameters(VideoUNet(mri.unet)),
        }
    table4 = {"bh_vae": 14.8e6, "mri_vae": 57.5e6, "bh_unet": 131.7e6, "mri_unet": 131.7e6}
    for k, ref in table4.items():
        assert abs(counts[k] / ref - 1) < 0.05, (k, counts[k])
    assert bh.vae.downsampling == 8 and mri.vae.downsampling == 4


def test_patched_unet_is_per_pixel_exact_and_per_frame_in_image_mode():
    """``patch=2``: the network sees 2x2 pixel patches as channels; the output keeps the pixel grid, every output
    pixel depends on the input through the patch fold only (moving one pixel changes its patch's output)."""
    cfg = UNetConfig(in_channels=1, image_size=16, channels=(8, 16), attn_levels=(1,), temporal_attn_levels=(1,),
                     num_heads=2, patch=2)
    model = VideoUNet(cfg)
    randomise(model, 3)
    z = torch.randn(2, 4, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.3, 2.0])
    out = model(z, sigma, video=False)
    assert out.shape == z.shape
    torch.testing.assert_close(model(z[:, 1:2], sigma, video=False), out[:, 1:2], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="divisible"):
        model(torch.zeros(1, 2, 1, 14, 14), 1.0)  # 14 is not a multiple of patch * 2
    with pytest.raises(ValueError, match="patch"):
        UNetConfig(patch=0)


def test_frame_offset_shifts_the_attention_encoding_and_is_restored():
    """Numbering a clip from ``k`` changes what the attention sees; leaving the context restores frame 0."""
    attn = TemporalAttention(8, 2, max_frames=64)
    randomise(attn, 4)
    f = torch.randn(2 * 5, 8, 3, 3, generator=torch.Generator().manual_seed(1))
    plain = attn(f, 5)
    with frame_offset(attn, 7):
        shifted = attn(f, 5)
    assert attn.frame_offset == 0 and not torch.allclose(plain, shifted)
    torch.testing.assert_close(attn(f, 5), plain)
