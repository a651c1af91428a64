"""A reconstruction's finished posterior samples on disk, one file per sample, so that a long run can be resumed
and its samples drawn by several processes.

Layout of the work folder (by default ``<out>.partial`` beside the output folder, :func:`work_folder`)::

    <out>.partial/<METHOD>/identity.json      what run the samples belong to (:func:`run_identity`)
    <out>.partial/<METHOD>/sample_0007.safetensors   sample k = 7: network units [1, T, C, H, W], drawn from seed + 7

Every file is written atomically (:func:`common.io.atomic_path`), so a killed run leaves whole samples or none.
Sample k depends on ``seed + k`` alone (:mod:`common.methods.base`), hence on neither ``--samples`` nor the process
that drew it: a resumed run (``--resume``) reuses the stored samples and draws the missing ones, and the final
outputs equal an uninterrupted run's. The identity records what the samples depend on: the task (its attributes,
coordinates, truth and the log-likelihood of a fixed probe video, which fingerprints the measured data), the prior
files (SHA-256 of their content), the method settings, the seed, the device type and the torch version; resuming
with any of them changed is refused. :class:`MemoryStore` keeps the samples of a run without a work folder in memory.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from common.io import atomic_path, atomic_write_text
from common.posterior import variable_name
from common.recon.errors import DemoError
from common.recon.prior_set import Priors
from common.recon.task import ReconTask

IDENTITY = "identity.json"
IGNORED_SETTINGS = ("progress",)  # settings that change what is shown, not the samples


def work_folder(out: Path) -> Path:
    """The work folder of the output folder ``out``: ``<out>.partial`` beside it."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _array_digest(values: Any) -> str:
    return _sha256(np.ascontiguousarray(np.asarray(values)).tobytes())


def _file_digest(path: str) -> str:
    """SHA-256 of a prior file, or its name for networks that did not come from a file."""
    return _sha256(Path(path).read_bytes()) if Path(path).is_file() else str(path)


def likelihood_probe(task: ReconTask, device: torch.device) -> str:
    """``log p(y | x)`` of a fixed smooth probe video ``[1, T, C, H, W]`` (network units, values in [0.1, 0.9]),
    8 significant digits: it changes when the measured data, their error bars or the forward model change."""
    t, (c, h, w) = task.frames, task.image_shape
    probe = 0.5 + 0.4 * torch.sin(torch.arange(t * c * h * w, dtype=torch.float32) * 0.37).reshape(1, t, c, h, w)
    with torch.no_grad():
        value = task.log_likelihood(probe.to(device))
    return f"{float(torch.as_tensor(value).reshape(-1)[0]):.8g}"


def run_identity(task: ReconTask, priors: Priors, seed: int, setting: str, method: str, settings: dict) -> dict:
    """What the samples of ``method`` depend on (module docstring), as JSON-able values."""
    return {"task": task.name, "frames": task.frames, "image_shape": list(task.image_shape),
            "task_attrs": _sha256(json.dumps(task.attrs, sort_keys=True, default=str).encode()),
            "coords": _sha256(json.dumps({k: _array_digest(v) for k, (v, _) in sorted(task.coords.items())}).encode()),
            "truth": None if task.truth is None else _array_digest(task.truth),
            "likelihood_probe": likelihood_probe(task, priors.device),
            "priors": {k: _file_digest(p) for k, p in sorted(priors.paths.items()) if p},
            "method": method, "settings": {k: v for k, v in settings.items() if k not in IGNORED_SETTINGS},
            "seed": seed, "setting": setting, "device_type": priors.device.type, "torch": torch.__version__}


def _json_form(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


class SampleStore:
    """Samples of one run in ``folder`` (module docstring): ``has``, ``put``, ``get`` per (method, k)."""

    def __init__(self, folder: Path, identities: dict[str, dict]) -> None:
        """``identities``: method name -> :func:`run_identity` of the current run."""
        self.folder = Path(folder)
        self.identities = {m: _json_form(i) for m, i in identities.items()}

    def check(self, resume: bool) -> None:
        """Raise ``DemoError`` (one line naming the folder) if the folder exists and ``resume`` is False, or if it
        holds samples of another run (different inputs, priors, settings or seed). Reads only."""
        if not self.folder.exists():
            return
        if not resume:
            raise DemoError(f"{self.folder} holds the samples of an unfinished run: add --resume to continue it, or "
                            "delete that folder to start again")
        for method, want in self.identities.items():
            path = self._method_folder(method) / IDENTITY
            if path.is_file():
                have = json.loads(path.read_text())
                diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
                if diff:
                    raise DemoError(f"--resume: {self.folder} holds {method} samples of a different run "
                                    f"({', '.join(diff)} differ); delete that folder or rerun the original command")

    def create(self) -> None:
        """Create the folders and write the identities of methods that have none yet (one process only)."""
        for method, identity in self.identities.items():
            folder = self._method_folder(method)
            folder.mkdir(parents=True, exist_ok=True)
            if not (folder / IDENTITY).is_file():
                atomic_write_text(folder / IDENTITY, json.dumps(identity, indent=1, sort_keys=True))

    def _method_folder(self, method: str) -> Path:
        return self.folder / variable_name(method)

    def path(self, method: str, k: int) -> Path:
        return self._method_folder(method) / f"sample_{k:04d}.safetensors"

    def has(self, method: str, k: int) -> bool:
        return self.path(method, k).is_file()

    def put(self, method: str, k: int, x: torch.Tensor, seconds: float) -> None:
        """Store sample ``k`` ``x [1, T, C, H, W]`` (network units) and the seconds it took, atomically."""
        with atomic_path(self.path(method, k)) as tmp:
            save_file({"x": x.detach().cpu().contiguous()}, str(tmp), metadata={"seconds": repr(float(seconds))})

    def get(self, method: str, k: int) -> tuple[torch.Tensor, float]:
        """``(x [1, T, C, H, W], seconds)`` of stored sample ``k``."""
        from safetensors import safe_open

        with safe_open(str(self.path(method, k)), framework="pt") as fh:
            return fh.get_tensor("x"), float(fh.metadata()["seconds"])

    def remove(self) -> None:
        """Delete the work folder (after the final outputs are in place)."""
        shutil.rmtree(self.folder, ignore_errors=True)


class MemoryStore:
    """The :class:`SampleStore` interface without a folder: samples of a run that is not resumable."""

    def __init__(self) -> None:
        self._samples: dict[tuple[str, int], tuple[torch.Tensor, float]] = {}

    def has(self, method: str, k: int) -> bool:
        return (method, k) in self._samples

    def put(self, method: str, k: int, x: torch.Tensor, seconds: float) -> None:
        self._samples[method, k] = (x.detach().cpu(), float(seconds))

    def get(self, method: str, k: int) -> tuple[torch.Tensor, float]:
        return self._samples[method, k]

    def remove(self) -> None:
        self._samples.clear()
