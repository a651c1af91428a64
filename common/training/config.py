"""Training configuration of the three-stage prior pipeline (paper App. C, Table 4), loaded from YAML.

One YAML file describes one prior (``configs/prior_*.yaml``): the data, the VAE (``null`` for a pixel-space prior),
the UNet and the optimisation settings of each stage. Every section mirrors a frozen dataclass; unknown keys are
rejected with an error naming the file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from common.nets.config import UNetConfig, VAEConfig, config_from_dict, config_to_dict

STAGES = ("vae", "decoder", "image", "video")


@dataclass(frozen=True)
class DataConfig:
    """Where the training data are and how they are augmented.

    videos / frames: array files (see ``common.training.data``); paths relative to the working directory.
    hflip / vflip: random horizontal / vertical flips; zoom: maximal relative zoom in/out (0 = off).
    phase_rotation: complex (real, imag) 2-channel data: random global phase exp(i theta) per sample (MRI).
    clip_frames: train the video stage on random windows of this many frames (None = whole videos).
    """

    videos: str | None = None
    frames: str | None = None
    hflip: bool = True
    vflip: bool = True
    zoom: float = 0.0
    phase_rotation: bool = False
    clip_frames: int | None = None


@dataclass(frozen=True)
class StageConfig:
    """Optimisation of one stage: AdamW, gradient clipping, EMA, periodic atomic checkpoints, seeded randomness.

    steps: optimiser steps; batch_size: per process (under DDP the global batch is ``world_size`` times larger).
    checkpoint_every: steps between resumable checkpoints (the last step is always saved).
    bf16: autocast to bfloat16, honoured only on CUDA (ignored, with a printed note, on CPU).
    beta_kl: VAE stage, weight of the per-latent-entry mean KL in Eq. 18.
    fourier_weight / fourier_radius: decoder stage (a trained VAE's decoder fine-tuned with its encoder frozen, so
        the latent space the diffusion stages learned stays the same), and the vae stage when > 0 (added to
        Eq. 18, a VAE trained for closure data from the start): loss = L1 + fourier_weight x the whitened
        low-frequency error of ``common.training.objectives.DecoderObjective``, over the 2-D Fourier components
        within ``fourier_radius`` bins of the frame grid's FFT (a 64-pixel, 128 uas frame: 1 bin = 1.6 G lambda,
        so 6 bins reach beyond the EHT's longest baselines).
    fourier_flux_norm: that whitened error relative to each frame's own flux (``whitened_error``'s ``dc_power``):
        closure data are scale invariant, and max-normalised movies of a faint ring beside a bright spot have
        frames 5-10x fainter than the mean, whose relative errors the plain whitening under-weights 25-100x.
    p_mean / p_std: diffusion stages, log-normal noise-level distribution ``ln sigma ~ N(p_mean, p_std^2)`` (EDM).
    latent: diffusion stages with a VAE: ``mean`` of the encoder or a reparameterised ``sample`` (Eq. 19).
    p_joint: video stage, probability that a step uses real videos (else pseudo-videos of random images).
    alpha_lr_scale: video stage, learning-rate multiplier of the Eq. 3 blend factors ``alpha`` (they start at 0;
        at the UNet's learning rate a short CPU fine-tune left them at ~0.003, i.e. the video prior ~ the image prior).
    """

    steps: int = 1000
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    checkpoint_every: int = 500
    log_every: int = 1
    seed: int = 0
    bf16: bool = False
    beta_kl: float = 0.06
    p_mean: float = -1.2
    p_std: float = 1.2
    latent: str = "mean"
    p_joint: float = 0.8
    alpha_lr_scale: float = 1.0
    fourier_weight: float = 0.0
    fourier_radius: float = 6.0
    fourier_flux_norm: bool = False

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every", "log_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"StageConfig.{name} must be a positive integer, got {v!r}")
        if self.latent not in ("mean", "sample"):
            raise ValueError(f"StageConfig.latent must be 'mean' or 'sample', got {self.latent!r}")
        if not self.alpha_lr_scale > 0:
            raise ValueError(f"StageConfig.alpha_lr_scale must be > 0, got {self.alpha_lr_scale!r}")
        if not 0.0 <= self.p_joint <= 1.0 or not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"StageConfig: need 0 <= p_joint <= 1 and 0 <= ema_decay < 1, got {self.p_joint}, "
                             f"{self.ema_decay}")
        if not (self.fourier_weight >= 0 and self.fourier_radius > 0):
            raise ValueError(f"StageConfig: need fourier_weight >= 0 and fourier_radius > 0, got "
                             f"{self.fourier_weight!r}, {self.fourier_radius!r}")
        if self.lr <= 0 or self.grad_clip <= 0 or len(self.betas) != 2:
            raise ValueError("StageConfig: lr and grad_clip must be > 0 and betas a pair")


@dataclass(frozen=True)
class PriorConfig:
    """A whole prior: data, networks and the training stages (``decoder`` optional, after ``vae``)."""

    data: DataConfig = field(default_factory=DataConfig)
    vae: VAEConfig | None = None
    unet: UNetConfig = field(default_factory=UNetConfig)
    train_vae: StageConfig = field(default_factory=StageConfig)
    train_decoder: StageConfig = field(default_factory=StageConfig)
    train_image: StageConfig = field(default_factory=StageConfig)
    train_video: StageConfig = field(default_factory=StageConfig)

    def stage(self, name: str) -> StageConfig:
        if name not in STAGES:
            raise ValueError(f"unknown training stage {name!r}; expected one of {STAGES}")
        return getattr(self, f"train_{name}")

    def resume_key(self, name: str) -> PriorConfig:
        """What a resumed run of stage ``name`` must share with the run it continues: data, networks and the stage's
        own section except ``steps`` (a run may be continued for more or fewer steps); the other stages' sections
        are reset to defaults, so adding e.g. a ``train_decoder`` section does not block resuming the video stage."""
        own = dataclasses.replace(self.stage(name), steps=1)
        return dataclasses.replace(self, **{f"train_{s}": own if s == name else StageConfig() for s in STAGES})

    def __post_init__(self) -> None:
        if self.vae is not None and self.unet.in_channels != self.vae.latent_channels:
            raise ValueError(f"unet.in_channels={self.unet.in_channels} must equal "
                             f"vae.latent_channels={self.vae.latent_channels}")


def load_prior_config(path: str | Path) -> PriorConfig:
    """Read a prior YAML file; every error names the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    return parse_prior_config(path.read_text(), source=str(path))


def parse_prior_config(text: str, source: str) -> PriorConfig:
    """A prior config from YAML text (fields it lacks take their defaults, so a config written before a field was
    added reads back as the same config); errors name ``source``."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: not valid YAML ({exc})") from exc
    return config_from_dict(PriorConfig, data or {}, source=source)


def dump_prior_config(cfg: PriorConfig) -> str:
    """The resolved config as YAML text (what the CLI prints and writes next to the checkpoints)."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
