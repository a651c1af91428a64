"""Shipped cardiac-cine prior (trained on synthetic multi-coil cine; see ``PROVENANCE.md`` beside this file).

Two ``common.checkpoints`` files (float16 safetensors + JSON config, loaded back as float32), a pixel-space prior
(no VAE, so nothing caps what a sample can be):

* ``image.safetensors``: image ``VideoUNet`` (``temporal=False``) on frames ``[B, T, 2, 64, 64]`` (real, imag of the
  complex image divided by the 99th percentile of its magnitude over the video, ``cardiac_mri.images``), folded
  into 4x4 patches (``unet.patch``): the IDM prior;
* ``video.safetensors``: spatiotemporal ``VideoUNet`` (STeP), fine-tuned from the image prior on 12-frame videos.

Both UNets are EDM-preconditioned denoisers ``unet(z, sigma, video=...) -> z0_hat``.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from common.priors import PRIOR_FILES, load_prior_modules, packaged_prior_paths

__all__ = ["PRIOR_FILES", "default_prior_paths", "load_default_priors"]


def default_prior_paths() -> dict[str, Path]:
    """Paths of the shipped checkpoints, keys ``image``, ``video``; FileNotFoundError names a missing one."""
    return packaged_prior_paths(__name__, "cardiac-cine")


def load_default_priors(map_location: str = "cpu") -> dict[str, nn.Module]:
    """The shipped ``VideoUNet`` s (``image``, ``video``), float32, eval mode."""
    return load_prior_modules(default_prior_paths(), map_location)
