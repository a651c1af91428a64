"""Shipped black-hole prior (trained on synthetic Sgr A*-like movies; see ``PROVENANCE.md`` beside this file).

Three ``common.checkpoints`` files (float16 safetensors + JSON config, loaded back as float32):

* ``vae.safetensors``: ``FrameVAE``, frames ``[1, 64, 64]`` (pixels = Jy/pixel divided by the movie's maximum,
  ``blackhole.movies`` "max" convention) <-> latents ``[1, 16, 16]``;
* ``image.safetensors``: image ``VideoUNet`` (``temporal=False``) on latents ``[B, T, 1, 16, 16]``: the IDM prior;
* ``video.safetensors``: spatiotemporal ``VideoUNet`` (STeP), fine-tuned from the image prior on whole 64-frame
  movies (the frame count of the EHT 2017 Sgr A* track).

Both UNets are EDM-preconditioned denoisers ``unet(z, sigma, video=...) -> z0_hat``.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from common.priors import PRIOR_FILES, load_prior_modules, packaged_prior_paths

__all__ = ["PRIOR_FILES", "default_prior_paths", "load_default_priors"]


def default_prior_paths() -> dict[str, Path]:
    """Paths of the shipped checkpoints, keys ``vae``, ``image``, ``video``; FileNotFoundError names a missing one."""
    return packaged_prior_paths(__name__, "black-hole")


def load_default_priors(map_location: str = "cpu") -> dict[str, nn.Module]:
    """The shipped ``FrameVAE`` (``vae``) and ``VideoUNet`` s (``image``, ``video``), float32, eval mode."""
    return load_prior_modules(default_prior_paths(), map_location)
