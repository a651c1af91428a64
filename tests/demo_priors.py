"""Throwaway priors for the demo tests: untrained networks built from a prior config, saved as checkpoints."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from common import checkpoints
from common.nets.unet import VideoUNet
from common.nets.vae import FrameVAE
from common.training.config import load_prior_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def make_untrained_prior(config: str, out: Path, seed: int = 0, vae_overrides: dict | None = None,
                         unet_overrides: dict | None = None) -> Path:
    """Write ``out/{vae,image,video}.safetensors`` built from ``configs/<config>`` (weights from ``seed``); a
    pixel-space config (``vae: null``) gets no ``vae.safetensors``.

    Zero-initialised layers (the UNet output layer, temporal branch outputs) get small random weights so that the
    image and the video prior are different, non-trivial denoisers.
    """
    cfg = load_prior_config(CONFIGS / config)
    vae_cfg = None if cfg.vae is None else dataclasses.replace(cfg.vae, **(vae_overrides or {}))
    unet_cfg = dataclasses.replace(cfg.unet, **(unet_overrides or {}))
    out.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng():  # seeded initialisation without touching the caller's RNG state
        torch.manual_seed(seed)
        vae = None if vae_cfg is None else FrameVAE(vae_cfg)
        image, video = VideoUNet(dataclasses.replace(unet_cfg, temporal=False)), VideoUNet(unet_cfg)
        with torch.no_grad():
            for net in (image, video):
                for p in net.parameters():
                    if p.ndim > 1 and not bool(p.any()):
                        p.normal_(0.0, 0.02)
    if vae is not None:
        checkpoints.save(vae, out / "vae.safetensors")
    checkpoints.save(image, out / "image.safetensors")
    with torch.no_grad():  # temporal blend alpha starts at 0; open it so the video prior differs from the image one
        for name, p in video.named_parameters():
            if "alpha" in name:
                p.fill_(0.3)
    checkpoints.save(video, out / "video.safetensors")
    return out
