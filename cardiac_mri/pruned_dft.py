"""The centred orthonormal 1-D DFT evaluated at a few output rows, as matrix products (one Cooley-Tukey stage).

For ``n = P Q`` and input index ``y = q P + p`` the DFT at (unshifted) frequency ``k'`` is

    X[k'] = sum_p exp(-2 pi i k' p / n) Z[k' mod Q, p],    Z[r, p] = sum_q exp(-2 pi i r q / Q) v[q P + p]

so the ``M`` sampled rows cost ``|R| n + M P`` multiply-adds per column (``R`` the residues ``k' mod Q`` that
occur) instead of ``M n`` for the plain product with the ``M`` DFT rows. The second stage is one matrix product per
residue group (exact group sizes, no padding), so the outputs come in group order (:attr:`PrunedDFT.order`).
:class:`PrunedDFT` picks the factorisation (or the plain product) with the fewest operations. The centring
(``fftshift(fft(ifftshift(v)))``) is a phase per output row: ``X_c[k] = e^{2 pi i k' (n//2) / n} X[k']`` with
``k' = (k - n//2) mod n``, folded into the second stage with the row weights.
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
        used = int(torch.unique(kp % q).numel())
        cost = max(used, 4) * n + kp.numel() * (n // q) + 2 * n
        if cost < best[1]:
            best = (q, float(cost))
    return best if best[1] < 0.8 * dense else (1, dense)


class PrunedDFT:
    """Rows ``rows`` (centred indices) of the centred orthonormal DFT of length ``n``, times ``weights``.

    ``forward(v [n, N], out [M, N])`` and its adjoint ``adjoint(x [M, N], out [n, N])``; complex ``dtype``. Output
    row ``i`` of ``forward`` (input row ``i`` of ``adjoint``) is ``rows[order[i]]``. ``v`` and ``out [n, N]`` are
    contiguous; ``[M, N]`` arguments need only a unit column stride (a row block of a larger array).
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
            self.order = torch.arange(self.m)
            return
        res = kp % q
        residues = torch.unique(res)  # sorted
        groups = [torch.nonzero(res == r).flatten() for r in residues]
        self.order = torch.cat(groups)
        pp = torch.arange(p, dtype=torch.float64)
        stage2 = [a[g, None] * torch.exp(-2j * math.pi * kp[g].double()[:, None] * pp[None] / n) for g in groups]
        self.stage2 = [s.to(**kw).contiguous() for s in stage2]  # [|g|, P] per residue
        self.stage2_h = [s.conj().T.to(**kw).contiguous() for s in stage2]  # [P, |g|]
        self.bounds = torch.cumsum(torch.tensor([0] + [len(g) for g in groups]), 0).tolist()
        qq = torch.arange(q, dtype=torch.float64)
        stage1 = torch.exp(-2j * math.pi * residues.double()[:, None] * qq[None] / q)  # [|R|, Q]
        self.stage1 = stage1.to(**kw).contiguous()
        self.stage1_h = self.stage1.conj().T.contiguous()
        self._z = torch.empty(0, **kw)

    def _workspace(self, cols: int) -> torch.Tensor:
        """The first stage's ``Z`` as ``[|R|, P, cols]`` (a view of one buffer, grown when needed)."""
        size = self.stage1.shape[0] * self.p * cols
        if self._z.numel() < size:
            self._z = torch.empty(size, dtype=self._z.dtype, device=self._z.device)
        return self._z[:size].view(-1, self.p, cols)

    def forward(self, v: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``out [M, N] = weights * (centred DFT of v [n, N])[rows[order]]``."""
        if self.q == 1:
            return torch.mm(self.dense, v, out=out)
        cols = v.shape[1]
        z = self._workspace(cols)
        torch.mm(self.stage1, v.view(self.q, self.p * cols), out=z.view(-1, self.p * cols))
        for i, s in enumerate(self.stage2):
            torch.mm(s, z[i], out=out[self.bounds[i]:self.bounds[i + 1]])
        return out

    def adjoint(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``out [n, N]`` = the adjoint of :meth:`forward` applied to ``x [M, N]``."""
        if self.q == 1:
            return torch.mm(self.dense_h, x, out=out)
        cols = x.shape[1]
        z = self._workspace(cols)
        for i, s in enumerate(self.stage2_h):
            torch.mm(s, x[self.bounds[i]:self.bounds[i + 1]], out=z[i])
        torch.mm(self.stage1_h, z.view(-1, self.p * cols), out=out.view(self.q, self.p * cols))
        return out
