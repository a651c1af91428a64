"""Torch forward model: movie -> visibilities -> closure phases, log closure amplitudes, flux (paper Eq. 11-15).

Movies are ``[B, T, 1, H, W]`` (or ``[B, T, H, W]``) in Jy/pixel, ehtim orientation (row 0 north, column 0 east),
pixel size ``psize`` radians. The ideal visibility of baseline m (frame f, spatial frequency (u, v) in wavelengths) is

    V_m = P(u) P(v) sum_{r,c} x[f, r, c] exp(+2 pi i (u x_c + v y_r)),
    x_c = ((W-1)/2 - c) psize,  y_r = ((H-1)/2 - r) psize,  P(u) = 4 sin^2(pi u psize) / (2 pi u psize)^2,

ehtim's ``ftmatrix`` with its default triangle pulse. The kernel is separable, so V = Fy (X Fx^T): one matmul with a
``[T, W, 2K]`` table of cos/sin (K = most baselines in a frame) and one weighted sum over rows with a ``[T, H, K]``
table. Memory is O(T K (H + W)); the dense ``[M, H*W]`` matrix is never formed. Tables are float64 buffers (phases
up to ~1e2 rad need it), cast to the input's dtype in ``forward``; ``.to(device)`` moves them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from blackhole.measurements import ClosureData


def triangle_pulse(u: np.ndarray, psize: float) -> np.ndarray:
    """Fourier transform of ehtim's triangle pulse along one axis, P(u) = sinc^2(u psize) (1 at u = 0)."""
    return np.sinc(np.asarray(u, dtype=np.float64) * psize) ** 2


def pixel_coordinates(n: int, psize: float) -> np.ndarray:
    """Pixel centres (radians) of an ehtim axis: index 0 at +(n-1)/2 psize (north / east)."""
    return ((n - 1) / 2.0 - np.arange(n)) * psize


@dataclass(frozen=True)
class ForwardOutput:
    """Model quantities: vis_re, vis_im [B, T*K] Jy in the padded slot layout (``VisibilityModel.slot`` maps data rows
    to slots); cphase [B, Ncp] rad in (-pi, pi]; logcamp [B, Nlca]; flux [B, T] Jy."""

    vis_re: torch.Tensor
    vis_im: torch.Tensor
    cphase: torch.Tensor
    logcamp: torch.Tensor
    flux: torch.Tensor


class VisibilityModel(nn.Module):
    """Separable DFT with triangle pulse for baselines grouped by frame.

    Args:
        u, v: [M] spatial frequencies (wavelengths); frame: [M] frame index of each row; n_frames: T;
        height, width: image size (pixels); psize: pixel size (radians).
    ``forward(x [B, T, H, W]) -> (re, im)`` each ``[B, T*K]``; row m of the input sits at ``slot[m]``.
    """

    def __init__(self, u: np.ndarray, v: np.ndarray, frame: np.ndarray, n_frames: int, height: int, width: int,
                 psize: float) -> None:
        super().__init__()
        u, v, frame = np.asarray(u, np.float64), np.asarray(v, np.float64), np.asarray(frame, np.int64)
        if not (u.shape == v.shape == frame.shape and u.ndim == 1):
            raise ValueError(f"VisibilityModel: u, v, frame must be 1-D of equal length, got {u.shape}, {v.shape}, "
                             f"{frame.shape}")
        if frame.size and (frame.min() < 0 or frame.max() >= n_frames):
            raise ValueError(f"VisibilityModel: frame indices must lie in [0, {n_frames}), found "
                             f"[{frame.min()}, {frame.max()}]")
        self.n_frames, self.height, self.width, self.psize = n_frames, height, width, float(psize)
        counts = np.bincount(frame, minlength=n_frames)
        k = max(int(counts.max()) if counts.size else 0, 1)
        self.k = k
        # slot of each row in the padded [T, K] layout (rows keep their order within a frame)
        order = np.argsort(frame, kind="stable")
        pos = np.empty_like(order)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        pos[order] = np.arange(len(order)) - starts[frame[order]]
        slot = frame * k + pos
        uu = np.zeros(n_frames * k)
        vv = np.zeros(n_frames * k)
        uu[slot], vv[slot] = u, v
        uu, vv = uu.reshape(n_frames, k), vv.reshape(n_frames, k)
        xs, ys = pixel_coordinates(width, psize), pixel_coordinates(height, psize)
        ax = 2 * np.pi * uu[:, :, None] * xs[None, None, :]  # [T, K, W]
        ay = 2 * np.pi * vv[:, :, None] * ys[None, None, :]  # [T, K, H]
        pulse = triangle_pulse(uu, psize) * triangle_pulse(vv, psize)  # [T, K]
        fx = np.concatenate([np.cos(ax), np.sin(ax)], axis=1).transpose(0, 2, 1)  # [T, W, 2K]
        self.register_buffer("fx", torch.as_tensor(fx, dtype=torch.float64))
        self.register_buffer("cos_y", torch.as_tensor((np.cos(ay) * pulse[..., None]).transpose(0, 2, 1),
                                                      dtype=torch.float64))  # [T, H, K]
        self.register_buffer("sin_y", torch.as_tensor((np.sin(ay) * pulse[..., None]).transpose(0, 2, 1),
                                                      dtype=torch.float64))
        self.register_buffer("slot", torch.as_tensor(slot, dtype=torch.int64), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = _as_bthw(x, self.n_frames, self.height, self.width)
        fx, cy, sy = (t.to(dtype=x.dtype) for t in (self.fx, self.cos_y, self.sin_y))
        cs = torch.matmul(x, fx)  # [B, T, H, 2K]: sum_c x cos(a_c), sum_c x sin(a_c)
        c, s = cs[..., : self.k], cs[..., self.k:]
        re = (c * cy - s * sy).sum(dim=2)  # [B, T, K]
        im = (c * sy + s * cy).sum(dim=2)
        return re.reshape(x.shape[0], -1), im.reshape(x.shape[0], -1)


def _as_bthw(x: torch.Tensor, t: int, h: int, w: int) -> torch.Tensor:
    if x.dim() == 5:
        if x.shape[2] != 1:
            raise ValueError(f"black hole forward model: expected 1 channel in [B, T, 1, H, W], got {tuple(x.shape)}")
        x = x[:, :, 0]
    if x.dim() != 4 or tuple(x.shape[1:]) != (t, h, w):
        raise ValueError(f"black hole forward model: expected a movie [B, {t}, 1, {h}, {w}] or [B, {t}, {h}, {w}], "
                         f"got {tuple(x.shape)}")
    return x


def wrap_angle(a: torch.Tensor) -> torch.Tensor:
    """Wrap radians to (-pi, pi]."""
    return torch.atan2(torch.sin(a), torch.cos(a))


class ClosureForward(nn.Module):
    """Movie -> closure phases (rad), log closure amplitudes and flux, for the closure sets of ``data``.

    ``forward(x [B, T, 1, H, W]) -> ForwardOutput``. Differentiable, batched over B; gradients are exact (autograd).
    """

    def __init__(self, data: ClosureData, height: int, width: int, psize: float) -> None:
        super().__init__()
        tab = data.table
        self.vis_model = VisibilityModel(tab.u, tab.v, tab.frame, tab.n_frames, height, width, psize)
        slot = self.vis_model.slot.numpy()
        cs = data.closures
        self.register_buffer("cp_idx", torch.as_tensor(slot[cs.cp_rows].reshape(-1, 3), dtype=torch.int64),
                             persistent=False)
        self.register_buffer("cp_sign", torch.as_tensor(cs.cp_sign.reshape(-1, 3), dtype=torch.float64))
        self.register_buffer("lca_idx", torch.as_tensor(slot[cs.lca_rows].reshape(-1, 4), dtype=torch.int64),
                             persistent=False)
        self.register_buffer("lca_coef", torch.tensor([1.0, 1.0, -1.0, -1.0], dtype=torch.float64))

    @property
    def n_frames(self) -> int:
        return self.vis_model.n_frames

    def forward(self, x: torch.Tensor) -> ForwardOutput:
        vm = self.vis_model
        x4 = _as_bthw(x, vm.n_frames, vm.height, vm.width)
        re, im = vm(x4)
        # gather before atan2/log: only real baselines enter (padded slots hold u = v = 0, the total flux)
        phase = torch.atan2(im[:, self.cp_idx], re[:, self.cp_idx])
        cphase = wrap_angle((phase * self.cp_sign.to(x4.dtype)).sum(-1))
        log_amp = 0.5 * torch.log(re[:, self.lca_idx] ** 2 + im[:, self.lca_idx] ** 2)
        logcamp = (log_amp * self.lca_coef.to(x4.dtype)).sum(-1)
        flux = x4.sum(dim=(-2, -1))
        return ForwardOutput(vis_re=re, vis_im=im, cphase=cphase, logcamp=logcamp, flux=flux)
