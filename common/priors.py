"""Where a domain package keeps its shipped prior, and how to load one.

A shipped prior is a package folder (e.g. ``blackhole/priors``) holding ``common.checkpoints`` files:
``image.safetensors`` (image ``VideoUNet`` = the IDM prior), ``video.safetensors`` (spatiotemporal ``VideoUNet`` =
the STeP prior) and, for a latent prior (paper Sec. 3.3), ``vae.safetensors`` (``FrameVAE``). A folder without
``vae.safetensors`` is a pixel-space prior: the UNets work on the frames themselves.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from torch import nn

PRIOR_FILES = {"vae": "vae.safetensors", "image": "image.safetensors", "video": "video.safetensors"}
REQUIRED = ("image", "video")  # the VAE is optional: without it the prior is in pixel space


def packaged_prior_paths(package: str, label: str) -> dict[str, Path]:
    """Paths of the checkpoints shipped in ``package``: keys ``image``, ``video`` and ``vae`` when one is shipped.

    ``label`` names the prior in errors; a missing UNet file raises ``FileNotFoundError`` naming it.
    """
    root = files(package)
    paths = {key: Path(str(root.joinpath(name))) for key, name in PRIOR_FILES.items()}
    for key in REQUIRED:
        if not paths[key].is_file():
            raise FileNotFoundError(f"shipped {label} prior: {key} checkpoint {paths[key]} is missing (the package "
                                    f"{package} should contain {[PRIOR_FILES[k] for k in REQUIRED]}; reinstall "
                                    "stepvip)")
    return {k: p for k, p in paths.items() if k in REQUIRED or p.is_file()}


def load_prior_modules(paths: dict[str, Path], map_location: str = "cpu") -> dict[str, nn.Module]:
    """Load ``{image, video[, vae]}`` checkpoints: two ``VideoUNet`` s (and a ``FrameVAE``), float32, eval mode."""
    from common import checkpoints
    from common.nets.unet import VideoUNet
    from common.nets.vae import FrameVAE

    return {key: checkpoints.load(path, map_location=map_location, expect=FrameVAE if key == "vae" else VideoUNet)
            for key, path in paths.items()}
