"""The networks of a STeP prior (per-frame VAE or none, image UNet = IDM, video UNet = STeP) and how to load them.

:func:`resolve_prior_paths` finds the checkpoint files (a ``--prior`` folder, single-file overrides or the shipped
prior), :func:`load_priors` loads and cross-checks them into a :class:`Priors`. Without ``vae.safetensors`` the prior
is in pixel space: :meth:`Priors.encode` / :meth:`Priors.decode` are then the identity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from common import checkpoints
from common.nets.unet import VideoUNet
from common.nets.vae import FrameVAE
from common.priors import PRIOR_FILES, REQUIRED
from common.recon.errors import DemoError

PRIOR_KEYS = tuple(PRIOR_FILES)  # ("vae", "image", "video")


@dataclass
class Priors:
    """The networks of a STeP prior and the files they came from; ``vae`` is None for a pixel-space prior."""

    vae: FrameVAE | None
    image: VideoUNet
    video: VideoUNet
    paths: dict[str, str]

    @property
    def latent_factor(self) -> int:
        """Spatial downsampling from frames to the UNets' grid (1 in pixel space)."""
        return 1 if self.vae is None else self.vae.config.downsampling

    @property
    def frame_channels(self) -> int:
        """Channels ``C`` of the frames the prior describes (1 black hole; 2 = real, imag for MRI)."""
        return self.image.config.in_channels if self.vae is None else self.vae.config.in_channels

    @property
    def device(self) -> torch.device:
        return next(self.image.parameters()).device

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Frames ``[B, T, C, H, W]`` -> the UNets' representation (VAE mean, or the frames themselves)."""
        return x if self.vae is None else self.vae.encode(x)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The UNets' representation -> frames (VAE decoder, or the identity)."""
        return z if self.vae is None else self.vae.decode(z)


def resolve_prior_paths(prior_dir: str | Path | None, overrides: dict[str, str | Path | None],
                        default: Callable[[], dict]) -> dict[str, Path]:
    """Checkpoint paths: ``prior_dir/{image,video[,vae]}.safetensors``, else the shipped ones from ``default()``;
    single files in ``overrides`` replace either. A folder without ``vae.safetensors`` is a pixel-space prior (no
    ``vae`` key). Every path given must exist (``DemoError`` names the missing one); nothing falls back to another
    prior."""
    chosen = {k: Path(v) for k, v in overrides.items() if v is not None}
    if prior_dir is not None:
        d = Path(prior_dir)
        if not d.is_dir():
            raise DemoError(f"--prior {d}: no such folder (expected one holding image.safetensors, "
                            "video.safetensors and, for a latent prior, vae.safetensors)")
        base = {k: d / f"{k}.safetensors" for k in PRIOR_KEYS if k in REQUIRED or (d / f"{k}.safetensors").is_file()}
    elif all(k in chosen for k in REQUIRED):
        base = {}
    else:
        try:
            base = {k: Path(v) for k, v in default().items()}
        except (ImportError, FileNotFoundError) as exc:
            raise DemoError(f"the shipped prior is not available ({exc}); pass --prior DIR holding "
                            "image.safetensors, video.safetensors [, vae.safetensors] "
                            "(or --image/--video [--vae])") from exc
    paths = {**base, **chosen}
    for k in PRIOR_KEYS:
        if k not in paths:
            if k not in REQUIRED:
                continue
            raise DemoError(f"prior checkpoint {k!r} not given")
        if not paths[k].is_file():
            raise DemoError(f"prior {k} checkpoint {paths[k]}: file not found")
    return paths


def load_priors(paths: dict[str, Path], map_location: str | torch.device = "cpu") -> Priors:
    """Load and cross-check the checkpoints (channels, a video prior with temporal layers); no ``vae`` path = a
    pixel-space prior."""
    try:
        map_location = torch.device(map_location)
    except RuntimeError as exc:
        raise DemoError(f"--device {map_location!r}: not a torch device ({exc})") from exc
    try:
        vae = checkpoints.load(paths["vae"], map_location, expect=FrameVAE) if "vae" in paths else None
        image = checkpoints.load(paths["image"], map_location, expect=VideoUNet)
        video = checkpoints.load(paths["video"], map_location, expect=VideoUNet)
    except checkpoints.CheckpointError as exc:
        raise DemoError(str(exc)) from exc
    want = image.config.in_channels if vae is None else vae.config.latent_channels
    for key, net in (("image", image), ("video", video)):
        if net.config.in_channels != want:
            source = f"the image UNet {paths['image']} has" if vae is None else f"the VAE {paths['vae']} has"
            raise DemoError(f"prior {key} checkpoint {paths[key]}: UNet has {net.config.in_channels} input channels, "
                            f"{source} {want}")
    if not video.config.temporal:
        raise DemoError(f"prior video checkpoint {paths['video']}: the UNet has no temporal layers (not a STeP prior)")
    for net in (vae, image, video):
        if net is not None:
            net.requires_grad_(False)
    return Priors(vae=vae, image=image, video=video, paths={k: str(v) for k, v in paths.items()})


def check_channels(priors: Priors, channels: int, domain: str) -> Priors:
    """``priors`` if they take ``channels``-channel frames, else ``DemoError`` (``domain`` names the expected layout,
    e.g. "an MRI prior takes 2 (real, imag)")."""
    if priors.frame_channels != channels:
        source = priors.paths["vae"] if priors.vae is not None else priors.paths["image"]
        raise DemoError(f"prior {source}: takes {priors.frame_channels}-channel frames, {domain}")
    return priors


def grid_factor(priors: Priors) -> int:
    """Frame sizes must be multiples of this: VAE downsampling x UNet patch x 2^(levels - 1)."""
    cfg = priors.image.config
    return priors.latent_factor * cfg.patch * 2 ** (len(cfg.channels) - 1)


def check_fits(priors: Priors, name: str, image_shape: tuple[int, int, int]) -> None:
    """``DemoError`` unless frames ``(C, H, W)`` fit the prior (channels; sizes divisible by :func:`grid_factor`)."""
    c, h, w = image_shape
    grid = grid_factor(priors)
    if h % grid or w % grid or c != priors.frame_channels:
        raise DemoError(f"{name}: frames {tuple(image_shape)} do not fit the prior ({priors.paths['image']}: "
                        f"{priors.frame_channels} channels, sizes divisible by {grid})")


def latent_shape(priors: Priors, n: int, frames: int, image_shape: tuple[int, int, int]) -> tuple[int, ...]:
    """Shape ``[n, T, C', H / f, W / f]`` of the UNets' representation of ``n`` videos of ``frames`` frames."""
    _, h, w = image_shape
    f = priors.latent_factor
    return (n, frames, priors.image.config.in_channels, h // f, w // f)
