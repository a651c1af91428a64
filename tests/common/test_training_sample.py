"""PF-ODE sampling against the closed form for a Gaussian prior, and the sample writer."""

import math

import numpy as np
import pytest
import torch
import xarray as xr

from common.training.sample import pf_ode_sample, write_samples


def test_pf_ode_maps_noise_to_gaussian_prior_exactly_in_the_limit():
    """For z0 ~ N(0, s^2) the denoiser is D(z; sigma) = z s^2 / (s^2 + sigma^2) and the PF-ODE solution is
    z(0) = z(sigma_max) * s / sqrt(s^2 + sigma_max^2): Euler with 100 steps must land close to it."""
    s, smax = 0.7, 80.0

    def denoiser(z, sigma):
        sig = sigma.reshape(-1, 1, 1, 1, 1)
        return z * s**2 / (s**2 + sig**2)

    shape = (4, 3, 1, 16, 16)
    out = pf_ode_sample(denoiser, shape, steps=100, sigma_max=smax, sigma_min=0.002,
                        generator=torch.Generator().manual_seed(0))
    start = smax * torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = (start * s / math.sqrt(s**2 + smax**2)).float()
    # Euler on this linear ODE multiplies by prod_n [1 + (sig_{n+1} - sig_n) sig_n / (s^2 + sig_n^2)] (numpy oracle
    # with its own poly-7 grid, last step to 0)
    r = np.linspace(0, 1, 100)
    grid = np.append((smax ** (1 / 7) + r * (0.002 ** (1 / 7) - smax ** (1 / 7))) ** 7, 0.0)
    factor = np.prod(1 + (grid[1:] - grid[:-1]) * grid[:-1] / (s**2 + grid[:-1] ** 2))
    torch.testing.assert_close(out, (start * factor).float(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out, exact, rtol=0.03, atol=1e-3)  # first-order scheme: ~3 % off the exact flow
    assert abs(out.std().item() / s - 1) < 0.1
    coarse = pf_ode_sample(denoiser, shape, steps=5, sigma_max=smax, sigma_min=0.002,
                           generator=torch.Generator().manual_seed(0))
    assert (coarse - exact).abs().max() > (out - exact).abs().max()  # more steps, closer to the ODE


def test_pf_ode_rejects_bad_arguments_and_nan():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="B, T, C, H, W"):
        pf_ode_sample(lambda z, s: z, (2, 8, 8), generator=g)
    with pytest.raises(FloatingPointError, match="non-finite"):
        pf_ode_sample(lambda z, s: z * float("nan"), (1, 1, 1, 4, 4), steps=3, generator=g)


def test_write_samples_netcdf_and_gif(tmp_path):
    v = np.random.default_rng(0).standard_normal((2, 3, 2, 8, 8)).astype(np.float32)
    nc, gif = write_samples(v, tmp_path, {"seed": 3})
    ds = xr.open_dataset(nc, engine="h5netcdf")
    np.testing.assert_array_equal(ds["video"].values, v)
    assert ds.attrs["seed"] == 3 and ds["x"].attrs["units"] == "pixel"
    ds.close()
    from PIL import Image

    with Image.open(gif) as im:
        assert im.n_frames == 3 and im.size == (16, 8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples.gif", "samples.nc"]
