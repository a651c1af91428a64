"""Running under ``torchrun``: the process group, this process's rank and device, a barrier.

``torchrun --nproc_per_node=N`` starts N copies of a command with ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` in
their environment. :func:`setup_distributed` joins the process group when ``WORLD_SIZE > 1`` (nccl if CUDA is
available, else gloo) and is a no-op otherwise, so the same code runs in one process or many. Training uses it for
DistributedDataParallel (:mod:`common.training.loop`), posterior sampling to split the samples across processes
(:mod:`common.recon.run`). No device is hard-coded: :func:`rank_device` gives each rank its own GPU when the user
asked for CUDA.
"""

from __future__ import annotations

import dataclasses
import datetime
import os

import torch
import torch.distributed as dist


@dataclasses.dataclass(frozen=True)
class DistInfo:
    """This process's ``rank`` among ``world_size`` and its default device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait until every process got here (no-op in a single process)."""
        if self.enabled and dist.is_initialized():
            dist.barrier()


def env_world_size() -> int:
    """``WORLD_SIZE`` from torchrun's environment (1 when not launched by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


LONG_WAIT = datetime.timedelta(hours=72)
"""Collective timeout for work split unevenly (posterior samples, quality-table jobs): the final barrier waits for
the slowest process, which torch's default (30 min for gloo) would cut short on long runs."""


def setup_distributed(timeout: datetime.timedelta | None = None) -> DistInfo:
    """Join the torchrun process group when ``WORLD_SIZE > 1`` (nccl if CUDA is available, else gloo), with the
    collective ``timeout`` (None: torch's default)."""
    world = env_world_size()
    cuda = torch.cuda.is_available()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", **({} if timeout is None else {"timeout": timeout}))
    rank = dist.get_rank() if world > 1 else 0
    local = int(os.environ.get("LOCAL_RANK", rank))
    if cuda:
        torch.cuda.set_device(local)
    return DistInfo(rank, world, torch.device(f"cuda:{local}") if cuda else torch.device("cpu"))


def leave_distributed() -> None:
    """Leave the process group if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_device(device: str) -> str:
    """The device a rank should use for ``--device device``: under torchrun with several processes, a bare
    ``cuda`` becomes ``cuda:LOCAL_RANK`` (one GPU per process); anything else (``cpu``, ``cuda:1``) is kept."""
    if env_world_size() > 1 and device == "cuda":
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return device
