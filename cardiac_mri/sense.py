"""Multi-coil SENSE forward model for cine videos (paper Sec. 4.3, Eq. for y^[j], extended to coils).

``y[b, t, c] = M_t * F(S_c * x[b, t])`` with ``F`` the centred orthonormal 2-D FFT
(``fftshift(fft2(ifftshift(.), norm='ortho'))``), ``S_c`` the coil sensitivity maps and ``M_t`` the ky mask of
frame ``t``. Images are complex ``[B, T, H, W]``, measurements complex ``[B, T, C, H, W]``; computation in the maps'
complex dtype (complex64 by default). Single-coil mode (the paper's setting) is ``C = 1`` with a map of ones.
At the network boundary images are two real channels; :func:`complex_to_channels` and :func:`channels_to_complex`
convert ``[..., 2, H, W]`` <-> ``[..., H, W]``.
"""

from __future__ import annotations

import torch
from torch import nn

from cardiac_mri.sense_rows import RowSparsePlan, row_pattern

_DIMS = (-2, -1)


def _checkerboard(h: int, w: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, float] | None:
    """``(C, s)`` with ``C = (-1)^(i + j)`` ``[h, w]`` and ``s = (-1)^(h/2 + w/2)`` for even ``h, w`` (else ``None``).

    For even sizes the centred FFT is a modulated plain FFT, ``fft2c(x) = s C * fft2(C * x)`` (and
    ``ifft2c(k) = s C * ifft2(C * k)``), which replaces the four ``fftshift`` copies by two multiplications that
    are folded into the coil maps and the mask.
    """
    if h % 2 or w % 2:
        return None
    i = torch.arange(h, device=device)[:, None]
    j = torch.arange(w, device=device)[None, :]
    sign = -1.0 if (h // 2 + w // 2) % 2 else 1.0
    return (1 - 2 * ((i + j) % 2)).to(dtype), sign


def fft2c(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D FFT over the last two axes: image ``[..., H, W]`` -> k-space ``[..., H, W]``."""
    return torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(x, dim=_DIMS), norm="ortho"), dim=_DIMS)


def ifft2c(k: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal inverse 2-D FFT over the last two axes: k-space ``[..., H, W]`` -> image."""
    return torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(k, dim=_DIMS), norm="ortho"), dim=_DIMS)


def channels_to_complex(x: torch.Tensor) -> torch.Tensor:
    """Real ``[..., 2, H, W]`` (real, imag channels) -> complex ``[..., H, W]``."""
    if x.is_complex() or x.ndim < 3 or x.shape[-3] != 2:
        raise ValueError(f"channels_to_complex: expected a real tensor [..., 2, H, W], got {tuple(x.shape)} {x.dtype}")
    return torch.complex(x[..., 0, :, :], x[..., 1, :, :])


def complex_to_channels(x: torch.Tensor) -> torch.Tensor:
    """Complex ``[..., H, W]`` -> real ``[..., 2, H, W]`` (real, imag channels)."""
    if not x.is_complex():
        raise ValueError(f"complex_to_channels: expected a complex tensor, got {x.dtype}")
    return torch.stack((x.real, x.imag), dim=-3)


class SenseOperator(nn.Module):
    """Multi-coil Cartesian SENSE operator on videos, an ``nn.Module`` whose maps and mask are buffers.

    Args:
        maps: complex coil sensitivities ``[C, H, W]`` (``C = 1`` with ones for single coil).
        mask: real 0/1 (or non-negative weights) ``[H, W]`` (same for all frames) or ``[T, H, W]`` (rows = ky).
    ``op(x)``: complex ``[B, T, H, W]`` -> ``[B, T, C, H, W]``; ``op.adjoint(y)`` the exact adjoint;
    ``op.normal(x) = op.adjoint(op(x))``.
    The maps are stored as a real buffer ``maps_ri`` ``[C, H, W, 2]`` (``torch.view_as_real``) so that
    ``op.to(torch.float64)`` gives complex128 maps instead of dropping their imaginary part; ``op.maps`` is the
    complex view.

    Row masks (whole ky lines, the same in every frame; even readout length) take the fast path of
    :mod:`cardiac_mri.sense_rows` (a matrix product over the sampled ky rows, readout FFTs on those rows only,
    reused workspaces) whenever no gradient is recorded through the input; other masks, odd readouts and autograd
    use the FFT path. Both give the same operator (tests: adjoint, sigpy, numpy).
    """

    maps_ri: torch.Tensor
    mask: torch.Tensor

    def __init__(self, maps: torch.Tensor, mask: torch.Tensor) -> None:
        super().__init__()
        maps = torch.as_tensor(maps)
        mask = torch.as_tensor(mask)
        if maps.ndim != 3:
            raise ValueError(f"SenseOperator: maps must be [C, H, W], got shape {tuple(maps.shape)}")
        if not maps.is_complex():
            maps = maps.to(torch.complex64)
        if mask.is_complex():
            raise ValueError("SenseOperator: mask must be real (0/1 or weights), got a complex tensor")
        if mask.ndim not in (2, 3) or tuple(mask.shape[-2:]) != tuple(maps.shape[-2:]):
            raise ValueError(
                f"SenseOperator: mask must be [H, W] or [T, H, W] with (H, W) = {tuple(maps.shape[-2:])} of the "
                f"maps, got {tuple(mask.shape)}"
            )
        if bool((mask < 0).any()):
            raise ValueError("SenseOperator: mask has negative entries")
        real = maps.real.dtype
        self.register_buffer("maps_ri", torch.view_as_real(maps.contiguous()).clone())
        self.register_buffer("mask", mask.to(real).contiguous())
        self._plan: RowSparsePlan | None = None
        self._plan_checked = False

    def _apply(self, fn, recurse=True):  # .to() / .cuda() / .double(): the cached plan follows the buffers
        self._plan, self._plan_checked = None, False
        return super()._apply(fn, recurse)

    def row_plan(self) -> RowSparsePlan | None:
        """The :class:`~cardiac_mri.sense_rows.RowSparsePlan` of a row mask (built once), or ``None``."""
        if not self._plan_checked:
            weights = row_pattern(self.mask)
            ok = weights is not None and self.image_shape[1] % 2 == 0 and bool((weights > 0).any())
            self._plan = RowSparsePlan(self.maps, weights) if ok else None
            self._plan_checked = True
        return self._plan

    def _fast(self, x: torch.Tensor) -> RowSparsePlan | None:
        if torch.is_grad_enabled() and (x.requires_grad or self.maps_ri.requires_grad):
            return None
        if self.mask.ndim == 3 and self.mask.shape[0] != x.shape[1]:
            return None  # the FFT path raises the frame-count error
        return self.row_plan()

    @property
    def maps(self) -> torch.Tensor:
        """Complex coil maps ``[C, H, W]`` (a view of the ``maps_ri`` buffer)."""
        return torch.view_as_complex(self.maps_ri)

    def support(self) -> torch.Tensor:
        """``[H, W]`` bool: the pixels some coil map sees. The operator is blind to the others (``A x`` does not
        depend on them), and with ESPIRiT maps (eigenvalue crop) they are where no coil receives signal: the
        SENSE image model's object support."""
        return (self.maps.abs() > 0).any(dim=0)

    @classmethod
    def single_coil(cls, mask: torch.Tensor, dtype: torch.dtype = torch.complex64) -> SenseOperator:
        """The paper's single-coil operator ``y = M * F(x)``: one map of ones, ``C = 1``, complex ``dtype``."""
        mask = torch.as_tensor(mask)
        ones = torch.ones((1, *mask.shape[-2:]), dtype=dtype, device=mask.device)
        return cls(ones, mask)

    @property
    def num_coils(self) -> int:
        return self.maps.shape[0]

    @property
    def image_shape(self) -> tuple[int, int]:
        return (self.maps.shape[-2], self.maps.shape[-1])

    def _frame_mask(self, frames: int) -> torch.Tensor:
        """Mask broadcastable against ``[B, T, C, H, W]``."""
        if self.mask.ndim == 2:
            return self.mask
        if self.mask.shape[0] != frames:
            raise ValueError(f"SenseOperator: the mask has {self.mask.shape[0]} frames, the input has {frames}")
        return self.mask[:, None]

    def _check(self, x: torch.Tensor, ndim: int, what: str) -> None:
        if not x.is_complex():
            raise ValueError(f"SenseOperator.{what}: expected a complex tensor, got {x.dtype}")
        hw = self.image_shape
        if x.ndim != ndim or tuple(x.shape[-2:]) != hw or (ndim == 5 and x.shape[2] != self.num_coils):
            want = "[B, T, H, W]" if ndim == 4 else f"[B, T, C={self.num_coils}, H, W]"
            raise ValueError(f"SenseOperator.{what}: expected {want} with (H, W) = {hw}, got {tuple(x.shape)}")

    def _folded(self, frames: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """Maps and mask with the centring folded in (even sizes): ``(maps', mask', folded)``.

        ``M F(S x) = mask' * fft2(maps' * x)`` with ``maps' = C S`` and ``mask' = s C M`` (see :func:`_checkerboard`).
        """
        mask = self._frame_mask(frames)
        folding = _checkerboard(*self.image_shape, mask.dtype, mask.device)
        if folding is None:
            return self.maps, mask, False
        board, sign = folding
        return self.maps * board, mask * (sign * board), True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Forward model: complex image video ``[B, T, H, W]`` -> masked multi-coil k-space ``[B, T, C, H, W]``."""
        self._check(x, 4, "forward")
        plan = self._fast(x)
        if plan is not None:
            return plan.forward(x.to(self.maps.dtype))
        maps, mask, folded = self._folded(x.shape[1])
        coil_images = x.to(maps.dtype)[:, :, None] * maps
        k = torch.fft.fft2(coil_images, norm="ortho") if folded else fft2c(coil_images)
        return k.mul_(mask)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Adjoint: k-space ``[B, T, C, H, W]`` -> image ``[B, T, H, W]`` (``sum_c conj(S_c) F^H (M y_c)``)."""
        self._check(y, 5, "adjoint")
        plan = self._fast(y)
        if plan is not None:
            return plan.adjoint(y.to(self.maps.dtype))
        maps, mask, folded = self._folded(y.shape[1])
        masked = mask * y.to(maps.dtype)
        coil_images = torch.fft.ifft2(masked, norm="ortho") if folded else ifft2c(masked)
        return coil_images.mul_(maps.conj()).sum(dim=2)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """Normal operator ``A^H A``: ``[B, T, H, W]`` -> ``[B, T, H, W]``."""
        self._check(x, 4, "normal")
        plan = self._fast(x)
        if plan is not None:
            return plan.normal(x.to(self.maps.dtype))
        maps, mask, folded = self._folded(x.shape[1])
        weight = mask**2  # M^H M (= M for a 0/1 mask); the +-1 folding squares away
        coil_images = x.to(maps.dtype)[:, :, None] * maps
        if folded:
            coil_images = torch.fft.ifft2(weight * torch.fft.fft2(coil_images, norm="ortho"), norm="ortho")
        else:
            coil_images = ifft2c(weight * fft2c(coil_images))
        return (maps.conj() * coil_images).sum(dim=2)

    def extra_repr(self) -> str:
        return f"coils={self.num_coils}, image_shape={self.image_shape}, mask_shape={tuple(self.mask.shape)}"
