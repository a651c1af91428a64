"""Fast path of :class:`~cardiac_mri.sense.SenseOperator` for Cartesian row masks (the CMRxRecon case).

When the mask samples whole ky rows (the same rows in every frame, weights constant along the readout) and the
readout length is even, the centred orthonormal 2-D FFT restricted to the sampled rows factorises as

    M F(S_c x) = post * fft_x( F_rows (pre * S_c * x) )

with ``F_rows`` ``[M, ny]`` the sampled rows of the centred 1-D DFT along ky (row weights folded in), ``fft_x`` the
plain orthonormal FFT along the readout and ``pre = (-1)^j``, ``post = (-1)^(nx/2) (-1)^k`` the readout centring
(:func:`cardiac_mri.sense._checkerboard` in 1-D). The ky transform of all frames and coils is applied to
``[ny, B*T*C*nx]`` at once by matrix products (:class:`~cardiac_mri.pruned_dft.PrunedDFT`, one Cooley-Tukey
stage), so only the ``M`` measured rows are ever transformed along the readout; in the normal operator ``A^H A``
the readout FFTs cancel and only the ky products remain. Intermediate arrays live in
workspaces allocated once per batch shape and reused (a fresh 35-120 MB array per call cost more than the FFTs:
page faults; ``benchmarks/RESULTS.md``). No autograd: :class:`SenseOperator` uses this path only when no gradient
is being recorded through the input.
"""

from __future__ import annotations

import torch

from cardiac_mri.pruned_dft import PrunedDFT


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
    """

    def __init__(self, maps: torch.Tensor, weights: torch.Tensor) -> None:
        c, ny, nx = maps.shape
        if nx % 2:
            raise ValueError(f"RowSparsePlan: the readout length must be even, got {nx}")
        dev, cdt = maps.device, maps.dtype
        self.rows = torch.nonzero(weights > 0).flatten().to(dev)
        self.dft = PrunedDFT(ny, self.rows, weights[self.rows], cdt, dev)  # F_rows, [M, ny]
        j = torch.arange(nx, device=dev)
        board = (1 - 2 * (j % 2)).to(maps.real.dtype)  # (-1)^j
        self.post = board * (-1.0 if (nx // 2) % 2 else 1.0)  # [nx]
        pre_maps = (maps * board).permute(1, 0, 2)  # [ny, C, nx]
        self.maps5 = pre_maps[:, None, None].contiguous()  # [ny, 1, 1, C, nx]
        self.maps5_conj = self.maps5.conj().resolve_conj()
        self.shape = (c, ny, nx)
        self._ws: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    @property
    def num_rows(self) -> int:
        return int(self.rows.numel())

    def _workspace(self, b: int, t: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(image [ny, B, T, C, nx], rows [M, B, T, C, nx], rows2 [M, B, T, C, nx])`` for batch ``(b, t)``."""
        key = (b, t)
        if key not in self._ws:
            c, ny, nx = self.shape
            m = self.num_rows
            kw = {"dtype": self.maps5.dtype, "device": self.maps5.device}
            self._ws = {key: (torch.empty(ny, b, t, c, nx, **kw), torch.empty(m, b, t, c, nx, **kw),
                              torch.empty(m, b, t, c, nx, **kw))}
        return self._ws[key]

    def _coil_rows(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, T, ny, nx]`` -> ``(F_rows (pre S x)`` as ``[M, B, T, C, nx]``, the image workspace)."""
        b, t, ny, _ = x.shape
        img, rows, _ = self._workspace(b, t)
        torch.mul(x.permute(2, 0, 1, 3).unsqueeze(3), self.maps5, out=img)
        self.dft.forward(img.view(ny, -1), rows.view(self.num_rows, -1))
        return rows, img

    def _combine(self, rows: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
        """``sum_c conj(pre S_c) F_rows^H rows`` -> image ``[B, T, ny, nx]`` (fresh, contiguous)."""
        ny = img.shape[0]
        self.dft.adjoint(rows.view(self.num_rows, -1), img.view(ny, -1))
        img.mul_(self.maps5_conj)
        return img.sum(dim=3).permute(1, 2, 0, 3).contiguous()

    def forward(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Masked multi-coil k-space ``[B, T, C, ny, nx]`` of images ``x [B, T, ny, nx]`` (into ``out`` if given)."""
        b, t, ny, nx = x.shape
        rows, _ = self._coil_rows(x)
        spec = self._workspace(b, t)[2]
        torch.fft.fft(rows, dim=-1, norm="ortho", out=spec)
        spec.mul_(self.post)
        if out is None:
            out = torch.zeros(b, t, self.shape[0], ny, nx, dtype=spec.dtype, device=spec.device)
        else:
            out.zero_()
        out.permute(3, 0, 1, 2, 4).index_copy_(0, self.rows, spec)
        return out

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``A^H y``: k-space ``[B, T, C, ny, nx]`` -> image ``[B, T, ny, nx]`` (only the sampled rows are read)."""
        b, t = y.shape[:2]
        img, rows, spec = self._workspace(b, t)
        torch.index_select(y.permute(3, 0, 1, 2, 4), 0, self.rows, out=rows)
        rows.mul_(self.post)
        torch.fft.ifft(rows, dim=-1, norm="ortho", out=spec)
        return self._combine(spec, img)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``A^H A x`` for ``x [B, T, ny, nx]``: two matrix products (the readout FFTs and centring cancel)."""
        rows, img = self._coil_rows(x)
        return self._combine(rows, img)
