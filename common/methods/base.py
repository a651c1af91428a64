"""What a method is: one function ``(task, priors, settings, n_samples, seed) -> samples`` and its settings table.

Every method (STeP, IDM, IDM+BCS, SVI, VISION-XL, TCVR) is a :class:`Method`: its sampling function returns
``n_samples`` network-unit videos ``[S, T, C, H, W]`` (the frames the task's likelihood takes), sample k drawn from
seed ``seed + k`` alone, so it is the same whatever ``n_samples`` and every method starts from the same seeds.
``presets(setting, domain)`` gives the method's settings for ``"quick"``, ``"default"`` and ``"paper"`` (the
paper's settings table) on ``domain`` (``"blackhole"`` or ``"mri"``: a default may differ between the domains' priors
and likelihoods, the paper's settings do not); the DAPS family (STeP, IDM, IDM+BCS) has ``presets=None``: its
settings are the domain's DAPS presets (``blackhole.reconstruct.sampler_presets``,
``cardiac_mri.step.sampler_presets``), shared by the three so that they compare under the same sampler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from common.recon.prior_set import Priors
from common.recon.task import ReconTask

SETTINGS = ("quick", "default", "paper")
DOMAINS = ("blackhole", "mri")


class SampleFn(Protocol):
    def __call__(self, task: ReconTask, priors: Priors, settings: Any, n_samples: int, seed: int) -> torch.Tensor:
        """``n_samples`` posterior samples (or estimates) ``[S, T, C, H, W]`` in network units."""


@dataclass(frozen=True)
class Method:
    """A named method: ``sample`` (see :class:`SampleFn`), ``presets`` ((setting name, domain) -> settings; None =
    the domain's DAPS presets) and ``describe`` (settings -> one line for logs)."""

    name: str
    sample: SampleFn
    presets: Callable[[str, str], Any] | None
    describe: Callable[[Any], str]
    summary: str = ""
    network: str = "image"  # the prior network it samples with: "image" (the UNet in image mode) or "video"

    @property
    def uses_daps(self) -> bool:
        return self.presets is None


def check_setting(setting: str, domain: str) -> str:
    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {SETTINGS}, got {setting!r}")
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")
    return setting


def seeded(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator seeded with ``seed`` on ``device``."""
    g = torch.Generator(device=torch.device(device))
    g.manual_seed(int(seed))
    return g
