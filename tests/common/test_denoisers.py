"""common.denoisers: score, EDM preconditioning identities, the VP epsilon adapter on hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from common.denoisers import EDMPrecond, VPEpsilonDenoiser, score


class _Zero(nn.Module):
    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


class _Probe(nn.Module):
    """F(x, c_noise) = 2 x + c_noise (per sample); records its inputs and keyword arguments."""

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, **kw) -> torch.Tensor:
        self.seen = (x.clone(), c_noise.clone(), kw)
        return 2 * x + c_noise.reshape(-1, 1, 1, 1, 1)


def test_edm_zero_network_is_the_gaussian_bayes_denoiser() -> None:
    """With F = 0, D = c_skip z = z sd^2 / (sd^2 + s^2): the exact denoiser of N(0, sd^2 I) data."""
    sd = 0.5
    den = EDMPrecond(_Zero(), sigma_data=sd)
    z = torch.randn(3, 2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.1, 1.0, 10.0])
    expected = z * sd**2 / (sd**2 + sigma.reshape(-1, 1, 1, 1, 1) ** 2)
    torch.testing.assert_close(den(z, sigma), expected)
    torch.testing.assert_close(score(den, z, sigma), -z / (sd**2 + sigma.reshape(-1, 1, 1, 1, 1) ** 2))


def test_edm_coefficients_by_hand() -> None:
    net = _Probe()
    den = EDMPrecond(net, sigma_data=0.5)
    z = torch.full((2, 1, 1, 2, 2), 3.0)
    sigma = torch.tensor([0.5, 2.0])
    out = den(z, sigma, video=False)
    for b, s in enumerate([0.5, 2.0]):
        c_skip, c_out, c_in = 0.25 / (s**2 + 0.25), s * 0.5 / math.sqrt(s**2 + 0.25), 1 / math.sqrt(s**2 + 0.25)
        c_noise = math.log(s) / 4
        assert net.seen[0][b].flatten()[0].item() == pytest.approx(c_in * 3.0)
        assert net.seen[1][b].item() == pytest.approx(c_noise)
        assert out[b].flatten()[0].item() == pytest.approx(c_skip * 3.0 + c_out * (2 * c_in * 3.0 + c_noise), rel=1e-6)
    assert net.seen[2] == {"video": False}  # keyword arguments pass through
    # a scalar sigma broadcasts over the batch
    torch.testing.assert_close(den(z, torch.tensor(2.0)), den(z, torch.tensor([2.0, 2.0])))


class _TimesT(nn.Module):
    """eps_net(x, t) = t * x (per sample), records t."""

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.t = t.clone()
        return t.reshape(-1, 1, 1, 1, 1) * x


def test_vp_adapter_hand_computed() -> None:
    """abar = [0.9, 0.5, 0.1] -> sigma_t = 1/3, 1, 3. sigma = 1: t = 1, x_t = z / sqrt(2), D = z - 1 * 1 * z/sqrt(2).
    sigma = sqrt(3) is halfway in log sigma between t = 1 and t = 2: t = 1.5, D = z - sqrt(3) * 1.5 * z / 2."""
    net = _TimesT()
    den = VPEpsilonDenoiser(net, torch.tensor([0.9, 0.5, 0.1]))
    assert den.sigma_min == pytest.approx(1 / 3) and den.sigma_max == pytest.approx(3.0)
    z = torch.full((2, 1, 1, 2, 2), 2.0, dtype=torch.float64)
    out = den(z, torch.tensor([1.0, math.sqrt(3.0)], dtype=torch.float64))
    torch.testing.assert_close(net.t, torch.tensor([1.0, 1.5], dtype=torch.float64))
    assert out[0].flatten()[0].item() == pytest.approx(2.0 - 2.0 / math.sqrt(2.0))
    assert out[1].flatten()[0].item() == pytest.approx(2.0 - math.sqrt(3.0) * 1.5 * 2.0 / 2.0)
    den(z, torch.tensor([100.0, 0.01], dtype=torch.float64))  # outside the schedule: t clamps to the ends
    torch.testing.assert_close(net.t, torch.tensor([2.0, 0.0], dtype=torch.float64))


def test_vp_adapter_rejects_bad_schedules() -> None:
    with pytest.raises(ValueError, match="values in \\(0, 1\\)"):
        VPEpsilonDenoiser(_TimesT(), torch.tensor([1.0, 0.5]))
    with pytest.raises(ValueError, match="strictly decreasing"):
        VPEpsilonDenoiser(_TimesT(), torch.tensor([0.5, 0.9]))
