"""Model checkpoints: one ``.safetensors`` file holding the weights and, in its metadata, a JSON config.

``save(module, path)`` writes the module's ``state_dict`` and ``{"class": name, "config": {dataclass fields}}``
under the metadata key ``stepvip``; ``load(path)`` rebuilds the module from that config and loads the weights.
``save(..., dtype=torch.float16)`` stores the floating tensors in a smaller dtype (half the bytes, for shipped
weights); ``load`` casts every tensor back to the dtype of the freshly built module (float32).
Class names map to classes through the explicit ``MODEL_CLASSES`` table (no ``globals()`` lookup, no pickle).
Writes are atomic (temporary file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from common._version import __version__
from common.io import atomic_path
from common.nets.config import UNetConfig, VAEConfig, config_from_dict, config_to_dict
from common.nets.unet import VideoUNet
from common.nets.vae import FrameVAE

METADATA_KEY = "stepvip"
RESERVED_KEYS = ("class", "config", "version")  # metadata fields save() writes itself; the rest is training info
MAX_PARAMETERS = 2_000_000_000  # 8 GB of float32: far above any STeP network (paper scale: 132M), a guard only
MODEL_CLASSES: dict[str, tuple[type[nn.Module], type]] = {
    "VideoUNet": (VideoUNet, UNetConfig),
    "FrameVAE": (FrameVAE, VAEConfig),
}


class CheckpointError(ValueError):
    """A checkpoint file is missing, malformed, or does not match its config."""


def atomic_save_tensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str]) -> None:
    """Write ``tensors`` (contiguous CPU copies) and string ``metadata`` to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_path(path, suffix=".tmp") as tmp:
        save_file(cpu, str(tmp), metadata=metadata)


def read_metadata(path: str | Path) -> dict[str, str]:
    """String metadata of a safetensors file; clear error if the file is missing or not safetensors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path}: not a readable safetensors file ({exc})") from exc


def save(module: nn.Module, path: str | Path, dtype: torch.dtype | None = None,
         info: dict[str, Any] | None = None) -> None:
    """Save a model whose class is in ``MODEL_CLASSES`` (it must carry its config dataclass as ``.config``).

    ``dtype`` (a floating dtype, e.g. ``torch.float16``): cast the floating-point tensors to it before writing
    (integer buffers are kept); ``None`` writes them as they are. ``info``: JSON-serialisable facts about the
    training (e.g. ``trained_frames``) stored beside the config in the metadata; ``read_info`` returns them.
    """
    name = type(module).__name__
    if name not in MODEL_CLASSES or not isinstance(module, MODEL_CLASSES[name][0]):
        raise CheckpointError(f"checkpoints.save: unsupported module type {name}; known: {sorted(MODEL_CLASSES)}")
    if dtype is not None and not dtype.is_floating_point:
        raise CheckpointError(f"checkpoints.save: dtype must be a floating dtype, got {dtype}")
    state = module.state_dict()
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    meta = {"class": name, "config": config_to_dict(module.config), "version": __version__}
    reserved = set(RESERVED_KEYS) & set(info or {})
    if reserved:
        raise CheckpointError(f"checkpoints.save: info may not set the reserved keys {sorted(reserved)}")
    meta |= dict(info or {})
    atomic_save_tensors(state, path, {METADATA_KEY: json.dumps(meta)})


def _stored(path: str | Path) -> dict[str, Any]:
    """The parsed ``stepvip`` metadata object of checkpoint ``path`` (class, config, version, training facts)."""
    meta = read_metadata(path)
    if METADATA_KEY not in meta:
        raise CheckpointError(f"checkpoint {path}: no '{METADATA_KEY}' metadata (not written by stepvip?)")
    try:
        stored = json.loads(meta[METADATA_KEY])
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"checkpoint {path}: malformed '{METADATA_KEY}' metadata "
                              f"({type(exc).__name__}: {str(exc)[:200]})") from exc
    if not isinstance(stored, dict):
        raise CheckpointError(f"checkpoint {path}: malformed '{METADATA_KEY}' metadata (not a JSON object)")
    return stored


def read_info(path: str | Path) -> dict[str, Any]:
    """The training facts saved with ``save(..., info=...)`` in checkpoint ``path`` (``{}`` when there are none)."""
    return {k: v for k, v in _stored(path).items() if k not in RESERVED_KEYS}


def read_config(path: str | Path) -> tuple[str, Any]:
    """``(class name, config dataclass)`` stored in checkpoint ``path``."""
    stored = _stored(path)
    try:
        name, cfg = stored["class"], stored["config"]
    except KeyError as exc:
        raise CheckpointError(f"checkpoint {path}: malformed '{METADATA_KEY}' metadata "
                              f"({type(exc).__name__}: {str(exc)[:200]})") from exc
    if name not in MODEL_CLASSES:
        raise CheckpointError(f"checkpoint {path}: unknown model class {name!r}; known: {sorted(MODEL_CLASSES)}")
    try:
        return name, config_from_dict(MODEL_CLASSES[name][1], cfg, source=f"checkpoint {path}")
    except (ValueError, TypeError, RecursionError) as exc:
        raise CheckpointError(f"checkpoint {path}: invalid config ({type(exc).__name__}: {str(exc)[:200]})") from exc


def load(path: str | Path, map_location: str | torch.device = "cpu", expect: type[nn.Module] | None = None
         ) -> nn.Module:
    """Rebuild the module stored in ``path`` and load its weights (eval mode, on ``map_location``).

    ``expect`` optionally names the required class. The config is checked against the stored tensor shapes and
    ``MAX_PARAMETERS`` on the meta device (no memory) before any module is built, so a small file cannot ask for
    a huge network. Raises ``CheckpointError`` naming the file and the first mismatching tensors when the weights
    do not fit the stored config.
    """
    name, cfg = read_config(path)
    cls = MODEL_CLASSES[name][0]
    if expect is not None and cls is not expect:
        raise CheckpointError(f"checkpoint {path}: holds a {name}, expected a {expect.__name__}")
    try:
        with torch.device("meta"):
            skeleton = cls(cfg)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {path}: its config does not build a {name} ({exc})") from exc
    count = sum(p.numel() for p in skeleton.parameters())
    if count > MAX_PARAMETERS:
        raise CheckpointError(f"checkpoint {path}: its config asks for {count:,} parameters (limit "
                              f"{MAX_PARAMETERS:,}); refusing to build it")
    with safe_open(str(path), framework="pt") as f:
        shapes = {k: torch.empty(f.get_slice(k).get_shape(), device="meta") for k in f.keys()}
    check_state(skeleton.state_dict(), shapes, f"checkpoint {path}")
    module = cls(cfg)
    state = load_file(str(path), device="cpu")
    expected = module.state_dict()
    check_state(expected, state, f"checkpoint {path}")
    # tensors saved in a smaller dtype (save(..., dtype=float16)) come back in the module's own dtype
    state = {k: v.to(expected[k].dtype) for k, v in state.items()}
    module.load_state_dict(state, strict=True)
    return module.to(map_location).eval()


def check_state(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], source: str) -> None:
    """Raise ``CheckpointError`` listing the first missing, unexpected and wrongly shaped tensors."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = [f"{k}: expected {tuple(expected[k].shape)}, found {tuple(found[k].shape)}"
              for k in sorted(set(expected) & set(found)) if tuple(expected[k].shape) != tuple(found[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first: {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (first: {unexpected[:3]})")
        if shapes:
            parts.append(f"{len(shapes)} with wrong shape (first: {shapes[:3]})")
        raise CheckpointError(f"{source}: weights do not match the config: " + "; ".join(parts))
