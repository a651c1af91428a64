"""Shipped black-hole prior (trained on synthetic Sgr A*-like movies; see ``PROVENANCE.md`` beside this file).

Three ``common.checkpoints`` files (float16 safetensors + JSON config, loaded back as float32):

* ``vae.safetensors``: ``FrameVAE``, frames ``[1, 64, 64]`` (pixels = Jy/pixel divided by the movie's maximum,
  ``blackhole.movies`` "max" convention) <-> latents ``[1, 16, 16]``;
* ``image.safetensors``: image ``VideoUNet`` (``temporal=False``) on latents ``[B, T, 1, 16, 16]``: the IDM prior;
* ``video.safetensors``: spatiotemporal ``VideoUNet`` (STeP), fine-tuned from the image prior on 16-frame clips of
  64-frame movies (random frame offsets, so it is used on whole 64-frame movies: the frame count of the EHT 2017
  Sgr A* track), temporal attention at every level.

Both UNets are EDM-preconditioned denoisers ``unet(z, sigma, video=...) -> z0_hat``.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from common.priors import PRIOR_FILES, load_prior_modules, packaged_prior_paths

__all__ = ["PRIOR_FILES", "default_prior_paths", "load_default_priors", "prior_frames"]


def default_prior_paths() -> dict[str, Path]:
    """Paths of the shipped checkpoints, keys ``vae``, ``image``, ``video``; FileNotFoundError names a missing one."""
    return packaged_prior_paths(__name__, "black-hole")


def load_default_priors(map_location: str = "cpu") -> dict[str, nn.Module]:
    """The shipped ``FrameVAE`` (``vae``) and ``VideoUNet`` s (``image``, ``video``), float32, eval mode."""
    return load_prior_modules(default_prior_paths(), map_location)


def prior_frames(video_checkpoint: str | Path) -> tuple[int, str]:
    """``(frames, where the number came from)``: the movie length a black-hole video prior was trained for, the
    frame count ``stepvip blackhole reconstruct`` bins an observation into by default.

    Read from the checkpoint's ``stepvip`` metadata key ``trained_frames`` when the training wrote one; otherwise
    the length of the synthetic training movies every black-hole prior config trains on
    (``blackhole.synthetic.MovieGeometry.frames``, 64 = the 102 s frames of the EHT 2017 Sgr A* track), the one
    place that number is written down.
    """
    from blackhole.synthetic import MovieGeometry
    from common.checkpoints import read_info

    frames = read_info(video_checkpoint).get("trained_frames")
    if isinstance(frames, int) and frames > 0:
        return frames, f"trained_frames of {video_checkpoint}"
    return MovieGeometry().frames, "the length of the synthetic training movies (MovieGeometry.frames)"
