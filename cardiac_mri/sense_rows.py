"""Fast path of :class:`~cardiac_mri.sense.SenseOperator` for Cartesian row masks (the CMRxRecon case).

When the mask samples whole ky rows (the same rows in every frame, weights constant along the readout) and the
readout length is even, the centred orthonormal 2-D FFT restricted to the sampled rows factorises as

    M F(S_c x) = post * fft_x( F_rows (pre * S_c * x) )

with ``F_rows`` ``[M, ny]`` the sampled rows of the centred 1-D DFT along ky (row weights folded in), ``fft_x`` the
plain orthonormal FFT along the readout and ``pre = (-1)^j``, ``post = (-1)^(nx/2) (-1)^k`` the readout centring
(:func:`cardiac_mri.sense._checkerboard` in 1-D). The ky transform is a pair of matrix products
(:class:`~cardiac_mri.pruned_dft.PrunedDFT`, one Cooley-Tukey stage), so only the ``M`` measured rows are ever
transformed along the readout; in the normal operator ``A^H A`` the readout FFTs cancel and only the ky products
remain. The coil-map products, the ky products and the coil sum run coil by coil on blocks of a few frames
(:data:`CHUNK_BYTES` per image block), so that their intermediate arrays stay in the CPU cache instead of making
full passes over ``[ny, frames, coils, nx]`` arrays in memory; the sampled rows ``[M, C, frames, nx]`` and the
block buffers are workspaces reused across calls (a fresh 35-120 MB array per call cost more than the FFTs: page
faults; ``benchmarks/RESULTS.md``). No autograd: :class:`SenseOperator` uses this path only when no gradient is
being recorded through the input.
"""

from __future__ import annotations

import torch

from cardiac_mri.pruned_dft import PrunedDFT

CHUNK_BYTES = 2 << 20
"""Target size of one coil image block ``[ny, frames, nx]`` on the CPU (at least one frame). 1-2 MiB measured best
(a block of one 192x192 frame, 0.3 MiB, makes the matrix products too narrow; 4 MiB spills the cache)."""


def row_pattern(mask: torch.Tensor) -> torch.Tensor | None:
    """Per-row weights ``[ny]`` if ``mask`` (``[ny, nx]`` or ``[T, ny, nx]``) is constant along the readout and
    over frames, else ``None``."""
    m2 = mask if mask.ndim == 2 else mask[0]
    if mask.ndim == 3 and not torch.equal(mask, m2.expand_as(mask)):
        return None
    w = m2[:, 0]
    if not torch.equal(m2, w[:, None].expand_as(m2)):
        return None
    return w


class RowSparsePlan:
    """Precomputed matrices and reusable workspaces for one (maps, row mask) pair.

    Args:
        maps: complex ``[C, ny, nx]`` (``nx`` even).
        weights: real ``[ny]`` row weights (0 = not sampled).
    Internally the sampled rows are kept in the ky transform's order (:attr:`PrunedDFT.order`), as
    ``[M, C, frames, nx]`` with frames = ``B * T`` flattened.
    """

    def __init__(self, maps: torch.Tensor, weights: torch.Tensor) -> None:
        c, ny, nx = maps.shape
        if nx % 2:
            raise ValueError(f"RowSparsePlan: the readout length must be even, got {nx}")
        dev, cdt = maps.device, maps.dtype
        rows = torch.nonzero(weights > 0).flatten()
        self.dft = PrunedDFT(ny, rows, weights[rows], cdt, dev)  # F_rows, [M, ny]
        self.rows = rows[self.dft.order].tolist()  # k-space row of each internal row, in the DFT's order
        j = torch.arange(nx, device=dev)
        board = (1 - 2 * (j % 2)).to(maps.real.dtype)  # (-1)^j
        self.post = board * (-1.0 if (nx // 2) % 2 else 1.0)  # [nx]
        self.maps = (maps * board)[:, :, None].contiguous()  # pre * S, [C, ny, 1, nx]
        self.maps_conj = self.maps.conj().resolve_conj()
        self.shape = (c, ny, nx)
        self.chunk_bytes = CHUNK_BYTES if dev.type == "cpu" else 1 << 62  # no cache to fit on other devices: one block
        self._ws: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    @property
    def num_rows(self) -> int:
        return len(self.rows)

    def _frame_blocks(self, frames: int) -> list[tuple[int, int]]:
        """``[(start, stop), ...]`` frame ranges of about :data:`CHUNK_BYTES` per coil image block."""
        _, ny, nx = self.shape
        step = max(1, self.chunk_bytes // (ny * nx * self.maps.element_size()))
        return [(a, min(frames, a + step)) for a in range(0, frames, step)]

    def _workspace(self, frames: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(block (flat, one coil image block), rows [M, C, F, nx], spec [M, C, F, nx])`` for ``F`` frames."""
        if frames not in self._ws:
            c, ny, nx = self.shape
            a, b = self._frame_blocks(frames)[0]
            kw = {"dtype": self.maps.dtype, "device": self.maps.device}
            self._ws = {frames: (torch.empty(ny * (b - a) * nx, **kw), torch.empty(self.num_rows, c, frames, nx, **kw),
                                 torch.empty(self.num_rows, c, frames, nx, **kw))}
        return self._ws[frames]

    def _block(self, frames: int, n: int) -> torch.Tensor:
        """The image block workspace as ``[ny, n, nx]``."""
        _, ny, nx = self.shape
        return self._workspace(frames)[0][: ny * n * nx].view(ny, n, nx)

    def _ky_rows(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """``rows [M, C, F, nx] = F_rows (pre S_c x)`` for images ``x [F, ny, nx]``."""
        frames, ny, _ = x.shape
        for a, b in self._frame_blocks(frames):
            img, xb = self._block(frames, b - a), x[a:b].permute(1, 0, 2)
            for c in range(self.shape[0]):
                torch.mul(xb, self.maps[c], out=img)
                self.dft.forward(img.view(ny, -1), rows[:, c, a:b].view(self.num_rows, -1))
        return rows

    def _combine(self, rows: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``out [F, ny, nx] = sum_c conj(pre S_c) F_rows^H rows[:, c]`` for ``rows [M, C, F, nx]``."""
        frames, ny, _ = out.shape
        for a, b in self._frame_blocks(frames):
            img, acc = self._block(frames, b - a), out[a:b].permute(1, 0, 2)
            for c in range(self.shape[0]):
                self.dft.adjoint(rows[:, c, a:b].view(self.num_rows, -1), img.view(ny, -1))
                if c == 0:
                    torch.mul(img, self.maps_conj[c], out=acc)
                else:
                    acc.addcmul_(img, self.maps_conj[c])
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Masked multi-coil k-space ``[B, T, C, ny, nx]`` (fresh) of images ``x [B, T, ny, nx]``."""
        b, t, ny, nx = x.shape
        c = self.shape[0]
        _, rows, spec = self._workspace(b * t)
        self._ky_rows(x.reshape(b * t, ny, nx), rows)
        torch.fft.fft(rows, dim=-1, norm="ortho", out=spec)
        out = torch.zeros(b, t, c, ny, nx, dtype=spec.dtype, device=spec.device)
        for i, r in enumerate(self.rows):  # post-centring and scatter into the k-space rows, one pass
            torch.mul(spec[i].view(c, b, t, nx).permute(1, 2, 0, 3), self.post, out=out[:, :, :, r])
        return out

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``A^H y``: k-space ``[B, T, C, ny, nx]`` -> image ``[B, T, ny, nx]`` (only the sampled rows are read)."""
        b, t, c, ny, nx = y.shape
        _, rows, spec = self._workspace(b * t)
        for i, r in enumerate(self.rows):  # gather and post-centring, one pass
            torch.mul(y[:, :, :, r].permute(2, 0, 1, 3), self.post, out=rows[i].view(c, b, t, nx))
        torch.fft.ifft(rows, dim=-1, norm="ortho", out=spec)
        out = torch.empty(b, t, ny, nx, dtype=spec.dtype, device=spec.device)
        self._combine(spec, out.view(b * t, ny, nx))
        return out

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``A^H A x`` for ``x [B, T, ny, nx]``: the ky products there and back (the readout FFTs and centring
        cancel)."""
        b, t, ny, nx = x.shape
        _, rows, _ = self._workspace(b * t)
        self._ky_rows(x.reshape(b * t, ny, nx), rows)
        out = torch.empty(b, t, ny, nx, dtype=rows.dtype, device=rows.device)
        self._combine(rows, out.view(b * t, ny, nx))
        return out
