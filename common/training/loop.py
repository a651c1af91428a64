"""The training loop of the prior stages (paper App. C): ``vae``, ``image``, ``video``, and the optional
``decoder`` fine-tune of a trained VAE.

``train_stage(stage, cfg, out_dir)`` trains one stage and writes into ``out_dir``:
``state.safetensors`` (resumable, atomic), ``ema.safetensors`` and ``model.safetensors`` (final EMA and raw weights,
``common.checkpoints`` format), ``log.jsonl`` (one JSON line per logged step), ``loss.png`` and ``config.yaml``.

- vae: Eq. 18 on augmented images of the image set (all frames of the videos + extra frames), plus
  ``fourier_weight`` x the whitened low-frequency error when that is > 0 (``VAEObjective``).
- decoder (optional, after vae): the trained VAE (``--vae``) with its encoder frozen, its decoder fine-tuned on the
  same images with L1 + the whitened low-frequency error (``DecoderObjective``); the latent space, and so any image /
  video stage trained on it, is unchanged, while the round trip (the representation ceiling) sharpens.
- image: EDM denoising score matching (Eq. 19) on latents of single frames, image UNet (``temporal=False``).
- video: the image checkpoint loaded into the spatiotemporal UNet (temporal branches zero, alpha = 0); each step
  is a batch of real (clipped, augmented) videos with probability ``p_joint``, else pseudo-videos of random images
  processed in image mode (switch OFF, paper Sec. 3.2 (P3)). The real/pseudo choice comes from a generator shared
  by all DDP ranks; data and noise from a per-rank generator (seed + 1000 * rank).

Latents come from the frozen VAE encoder (``latent: mean`` or ``sample``), without a scaling factor; with
``vae: null`` the prior is pixel-space. Runs unchanged under ``torchrun`` (DDP, gloo on CPU, nccl on CUDA).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from common import checkpoints
from common.distributed import DistInfo, setup_distributed
from common.io import atomic_path, atomic_write_text
from common.nets.config import VAEConfig
from common.nets.temporal import frame_offset
from common.nets.unet import VideoUNet
from common.nets.vae import FrameVAE, sample_latent
from common.training.config import STAGES, PriorConfig, StageConfig, dump_prior_config, parse_prior_config
from common.training.data import (
    ArrayFrames,
    ArrayVideos,
    augment,
    draw_batch,
    draw_pseudo_videos,
    image_set,
    random_clip,
)
from common.training.ema import EMA
from common.training.objectives import DecoderObjective, DiffusionObjective, VAEObjective, mean_power
from common.training.state import load_training_state, optimizer_from_flat, save_training_state

STATE_FILE = "state.safetensors"


def load_datasets(cfg: PriorConfig) -> tuple[Dataset | None, Dataset | None]:
    """Video and extra-frame datasets named in ``cfg.data`` (None where not given)."""
    videos = ArrayVideos(cfg.data.videos) if cfg.data.videos else None
    frames = ArrayFrames(cfg.data.frames) if cfg.data.frames else None
    return videos, frames


class _Batcher:
    """Draws the inputs of one step for a stage, using explicit generators only."""

    def __init__(self, stage: str, cfg: PriorConfig, videos: Dataset | None, images: Dataset,
                 vae: FrameVAE | None, device: torch.device) -> None:
        self.stage, self.cfg, self.videos, self.images, self.vae, self.device = stage, cfg, videos, images, vae, device
        self.sc = cfg.stage(stage)

    def _aug(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Augment on the training device (batched: a few kernels per step; the draws come from ``g`` on the CPU)."""
        d = self.cfg.data
        return augment(x.to(self.device), g, d.hflip, d.vflip, d.zoom, d.phase_rotation)

    @torch.no_grad()
    def _latent(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        x = x.to(self.device)
        if self.vae is None:
            return x
        mean, logvar = self.vae.encode(x)
        return mean if self.sc.latent == "mean" else sample_latent(mean, logvar, g)

    def __call__(self, g: torch.Generator, shared: torch.Generator) -> tuple:
        sc, b = self.sc, self.sc.batch_size
        if self.stage in ("vae", "decoder"):
            x = self._aug(draw_batch(self.images, b, g), g)
            f = self.cfg.vae.downsampling
            eps = torch.randn(b, self.cfg.vae.latent_channels, x.shape[-2] // f, x.shape[-1] // f, generator=g)
            return x.to(self.device), eps.to(self.device)
        offset = 0  # first frame index of the temporal attention's encoding (clips of longer videos)
        if self.stage == "image":
            z0 = self._latent(self._aug(draw_batch(self.images, b, g), g), g)[:, None]
            video = False
        else:
            real = float(torch.rand((), generator=shared)) < sc.p_joint
            if real:
                clip = random_clip(draw_batch(self.videos, b, g), self.cfg.data.clip_frames, g)
                spare = int(self.videos[0].shape[0]) - clip.shape[1]
                if spare > 0:  # clips of longer videos: random first frame index for the temporal attention
                    offset = int(torch.randint(spare + 1, (), generator=g))
            else:
                clip = draw_pseudo_videos(self.images, b, self.num_frames, g)
            z0, video = self._latent(self._aug(clip, g), g), real
        sigma = (sc.p_mean + sc.p_std * torch.randn(b, generator=g)).exp()
        noise = torch.randn(z0.shape, generator=g)
        return z0, sigma.to(self.device), noise.to(self.device), video, offset

    @property
    def num_frames(self) -> int:
        return self.cfg.data.clip_frames or int(self.videos[0].shape[0])


def _param_groups(model: nn.Module, sc) -> list[dict]:
    """One optimiser group, or two when ``sc.alpha_lr_scale != 1``: the Eq. 3 blend factors at ``lr * scale``."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]  # frozen parts are not optimised
    if sc.alpha_lr_scale == 1.0:
        return [{"params": [p for _, p in named]}]
    alphas = [p for n, p in named if n.endswith(".alpha")]
    rest = [p for n, p in named if not n.endswith(".alpha")]
    return [{"params": rest}, {"params": alphas, "lr": sc.lr * sc.alpha_lr_scale}]


TEMPORAL_ONLY_FIELDS = ("temporal_kernel", "temporal_attn_levels", "max_frames")
"""UNet fields read only by the temporal modules (an image checkpoint's values are not used)."""


def _load_matching_vae(path: Path | None, want: VAEConfig, stage: str, flag: str,
                       map_location: torch.device | str = "cpu") -> FrameVAE:
    """The FrameVAE checkpoint at ``path``, refused (one-line error naming ``flag``) when missing or when its config
    differs from the YAML ``vae`` section ``want``."""
    hint = "" if flag == "--init" else " (train the vae stage first or pass --vae)"
    if path is None or not Path(path).is_file():
        raise FileNotFoundError(f"train {stage}: {flag} VAE checkpoint {path} not found{hint}")
    vae = checkpoints.load(path, map_location=map_location, expect=FrameVAE)
    if vae.config != want:
        raise ValueError(f"train {stage}: {flag} VAE checkpoint {path} config {vae.config} differs from the YAML "
                         f"vae section {want}")
    return vae


def _build(stage: str, cfg: PriorConfig, init_path: Path | None, vae_path: Path | None) -> nn.Module:
    if stage in ("vae", "decoder") and cfg.vae is None:
        raise ValueError(f"train {stage}: the config has 'vae: null' (pixel-space prior); there is no VAE to train")
    if stage == "vae":
        if init_path is None:
            return FrameVAE(cfg.vae)
        return _load_matching_vae(init_path, cfg.vae, "vae", "--init")  # continue under a new objective
    if stage == "decoder":
        vae = _load_matching_vae(vae_path, cfg.vae, "decoder", "--vae")
        for p in vae.encoder.parameters():  # the latent space stays the one the diffusion stages learned
            p.requires_grad_(False)
        return vae
    if init_path is not None and stage in ("image", "decoder"):
        raise ValueError(f"train {stage}: --init applies to the vae and video stages only")
    if stage == "image":
        return VideoUNet(dataclasses.replace(cfg.unet, temporal=False))
    if init_path is None or not Path(init_path).is_file():
        raise FileNotFoundError(f"train video: image-UNet checkpoint {init_path} not found (train the image stage "
                                "first or pass --init)")
    image = checkpoints.load(init_path, expect=VideoUNet)
    if image.config.temporal:  # a trained spatiotemporal UNet (e.g. a shipped prior): continue fine-tuning it
        if image.config != cfg.unet:
            diff = {f.name: (getattr(image.config, f.name), getattr(cfg.unet, f.name))
                    for f in dataclasses.fields(cfg.unet) if getattr(image.config, f.name) != getattr(cfg.unet, f.name)}
            raise ValueError(f"train video: video checkpoint {init_path} has a different UNet config than the YAML "
                             f"(field: (checkpoint, config)) {diff}")
        return image
    # the image stage has no temporal modules: its temporal fields need not match the video config's
    temporal_only = {name: getattr(image.config, name) for name in TEMPORAL_ONLY_FIELDS}
    want = dataclasses.replace(cfg.unet, temporal=False, **temporal_only)
    if image.config != want:
        diff = {f.name: (getattr(image.config, f.name), getattr(want, f.name)) for f in dataclasses.fields(want)
                if getattr(image.config, f.name) != getattr(want, f.name)}
        raise ValueError(f"train video: image checkpoint {init_path} has a different UNet config than the YAML "
                         f"(field: (checkpoint, config)) {diff}")
    return VideoUNet.from_image_unet(image, temporal_kernel=cfg.unet.temporal_kernel,
                                     temporal_attn_levels=cfg.unet.temporal_attn_levels,
                                     max_frames=cfg.unet.max_frames)


def _gather_generator_states(g: torch.Generator, info: DistInfo) -> list[torch.Tensor]:
    state = g.get_state()
    if not info.enabled:
        return [state]
    dev = info.device
    out = [torch.empty_like(state, device=dev) for _ in range(info.world_size)]
    dist.all_gather(out, state.to(dev))
    return [s.cpu() for s in out]


def plot_losses(log_path: Path, png_path: Path) -> None:
    """Loss curve (log scale) from a JSONL log, written atomically as PNG (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], lw=0.8)
    ax.set(xlabel="step", ylabel="loss", yscale="log", title=png_path.parent.name)
    ax.grid(alpha=0.3)
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def _truncate_log(log_path: Path, step: int) -> None:
    """Keep only log lines up to ``step`` (a killed run may have logged steps after its last checkpoint)."""
    if not log_path.exists():
        return
    lines = [ln for ln in log_path.read_text().splitlines() if ln.strip()]
    keep = []
    for i, ln in enumerate(lines):
        try:
            row = json.loads(ln)
        except json.JSONDecodeError as exc:
            if i == len(lines) - 1:  # a line cut short by the kill: drop it
                break
            raise ValueError(f"{log_path}: line {i + 1} is not JSON ({exc}); fix or delete the log to resume") from exc
        if row["step"] <= step:
            keep.append(ln)
    atomic_write_text(log_path, "".join(ln + "\n" for ln in keep))


def train_stage(stage: str, cfg: PriorConfig, out_dir: str | Path, *, resume: bool = False,
                videos: Dataset | None = None, frames: Dataset | None = None, vae_path: str | Path | None = None,
                init_path: str | Path | None = None, callback: Callable[[int, float], None] | None = None,
                progress: bool = True, max_seconds: float | None = None) -> nn.Module:
    """Train one stage (``vae``, ``image`` or ``video``) and return its EMA model (on CPU, eval mode).

    ``videos``/``frames`` override the datasets named in ``cfg.data`` (any map-style datasets following the project
    convention). ``vae_path`` (image/video stages with a VAE) and ``init_path`` (video stage) name the frozen VAE and
    the image-UNet checkpoint; for the vae stage ``init_path``, when given, is a VAE checkpoint to start from (e.g. a
    trained VAE continued with ``fourier_flux_norm``) instead of a fresh initialisation. ``callback(step, loss)``
    runs after every step (it may raise to stop the run).
    ``max_seconds``: wall-time budget of this call; when it runs out the stage stops after the current step, saves
    a resumable checkpoint and writes its EMA weights as if finished (``--resume`` continues to ``steps``).
    """
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"train_stage: max_seconds must be > 0, got {max_seconds!r}")
    if stage not in STAGES:
        raise ValueError(f"train_stage: unknown stage {stage!r}; expected one of {STAGES}")
    info = setup_distributed()
    sc: StageConfig = cfg.stage(stage)
    out = Path(out_dir)
    state_path = out / STATE_FILE
    if state_path.exists() and not resume:
        raise FileExistsError(f"{state_path} exists: pass --resume to continue that run or choose another --out")
    if resume and not state_path.exists():
        raise FileNotFoundError(f"--resume: no training state at {state_path}")
    if videos is None and frames is None:
        videos, frames = load_datasets(cfg)
    if stage == "video" and videos is None:
        raise ValueError("train video: no video dataset (set data.videos in the config or pass --videos)")
    images = image_set(videos, frames)

    vae = None
    if stage in ("image", "video") and cfg.vae is not None:
        vae = _load_matching_vae(vae_path, cfg.vae, stage, "--vae", map_location=info.device)
        for p in vae.parameters():
            p.requires_grad_(False)
    in_ch = cfg.vae.in_channels if cfg.vae is not None else cfg.unet.in_channels
    if images[0].shape[0] != in_ch:
        raise ValueError(f"train {stage}: data have {images[0].shape[0]} channels, the config expects {in_ch}")

    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's global RNG
        torch.manual_seed(sc.seed)
        model = _build(stage, cfg, Path(init_path) if init_path else None, Path(vae_path) if vae_path else None)
    model.to(info.device).train()
    ema = EMA(model, sc.ema_decay)
    opt = torch.optim.AdamW(_param_groups(model, sc), lr=sc.lr, betas=tuple(sc.betas), weight_decay=sc.weight_decay)
    g = torch.Generator().manual_seed(sc.seed + 1000 * info.rank)
    shared = torch.Generator().manual_seed(sc.seed + 7919)
    start = 0
    config_text = dump_prior_config(cfg)
    # a resumed run must use the same data, networks and stage section (PriorConfig.resume_key); steps may change
    run_config_text = dump_prior_config(cfg.resume_key(stage))
    if resume:
        meta, parts = load_training_state(state_path)
        if meta.get("stage") != stage or meta.get("world_size") != info.world_size:
            raise ValueError(f"{state_path}: saved by stage {meta.get('stage')!r} with world size "
                             f"{meta.get('world_size')}, cannot resume stage {stage!r} with {info.world_size}")
        # compared as configs, not text: a run saved before a config field was added resumes (the field's default)
        saved = parse_prior_config(meta.get("run_config") or "", source=str(state_path))
        if saved.resume_key(stage) != cfg.resume_key(stage):
            raise ValueError(f"{state_path}: the run was started with a different config; resume with the same one")
        checkpoints.check_state(model.state_dict(), parts["model"], str(state_path))
        model.load_state_dict(parts["model"])
        ema.load_state_dict(parts["ema"])
        opt.load_state_dict(optimizer_from_flat(parts["optim"], meta["optimizer"]))
        g.set_state(parts["rng"][f"data.{info.rank}"])
        shared.set_state(parts["rng"]["shared"])
        start = int(meta["step"])

    # whitening of the Fourier term from un-augmented training frames, seeded: the same on every rank
    power = (mean_power(draw_batch(images, 256, torch.Generator().manual_seed(sc.seed + 4242)))
             if stage == "decoder" or (stage == "vae" and sc.fourier_weight > 0) else None)
    if stage == "vae":
        objective: nn.Module = VAEObjective(model, sc.beta_kl, power, sc.fourier_weight, sc.fourier_radius,
                                            sc.fourier_flux_norm).to(info.device)
    elif stage == "decoder":
        objective = DecoderObjective(model, power, sc.fourier_weight, sc.fourier_radius,
                                     sc.fourier_flux_norm).to(info.device)
    else:
        objective = DiffusionObjective(model)
    runner: nn.Module = objective
    if info.enabled:
        runner = nn.parallel.DistributedDataParallel(
            objective, device_ids=[info.device.index] if info.device.type == "cuda" else None,
            find_unused_parameters=(stage == "video"))
    batcher = _Batcher(stage, cfg, videos, images, vae, info.device)
    use_bf16 = sc.bf16 and info.device.type == "cuda"
    main = info.rank == 0
    log_path = out / "log.jsonl"
    if main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(config_text)
        if sc.bf16 and not use_bf16:
            print(f"train {stage}: bf16 requested but not on CUDA; training in float32")
        if resume:
            _truncate_log(log_path, start)
        elif log_path.exists():
            log_path.unlink()

    bar = tqdm(range(start, sc.steps), initial=start, total=sc.steps, desc=f"train {stage}",
               disable=not (progress and main))
    t0 = time.perf_counter()
    for step in bar:
        inputs = batcher(g, shared)
        offset = 0
        if stage in ("image", "video"):
            *inputs, offset = inputs
        amp = torch.autocast("cuda", dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext()
        with amp, frame_offset(model, offset):
            loss, *parts_out = runner(*inputs)
        done = step + 1
        logged = torch.stack([loss.detach().float(), *[p.float() for p in parts_out]])
        if info.enabled:  # every rank sees the mean (and a NaN on any rank), so all stop together
            dist.all_reduce(logged)
            logged /= info.world_size
        if not torch.isfinite(logged).all():
            raise FloatingPointError(f"train {stage}: non-finite loss {logged.tolist()} at step {done}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), sc.grad_clip)
        opt.step()
        ema.update(model)
        if main and (done % sc.log_every == 0 or done == sc.steps):
            row = {"step": done, "loss": float(logged[0]), "grad_norm": float(grad_norm),
                   "time_s": round(time.perf_counter() - t0, 3)}
            if stage == "vae":
                row.update(l1=float(logged[1]), kl=float(logged[2]))
                if sc.fourier_weight > 0:
                    row["fourier"] = float(logged[3])
            if stage == "decoder":
                row.update(l1=float(logged[1]), fourier=float(logged[2]))
            if stage == "video":
                row["real_video"] = bool(inputs[3])
            with open(log_path, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            bar.set_postfix(loss=f"{row['loss']:.4g}")
        if callback is not None:
            callback(done, float(logged[0]))
        out_of_time = torch.tensor(float(max_seconds is not None and time.perf_counter() - t0 >= max_seconds),
                                   device=info.device)
        if info.enabled:  # all ranks stop at the same step
            dist.all_reduce(out_of_time, op=dist.ReduceOp.MAX)
        if done % sc.checkpoint_every == 0 or done == sc.steps or bool(out_of_time):
            states = _gather_generator_states(g, info)
            if main:
                rngs = {f"data.{r}": s for r, s in enumerate(states)}
                rngs["shared"] = shared.get_state()
                save_training_state(state_path, step=done, model=model, ema=ema.module, optimizer=opt,
                                    generators=rngs, extra={"stage": stage, "world_size": info.world_size,
                                                            "config": config_text, "run_config": run_config_text})
                plot_losses(log_path, out / "loss.png")
        if bool(out_of_time) and done < sc.steps:
            if main:
                print(f"train {stage}: wall-time budget of {max_seconds:g} s used after step {done} of {sc.steps}; "
                      f"checkpoint saved (--resume continues)", flush=True)
            break
    if main:
        # the movie length the video prior's frame positions were trained on (clips of it at random offsets):
        # the default frame count of a reconstruction (e.g. blackhole.priors.prior_frames)
        facts = {"trained_frames": int(videos[0].shape[0])} if stage == "video" and videos is not None else None
        checkpoints.save(ema.module, out / "ema.safetensors", info=facts)
        checkpoints.save(model, out / "model.safetensors", info=facts)
    if info.enabled:
        dist.barrier()
    return ema.module.cpu().eval()
