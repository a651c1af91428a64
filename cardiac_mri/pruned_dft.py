"""The centred orthonormal 1-D DFT evaluated at a few output rows, as matrix products (one Cooley-Tukey stage).

For ``n = P Q`` and input index ``y = q P + p`` the DFT at (unshifted) frequency ``k'`` is

    X[k'] = sum_p exp(-2 pi i k' p / n) Z[k' mod Q, p],    Z[r, p] = sum_q exp(-2 pi i r q / Q) v[q P + p]

so the ``M`` sampled rows cost ``|R| n + M_pad P`` multiply-adds per column (``R`` the residues ``k' mod Q`` that
occur, ``M_pad`` the rows padded to equal groups per residue) instead of ``M n`` for the plain product with the
``M`` DFT rows. :class:`PrunedDFT` picks the factorisation (or the plain product) with the fewest operations.
The centring (``fftshift(fft(ifftshift(v)))``) is a phase per output row: ``X_c[k] = e^{2 pi i k' (n//2) / n}
X[k']`` with ``k' = (k - n//2) mod n``, folded into the second stage with the row weights.
"""

from __future__ import annotations

import math

import torch


def _choose(kp: torch.Tensor, n: int) -> tuple[int, float]:
    """``(Q, cost)`` of the cheapest factorisation, cost in complex multiply-adds per column (``Q = 1``: the plain
    product, ``M n``). The first stage is memory-bound, so it is charged at least 4 per element, plus two passes
    over the data; a factorisation must save 20 % to be preferred to the plain product."""
    dense = float(kp.numel() * n)
    best = (1, float("inf"))
    for q in range(2, n):
        if n % q:
            continue
        counts = torch.bincount(kp % q, minlength=q)
        used = int((counts > 0).sum())
        cost = max(used, 4) * n + used * int(counts.max()) * (n // q) + 2 * n
        if cost < best[1]:
            best = (q, float(cost))
    return best if best[1] < 0.8 * dense else (1, dense)


class PrunedDFT:
    """Rows ``rows`` (centred indices, sorted) of the centred orthonormal DFT of length ``n``, times ``weights``.

    ``forward(v [n, N], out [M, N])`` and its adjoint ``adjoint(x [M, N], out [n, N])``; complex ``dtype``.
    """

    def __init__(self, n: int, rows: torch.Tensor, weights: torch.Tensor, dtype: torch.dtype,
                 device: torch.device | None = None) -> None:
        rows = rows.to(torch.int64).cpu()
        kp = (rows - n // 2) % n  # unshifted frequencies
        a = weights.to(torch.float64).cpu() * torch.exp(2j * math.pi * kp.double() * (n // 2) / n) / math.sqrt(n)
        self.n, self.m = n, int(rows.numel())
        self.q, self.cost = _choose(kp, n)
        q, p = self.q, n // self.q
        self.p = p
        kw = {"dtype": dtype, "device": device}
        if q == 1:
            y = torch.arange(n, dtype=torch.float64)
            dense = a[:, None] * torch.exp(-2j * math.pi * kp.double()[:, None] * y[None] / n)
            self.dense = dense.to(**kw).contiguous()
            self.dense_h = self.dense.conj().T.contiguous()
            return
        res = kp % q
        self.residues = torch.unique(res)  # sorted
        groups = [torch.nonzero(res == r).flatten() for r in self.residues]
        self.g = max(len(gr) for gr in groups)
        stage2 = torch.zeros(len(groups), self.g, p, dtype=torch.complex128)
        sel = torch.empty(self.m, dtype=torch.int64)
        pp = torch.arange(p, dtype=torch.float64)
        for i, gr in enumerate(groups):
            stage2[i, : len(gr)] = a[gr, None] * torch.exp(-2j * math.pi * kp[gr].double()[:, None] * pp[None] / n)
            sel[gr] = i * self.g + torch.arange(len(gr))
        qq = torch.arange(q, dtype=torch.float64)
        stage1 = torch.exp(-2j * math.pi * self.residues.double()[:, None] * qq[None] / q)  # [|R|, Q]
        self.stage1 = stage1.to(**kw).contiguous()
        self.stage1_h = self.stage1.conj().T.contiguous()
        self.stage2 = stage2.to(**kw).contiguous()
        self.stage2_h = self.stage2.conj().transpose(1, 2).contiguous()
        self.sel = sel.to(device)
        self._ws: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def _workspace(self, cols: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if cols not in self._ws:
            kw = {"dtype": self.stage1.dtype, "device": self.stage1.device}
            r = self.stage1.shape[0]
            self._ws = {cols: (torch.empty(r, self.p, cols, **kw), torch.empty(r, self.g, cols, **kw),
                               torch.zeros(r, self.g, cols, **kw))}  # the last one's padding stays zero
        return self._ws[cols]

    def forward(self, v: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``out [M, N] = weights * (centred DFT of v [n, N])[rows]``."""
        if self.q == 1:
            return torch.mm(self.dense, v, out=out)
        cols = v.shape[1]
        z, y, _ = self._workspace(cols)
        torch.mm(self.stage1, v.view(self.q, self.p * cols), out=z.view(-1, self.p * cols))
        torch.bmm(self.stage2, z, out=y)
        return torch.index_select(y.view(-1, cols), 0, self.sel, out=out)

    def adjoint(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``out [n, N]`` = the adjoint of :meth:`forward` applied to ``x [M, N]``."""
        if self.q == 1:
            return torch.mm(self.dense_h, x, out=out)
        cols = x.shape[1]
        z, _, ypad = self._workspace(cols)
        ypad.view(-1, cols).index_copy_(0, self.sel, x)
        torch.bmm(self.stage2_h, ypad, out=z)
        torch.mm(self.stage1_h, z.view(-1, self.p * cols), out=out.view(self.q, self.p * cols))
        return out
