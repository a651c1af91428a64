"""Classical optical flow between consecutive frames, backward warping and occlusion masks (TCVR's warping loss).

TCVR (seed 004, Eq. 9-10) estimates flow with RAFT; this project downloads no network weights, so the flow is
TV-L1 (``skimage.registration.optical_flow_tvl1``; Zach et al. 2007, Wedel et al. 2009) on the frames' magnitude
scaled to [0, 1]. Convention (scikit-image's): ``f = tvl1(x_n, x_{n+1})`` has rows (v, u) with
``x_n(r, c) ~ x_{n+1}(r + v, c + u)``, so ``warp(x_{n+1}, f) ~ x_n`` (backward warping). The non-occlusion mask is
the forward-backward check of Meister et al. (2018): pixel p is kept where
``|f(p) + b(p + f(p))|^2 < 0.01 (|f(p)|^2 + |b(p + f(p))|^2) + 0.5``, b the flow from ``x_{n+1}`` to ``x_n``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

TVL1 = {"num_warp": 3, "num_iter": 10}  # cheaper than scikit-image's defaults (5, 10): ~0.02 s per 64x64 pair


def magnitude01(x: torch.Tensor) -> np.ndarray:
    """Frames ``[T, C, H, W]`` -> ``[T, H, W]`` float32 magnitude (over channels) divided by the video's maximum."""
    m = x.detach().double().pow(2).sum(1).sqrt().cpu().numpy()
    return (m / max(float(m.max()), 1e-12)).astype(np.float32)


def tvl1_flows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward flows ``f[n] = flow(x_n -> x_{n+1})`` and backward ``b[n] = flow(x_{n+1} -> x_n)``, each
    ``[T - 1, 2, H, W]`` (rows v, u in pixels), for frames ``x [T, C, H, W]``."""
    from skimage.registration import optical_flow_tvl1

    m = magnitude01(x)
    fwd = np.stack([optical_flow_tvl1(m[n], m[n + 1], **TVL1) for n in range(len(m) - 1)])
    bwd = np.stack([optical_flow_tvl1(m[n + 1], m[n], **TVL1) for n in range(len(m) - 1)])
    as_t = lambda a: torch.as_tensor(a, dtype=x.dtype, device=x.device)  # noqa: E731
    return as_t(fwd), as_t(bwd)


def warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warping: ``out(r, c) = x(r + v, c + u)`` by bilinear interpolation (border values outside), for
    ``x [N, C, H, W]`` and ``flow [N, 2, H, W]``; differentiable in ``x``."""
    n, _, h, w = x.shape
    rows = torch.arange(h, device=x.device, dtype=x.dtype)[:, None] + flow[:, 0]
    cols = torch.arange(w, device=x.device, dtype=x.dtype)[None, :] + flow[:, 1]
    grid = torch.stack([2.0 * cols / max(w - 1, 1) - 1.0, 2.0 * rows / max(h - 1, 1) - 1.0], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def non_occlusion(fwd: torch.Tensor, bwd: torch.Tensor, a1: float = 0.01, a2: float = 0.5) -> torch.Tensor:
    """Forward-backward consistency mask ``[N, 1, H, W]`` (1 = visible in both frames; module docstring)."""
    b_at = warp(bwd, fwd)
    err = (fwd + b_at).pow(2).sum(1, keepdim=True)
    bound = a1 * (fwd.pow(2).sum(1, keepdim=True) + b_at.pow(2).sum(1, keepdim=True)) + a2
    return (err < bound).to(fwd.dtype)


def warping_loss(x: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """TCVR Eq. 9: ``sum_n mean(M (x_n - W(x_{n+1}, f_n))^2)`` for frames ``x [T, C, H, W]``, divided by the
    frames' mean square (detached), so that it is unitless; flow and mask are constants."""
    diff = mask * (x[:-1] - warp(x[1:], flow))
    return diff.pow(2).mean(dim=(1, 2, 3)).sum() / x.detach().pow(2).mean().clamp_min(1e-12)
