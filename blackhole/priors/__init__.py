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

from importlib.resources import files
from pathlib import Path

from torch import nn

PRIOR_FILES = {"vae": "vae.safetensors", "image": "image.safetensors", "video": "video.safetensors"}


def default_prior_paths() -> dict[str, Path]:
    """Paths of the shipped checkpoints, keys ``vae``, ``image``, ``video``; FileNotFoundError names a missing one."""
    root = files(__name__)
    paths = {key: Path(str(root.joinpath(name))) for key, name in PRIOR_FILES.items()}
    for key, path in paths.items():
        if not path.is_file():
            raise FileNotFoundError(f"shipped black-hole prior: {key} checkpoint {path} is missing (the package "
                                    f"{__name__} should contain {sorted(PRIOR_FILES.values())}; reinstall stepvip)")
    return paths


def load_default_priors(map_location: str = "cpu") -> dict[str, nn.Module]:
    """The shipped ``FrameVAE`` (``vae``) and ``VideoUNet`` s (``image``, ``video``), float32, eval mode."""
    from common import checkpoints
    from common.nets.unet import VideoUNet
    from common.nets.vae import FrameVAE

    paths = default_prior_paths()
    return {key: checkpoints.load(path, map_location=map_location, expect=FrameVAE if key == "vae" else VideoUNet)
            for key, path in paths.items()}
