"""Unconditional samples of a trained prior by the probability-flow ODE (paper Fig. 10: 100 Euler steps).

``pf_ode_sample`` integrates ``dz/dsigma = (z - D(z; sigma)) / sigma`` with plain Euler steps on the poly-7 grid
``common.schedules.poly_sigmas(sigma_max, sigma_min, steps)`` followed by a last step to sigma = 0 (which returns
``D(z; sigma_min)``), starting from ``z = sigma_max * n``. ``write_samples`` stores videos as netCDF (xarray, dims
``sample, frame, channel, y, x``) and a GIF.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from common._version import __version__
from common.io import atomic_path
from common.schedules import poly_sigmas


@torch.no_grad()
def pf_ode_sample(denoiser, shape: tuple[int, ...], *, steps: int = 100, sigma_max: float = 80.0,
                  sigma_min: float = 0.002, generator: torch.Generator, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Euler PF-ODE from ``sigma_max`` to 0 for ``denoiser(z [B, T, C, H, W], sigma [B])``; returns ``[B, T, C, H, W]``.

    ``steps`` is the number of Euler steps (network evaluations). Initial noise from ``generator`` (on CPU, so
    results do not depend on the device).
    """
    if len(shape) != 5:
        raise ValueError(f"pf_ode_sample: shape must be [B, T, C, H, W], got {shape}")
    if steps < 2:
        raise ValueError(f"pf_ode_sample: need at least 2 steps, got {steps}")
    grid = torch.cat([poly_sigmas(sigma_max, sigma_min, steps), torch.zeros(1, dtype=torch.float64)])
    z = (sigma_max * torch.randn(shape, generator=generator, dtype=torch.float64)).to(device=device, dtype=dtype)
    b = shape[0]
    for s, s_next in zip(grid[:-1].tolist(), grid[1:].tolist(), strict=True):
        sig = torch.full((b,), s, device=device, dtype=dtype)
        d = (z - denoiser(z, sig)) / s  # dz/dsigma of the PF-ODE (EDM, sigma(t) = t)
        z = z + (s_next - s) * d
        if not torch.isfinite(z).all():
            raise FloatingPointError(f"pf_ode_sample: non-finite values after the step at sigma={s:.4g}")
    return z


def write_samples(videos: np.ndarray, out_dir: str | Path, attrs: dict[str, str | int | float]) -> tuple[Path, Path]:
    """Write ``videos [N, T, C, H, W]`` to ``out_dir/samples.nc`` and ``out_dir/samples.gif`` (atomically).

    The GIF tiles the samples side by side; 2-channel (real, imag) data are shown as magnitude.
    """
    import xarray as xr

    if videos.ndim != 5:
        raise ValueError(f"write_samples: expected [N, T, C, H, W], got shape {videos.shape}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n, t, c, h, w = videos.shape
    ds = xr.Dataset(
        {"video": (("sample", "frame", "channel", "y", "x"), videos.astype(np.float32))},
        coords={"sample": np.arange(n), "frame": np.arange(t), "channel": np.arange(c), "y": np.arange(h),
                "x": np.arange(w)},
        attrs={"stepvip_version": __version__, **{k: v for k, v in attrs.items()}},
    )
    ds["frame"].attrs["long_name"] = "frame index"
    ds["channel"].attrs["long_name"] = "channel (MRI: 0 real, 1 imaginary)"
    for d in ("y", "x"):
        ds[d].attrs["units"] = "pixel"
    nc = out / "samples.nc"
    with atomic_path(nc) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
    gif = out / "samples.gif"
    _write_gif(videos, gif)
    return nc, gif


def _write_gif(videos: np.ndarray, path: Path, duration_ms: int = 100) -> None:
    from PIL import Image

    mag = np.sqrt((videos**2).sum(axis=2)) if videos.shape[2] == 2 else videos[:, :, 0]
    lo, hi = float(np.min(mag)), float(np.max(mag))
    scaled = np.zeros_like(mag) if hi <= lo else (mag - lo) / (hi - lo)
    n, t, h, w = scaled.shape
    tiles = (255 * scaled).round().astype(np.uint8).transpose(1, 2, 0, 3).reshape(t, h, n * w)
    frames = [Image.fromarray(f) for f in tiles]
    with atomic_path(path) as tmp:
        frames[0].save(tmp, save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
