"""Resumable training state without pickle: one safetensors file of tensors plus a JSON metadata entry of scalars.

Saved: step, model and EMA weights, AdamW state (tensors) and hyper-parameters (JSON), and the state of every
random generator (per DDP rank). The file is written atomically, so a run killed at any moment leaves either the
previous or the new checkpoint, never a half-written one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from common.checkpoints import CheckpointError, atomic_save_tensors, read_metadata

STATE_KEY = "stepvip_training_state"


def optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``opt.state_dict()`` into flat tensors ``optim.<param>.<name>`` and JSON-able scalars."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, st in sd["state"].items():
        for name, val in st.items():
            if torch.is_tensor(val):
                tensors[f"optim.{pid}.{name}"] = val
            else:
                scalars[f"{pid}.{name}"] = val
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_from_flat(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of ``optimizer_to_flat``: a state dict for ``opt.load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    for key, val in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = val
    for key, val in meta["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = val
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def save_training_state(path: str | Path, *, step: int, model: torch.nn.Module, ema: torch.nn.Module,
                        optimizer: torch.optim.Optimizer, generators: dict[str, torch.Tensor],
                        extra: dict[str, Any]) -> None:
    """Write everything needed to continue bit-identically. ``generators`` maps names to ``get_state()`` bytes."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    opt_tensors, opt_meta = optimizer_to_flat(optimizer)
    tensors.update(opt_tensors)
    tensors.update({f"rng.{k}": v for k, v in generators.items()})
    meta = {"step": int(step), "optimizer": opt_meta, **extra}
    atomic_save_tensors(tensors, path, {STATE_KEY: json.dumps(meta)})


def load_training_state(path: str | Path) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
    """Read a training state: ``(meta, {"model": ..., "ema": ..., "optim": ..., "rng": ...})``."""
    meta_s = read_metadata(path)
    if STATE_KEY not in meta_s:
        raise CheckpointError(f"{path}: not a stepvip training state (no '{STATE_KEY}' metadata)")
    meta = json.loads(meta_s[STATE_KEY])
    flat = load_file(str(path), device="cpu")
    parts: dict[str, dict[str, torch.Tensor]] = {"model": {}, "ema": {}, "optim": {}, "rng": {}}
    for key, val in flat.items():
        head, rest = key.split(".", 1)
        if head not in parts:
            raise CheckpointError(f"{path}: unexpected tensor {key!r} in training state")
        parts[head][rest if head != "optim" else key] = val
    return meta, parts
