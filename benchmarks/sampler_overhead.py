"""Overhead of the DAPS sampler loop over the work it cannot avoid (denoiser and likelihood-gradient calls).

Runs ``common.sampling.daps_sample`` on a small convolutional EDM denoiser and a linear Gaussian likelihood, then
times a bare reference loop making exactly the same calls (PF-ODE denoiser calls, and per MCMC step one likelihood
forward/backward plus one denoiser call for the exact prior term) with noise drawn once up front and no checks,
callbacks or per-sample generators. Prints the ratio sampler / reference measured in the same run (minimum over
``--repeats`` interleaved runs), so machine load affects both alike.

    PYTHONPATH=$PWD python benchmarks/sampler_overhead.py [--batch 4] [--frames 8] [--size 32] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from common.denoisers import EDMPrecond
from common.sampling import DAPSConfig, daps_sample
from common.schedules import annealing_sigmas, ode_sigmas


class TinyNet(nn.Module):
    """Per-frame 3-layer CNN, ``net(x [B, T, C, H, W], c_noise [B]) -> [B, T, C, H, W]``."""

    def __init__(self, ch: int = 1, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch + 1, width, 3, padding=1), nn.SiLU(),
                                  nn.Conv2d(width, width, 3, padding=1), nn.SiLU(), nn.Conv2d(width, ch, 3, padding=1))

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        cn = c_noise.reshape(b, 1, 1, 1, 1).expand(b, t, 1, h, w)
        return self.body(torch.cat([x, cn], 2).reshape(b * t, c + 1, h, w)).reshape(x.shape)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: least noise under load)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)  # network init only
    shape = (args.batch, args.frames, 1, args.size, args.size)
    den = EDMPrecond(TinyNet(), sigma_data=0.5).eval()
    for p in den.parameters():
        p.requires_grad_(False)
    d = args.size * args.size
    g = torch.Generator().manual_seed(1)
    a = torch.randn(args.frames, d // 4, d, generator=g) / d**0.5
    y = torch.randn(args.frames, d // 4, generator=g)

    def loglik(x: torch.Tensor) -> torch.Tensor:
        r = torch.einsum("tmd,btd->btm", a, x.reshape(x.shape[0], args.frames, d)) - y
        return -(r**2).sum((1, 2)) / 0.1**2

    cfg = DAPSConfig(annealing_steps=4, sigma_max=10.0, sigma_min=0.05, ode_steps=5, mcmc_steps=20, lr=1e-4,
                     lr_min_ratio=0.5, momentum=0.5)

    def sampler() -> None:
        daps_sample(den, loglik, shape, cfg, generator=0)

    def reference() -> None:  # the same denoiser and likelihood calls, nothing else
        b = shape[0]
        sig = annealing_sigmas(cfg.sigma_max, cfg.sigma_min, cfg.annealing_steps).tolist()
        noise = torch.randn(cfg.mcmc_steps, *shape)
        z = torch.randn(shape) * sig[0]
        for k in range(cfg.annealing_steps):
            with torch.no_grad():
                grid = ode_sigmas(sig[k], cfg.ode_sigma_min, cfg.ode_steps).tolist()
                for s, s2 in zip(grid[:-1], grid[1:], strict=True):
                    z = z + (s2 - s) * (z - den(z, z.new_full((b,), s))) / s
            z_t, v = z, torch.randn(shape)
            for j in range(cfg.mcmc_steps):
                zr = z.detach().requires_grad_(True)
                (gl,) = torch.autograd.grad(loglik(zr).sum(), zr)
                with torch.no_grad():
                    gp = (z_t - z) / sig[k] ** 2 + (den(z, z.new_full((b,), 0.01)) - z) / 0.01**2
                v = 0.5 * v + 1e-2 * (gl + gp) + noise[j]
                z = z + 1e-2 * v
            z = z + sig[k + 1] * torch.randn(shape)

    def timed(fn) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    timed(reference)  # warm-up
    runs = [(timed(reference), timed(sampler)) for _ in range(args.repeats)]  # interleaved: same load for both
    t_ref, t_dps = min(r for r, _ in runs), min(d for _, d in runs)
    calls = cfg.annealing_steps * (cfg.ode_steps - 1 + cfg.mcmc_steps)
    print(f"shape {list(shape)}, {cfg.annealing_steps} x ({cfg.ode_steps - 1} ODE + {cfg.mcmc_steps} HMC) steps, "
          f"{calls} denoiser calls, threads {torch.get_num_threads()}")
    print(f"reference (bare calls): {t_ref:.3f} s; daps_sample: {t_dps:.3f} s; ratio daps/reference = "
          f"{t_dps / t_ref:.3f}")


if __name__ == "__main__":
    main()
