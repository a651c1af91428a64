"""Noise-level grids as pure functions (EDM schedule sigma(t) = t, scale 1).

See ``../shared/FACTS.md`` section 1 and STeP Table 3: the discretisation
sigma_i = (sigma_max^(1/rho) + r_i (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho, r = linspace(0, 1, n).
"""

from __future__ import annotations

import torch


def poly_sigmas(sigma_max: float, sigma_min: float, num: int, rho: float = 7.0) -> torch.Tensor:
    """Return ``num`` noise levels from ``sigma_max`` down to ``sigma_min`` on the poly-``rho`` grid.

    Shape ``[num]``, float64, strictly decreasing, first = sigma_max, last = sigma_min.
    """
    if num < 2:
        raise ValueError(f"poly_sigmas: num must be >= 2, got {num}")
    if not (sigma_max > sigma_min > 0):
        raise ValueError(f"poly_sigmas: need sigma_max > sigma_min > 0, got {sigma_max} and {sigma_min}")
    r = torch.linspace(0.0, 1.0, num, dtype=torch.float64)
    hi, lo = sigma_max ** (1.0 / rho), sigma_min ** (1.0 / rho)
    return (hi + r * (lo - hi)) ** rho


def annealing_sigmas(sigma_max: float, sigma_min: float, steps: int, rho: float = 7.0) -> torch.Tensor:
    """DAPS annealing grid: the first ``steps`` values of a ``steps + 1`` point poly grid, then a trailing 0.

    Shape ``[steps + 1]``. Annealing step k works at ``sigma[k]`` and re-noises to ``sigma[k + 1]``; the last
    re-noising adds nothing, so the final iterate is the last MCMC output (reference behaviour, FACTS.md s.1).
    """
    if steps < 1:
        raise ValueError(f"annealing_sigmas: steps must be >= 1, got {steps}")
    grid = poly_sigmas(sigma_max, sigma_min, steps + 1, rho)
    return torch.cat([grid[:steps], grid.new_zeros(1)])


def ode_sigmas(sigma_start: float, sigma_end: float, num: int, rho: float = 7.0) -> torch.Tensor:
    """Grid for the inner probability-flow ODE from ``sigma_start`` down to ``sigma_end`` (``num`` points).

    When ``sigma_start <= sigma_end`` there is nothing to solve and the grid is ``[sigma_start]``.
    """
    if sigma_start <= sigma_end:
        return torch.tensor([sigma_start], dtype=torch.float64)
    return poly_sigmas(sigma_start, sigma_end, num, rho)
