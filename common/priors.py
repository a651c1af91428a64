"""Where a domain package keeps its shipped prior, and how to load one.

A shipped prior is a package folder (e.g. ``blackhole/priors``) holding three ``common.checkpoints`` files:
``vae.safetensors`` (``FrameVAE``), ``image.safetensors`` (image ``VideoUNet`` = the IDM prior) and
``video.safetensors`` (spatiotemporal ``VideoUNet`` = the STeP prior).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from torch import nn

PRIOR_FILES = {"vae": "vae.safetensors", "image": "image.safetensors", "video": "video.safetensors"}


def packaged_prior_paths(package: str, label: str) -> dict[str, Path]:
    """Paths of the checkpoints shipped in ``package``, keys ``vae``, ``image``, ``video``.

    ``label`` names the prior in errors; a missing file raises ``FileNotFoundError`` naming it.
    """
    root = files(package)
    paths = {key: Path(str(root.joinpath(name))) for key, name in PRIOR_FILES.items()}
    for key, path in paths.items():
        if not path.is_file():
            raise FileNotFoundError(f"shipped {label} prior: {key} checkpoint {path} is missing (the package "
                                    f"{package} should contain {sorted(PRIOR_FILES.values())}; reinstall stepvip)")
    return paths


def load_prior_modules(paths: dict[str, Path], map_location: str = "cpu") -> dict[str, nn.Module]:
    """Load ``{vae, image, video}`` checkpoints: a ``FrameVAE`` and two ``VideoUNet`` s, float32, eval mode."""
    from common import checkpoints
    from common.nets.unet import VideoUNet
    from common.nets.vae import FrameVAE

    return {key: checkpoints.load(path, map_location=map_location, expect=FrameVAE if key == "vae" else VideoUNet)
            for key, path in paths.items()}
