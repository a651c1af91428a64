"""common.schedules: poly-rho EDM grids, the DAPS annealing grid with its trailing 0, the inner ODE grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.schedules import annealing_sigmas, ode_sigmas, poly_sigmas


def test_poly_sigmas_matches_numpy_formula() -> None:
    got = poly_sigmas(100.0, 0.01, 26, rho=7.0).numpy()
    r = np.linspace(0, 1, 26)
    expected = (100.0 ** (1 / 7) + r * (0.01 ** (1 / 7) - 100.0 ** (1 / 7))) ** 7
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert got[0] == pytest.approx(100.0) and got[-1] == pytest.approx(0.01)
    assert (np.diff(got) < 0).all()
    np.testing.assert_allclose(poly_sigmas(4.0, 1.0, 3, rho=1.0).numpy(), [4.0, 2.5, 1.0])


def test_annealing_grid_first_n_then_zero() -> None:
    grid = annealing_sigmas(100.0, 0.01, 25)
    assert grid.shape == (26,) and grid.dtype == torch.float64
    torch.testing.assert_close(grid[:25], poly_sigmas(100.0, 0.01, 26)[:25])
    assert grid[-1] == 0.0 and grid[24] > 0.01  # sigma_min itself is never an annealing level
    # paper Table 3's t_i = ((N - i)/N * T^(1/7))^7 is the same family of poly-7 grids (sigma_min -> 0 limit)
    n = 25
    paper = torch.tensor([((n - i) / n * 100.0 ** (1 / 7)) ** 7 for i in range(n)], dtype=torch.float64)
    torch.testing.assert_close(annealing_sigmas(100.0, 1e-30, n)[:n], paper, rtol=1e-3, atol=1e-6)


def test_ode_grid_and_errors() -> None:
    g = ode_sigmas(3.0, 1e-5, 20)
    assert g.shape == (20,) and g[0] == pytest.approx(3.0) and g[-1] == pytest.approx(1e-5)
    assert ode_sigmas(1e-6, 1e-5, 20).tolist() == [1e-6]
    with pytest.raises(ValueError, match="num must be >= 2"):
        poly_sigmas(1.0, 0.1, 1)
    with pytest.raises(ValueError, match="sigma_max > sigma_min > 0"):
        poly_sigmas(0.1, 1.0, 5)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        annealing_sigmas(1.0, 0.1, 0)
