"""Cartesian undersampling masks for cine MRI (rows = ky, phase encoding; columns = kx, read-out, always full).

The CMRxRecon 2023 rule: the 24 central ky lines (auto-calibration signal, ACS) plus every ``R``-th ky line starting
at line 0 (0-based), ``R`` in {4, 8, 10}; the same mask for every frame. The ACS block of ``n`` lines occupies rows
``ny // 2 - n // 2 ... ny // 2 - n // 2 + n - 1`` (the MATLAB ``zpad`` centring used by the challenge's own
``mySubsampling.m``). ``R`` does not count the ACS lines, so the effective acceleration is below ``R``.
The STeP paper (Sec. 4.3, App. B.2) uses 6x with 24 ACS lines and 8x with 12 ACS lines, the same mask every frame.
"""

from __future__ import annotations

import torch

#: The paper's settings: name -> (R, ACS lines). Sec. 4.3: "6x with 24 ACS (Tab. 2), 8x with 12 ACS (Fig. 6)".
PAPER_SETTINGS: dict[str, tuple[int, int]] = {"6x": (6, 24), "8x": (8, 12)}
#: The CMRxRecon accelerations (ACS is always 24 lines).
CMRXRECON_ACCELERATIONS: tuple[int, ...] = (4, 8, 10)
CMRXRECON_ACS = 24


def acs_rows(ny: int, n_acs: int) -> slice:
    """Rows (ky indices) of the centred ACS block of ``n_acs`` lines in a k-space of ``ny`` lines."""
    if not 0 <= n_acs <= ny:
        raise ValueError(f"acs_rows: n_acs must be in [0, ny={ny}], got {n_acs}")
    start = ny // 2 - n_acs // 2
    return slice(start, start + n_acs)


def equispaced_mask(
    ny: int,
    nx: int,
    acc: int,
    n_acs: int = CMRXRECON_ACS,
    *,
    frames: int | None = None,
    offset: int = 0,
    kt_shift: bool = False,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Equispaced ky mask with a centred ACS block.

    Args:
        ny, nx: k-space size (rows = ky, columns = kx).
        acc: ``R``, sample every ``R``-th ky line starting at ``offset`` (0 = the CMRxRecon rule).
        n_acs: number of fully sampled central lines.
        frames: ``None`` gives one ``[ny, nx]`` mask; an integer gives ``[frames, ny, nx]``.
        kt_shift: with ``frames``, shift the pattern by one line per frame (frame ``t`` samples lines
            ``(offset + t) mod R``): the sheared k-t lattice. Without it every frame gets the same mask.
    Returns:
        0/1 mask ``[ny, nx]`` or ``[frames, ny, nx]`` of ``dtype``.
    """
    if acc < 1:
        raise ValueError(f"equispaced_mask: acc must be >= 1, got {acc}")
    if ny < 1 or nx < 1:
        raise ValueError(f"equispaced_mask: ny and nx must be positive, got ({ny}, {nx})")
    if kt_shift and frames is None:
        raise ValueError("equispaced_mask: kt_shift=True needs frames")
    n_frames = 1 if frames is None else int(frames)
    rows = torch.zeros(n_frames, ny, dtype=torch.bool, device=device)
    rows[:, acs_rows(ny, n_acs)] = True
    for t in range(n_frames):
        start = (offset + (t if kt_shift else 0)) % acc
        rows[t, start::acc] = True
    mask = rows[:, :, None].expand(n_frames, ny, nx).to(dtype)
    return mask[0].contiguous() if frames is None else mask.contiguous()


def cmrxrecon_mask(ny: int, nx: int, acc: int, **kwargs) -> torch.Tensor:
    """The CMRxRecon 2023 mask ``[ny, nx]``: 24 ACS lines plus every ``acc``-th line from 0 (``acc`` in 4, 8, 10)."""
    if acc not in CMRXRECON_ACCELERATIONS:
        raise ValueError(f"cmrxrecon_mask: CMRxRecon accelerations are {CMRXRECON_ACCELERATIONS}, got {acc}")
    return equispaced_mask(ny, nx, acc, CMRXRECON_ACS, **kwargs)


def paper_mask(setting: str, ny: int = 192, nx: int = 192, **kwargs) -> torch.Tensor:
    """The STeP paper's masks: ``setting`` ``"6x"`` (R = 6, 24 ACS) or ``"8x"`` (R = 8, 12 ACS)."""
    if setting not in PAPER_SETTINGS:
        raise ValueError(f"paper_mask: setting must be one of {sorted(PAPER_SETTINGS)}, got {setting!r}")
    acc, n_acs = PAPER_SETTINGS[setting]
    return equispaced_mask(ny, nx, acc, n_acs, **kwargs)


def effective_acceleration(mask: torch.Tensor) -> float:
    """Number of k-space samples divided by the number sampled (``mask`` 0/1, any shape)."""
    sampled = float((mask != 0).sum())
    if sampled == 0:
        raise ValueError("effective_acceleration: the mask samples nothing")
    return mask.numel() / sampled


def sampled_lines(mask: torch.Tensor) -> torch.Tensor:
    """Boolean ``[..., ny]``: which ky lines a mask ``[..., ny, nx]`` samples (a line counts if any kx is set)."""
    return (mask != 0).any(dim=-1)
