"""Per-sample random streams for DAPS, and batch-consistent noise (paper App. B.3, Eq. 17).

Every posterior sample k owns one ``torch.Generator``; all its randomness (initial state, momentum, MCMC noise,
re-noising) is drawn from that generator alone and in a fixed order that does not depend on the batch size, so
sample k is identical whether drawn alone or in a batch. ``generator`` arguments accept:

- ``None``: fresh non-deterministic seeds (one per sample, from the OS via ``torch.Generator.seed()``);
- an ``int`` s: sample k uses seed ``s + k`` (so ``generator=s`` with B samples equals ``[s, s+1, ..., s+B-1]``);
- a list of B ints (one seed per sample);
- a list of B ``torch.Generator`` objects on the sampling device (used and advanced in place).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

GeneratorSpec = None | int | Sequence[int] | Sequence[torch.Generator]

# Largest block of MCMC noise drawn per sample in one call, in elements (16 MiB of float32). The block size depends
# only on the per-sample shape, never on the batch size, which keeps the streams batch-independent.
MAX_BLOCK_ELEMENTS = 1 << 22


def make_generators(generator: GeneratorSpec, batch: int, device: torch.device | str) -> tuple[list, list | None]:
    """Expand a generator spec (module docstring) into ``batch`` generators on ``device``.

    Returns ``(generators, seeds)``; ``seeds`` is the list of per-sample seeds when they are known (``None`` when
    the caller passed generator objects).
    """
    device = torch.device(device)
    if isinstance(generator, torch.Generator):
        raise TypeError("generator: a single torch.Generator cannot give per-sample streams; pass a seed int, "
                        f"a list of {batch} seeds or a list of {batch} torch.Generator objects")
    if generator is None:
        gens = [torch.Generator(device=device) for _ in range(batch)]
        seeds = [int(g.seed()) for g in gens]
        return gens, seeds
    if isinstance(generator, int) and not isinstance(generator, bool):
        if generator < 0:
            raise ValueError(f"generator: seed must be >= 0, got {generator}")
        seeds = [generator + k for k in range(batch)]
        return [_seeded(s, device) for s in seeds], seeds
    if not isinstance(generator, Sequence) or isinstance(generator, (str, bytes)):
        raise TypeError(f"generator: expected None, an int seed or a list of {batch} seeds/generators, "
                        f"found {type(generator).__name__}")
    if len(generator) != batch:
        raise ValueError(f"generator: expected {batch} per-sample seeds/generators (the batch size), "
                         f"found {len(generator)}")
    if all(isinstance(g, torch.Generator) for g in generator):
        for k, g in enumerate(generator):
            if not _same_device(g.device, device):
                raise ValueError(f"generator[{k}] lives on {g.device} but sampling runs on {device}")
        return list(generator), None
    if all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in generator):
        seeds = [int(s) for s in generator]
        return [_seeded(s, device) for s in seeds], seeds
    raise TypeError("generator: a list must hold only non-negative int seeds or only torch.Generator objects, found "
                    f"{sorted({type(g).__name__ for g in generator})}")


class PerSampleNoise:
    """Standard normal draws of shape ``[B, *sample_shape]`` where row k comes from generator k only.

    ``sample_shape`` is ``[T, C, H, W]``. Batch-consistent draws (Eq. 17) use ONE ``[C, H, W]`` image per sample,
    repeated over the T frames.
    """

    def __init__(self, generators: Sequence[torch.Generator], sample_shape: Sequence[int],
                 device: torch.device | str, dtype: torch.dtype) -> None:
        self.generators = list(generators)
        self.sample_shape = tuple(int(s) for s in sample_shape)
        self.device = torch.device(device)
        self.dtype = dtype

    @property
    def batch(self) -> int:
        return len(self.generators)

    def _draw(self, shape: Sequence[int], dim: int = 0) -> torch.Tensor:
        """One ``randn(shape)`` per generator, stacked along ``dim`` (contiguous result)."""
        rows = [torch.randn(tuple(shape), generator=g, device=self.device, dtype=self.dtype) for g in self.generators]
        return torch.stack(rows, dim)

    def randn_shape(self, shape: Sequence[int]) -> torch.Tensor:
        """``[B, *shape]`` i.i.d. noise of any per-sample shape (pixel or measurement space), row k from generator k."""
        return self._draw(shape)

    def randn(self, *, batch_consistent: bool = False) -> torch.Tensor:
        """``[B, T, C, H, W]`` i.i.d. noise, or batch-consistent noise (one frame per sample, expanded over T)."""
        if not batch_consistent:
            return self._draw(self.sample_shape)
        frame = self._draw(self.sample_shape[1:])  # [B, C, H, W]
        return frame.unsqueeze(1).expand(self.batch, *self.sample_shape)

    def block_sizes(self, steps: int) -> list[int]:
        """Split ``steps`` MCMC noise draws into blocks of at most ``MAX_BLOCK_ELEMENTS`` elements per sample."""
        numel = 1
        for s in self.sample_shape:
            numel *= s
        per = max(1, min(steps, MAX_BLOCK_ELEMENTS // max(numel, 1)))
        return [min(per, steps - i) for i in range(0, steps, per)]

    def randn_block(self, steps: int) -> torch.Tensor:
        """``[steps, B, T, C, H, W]`` i.i.d. noise for ``steps`` consecutive MCMC updates (one call per sample)."""
        return self._draw((steps, *self.sample_shape), dim=1)


def _seeded(seed: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def _same_device(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return False
    return a.index is None or b.index is None or a.index == b.index
