"""What the exact linear-Gaussian data step can reach on the MRI demo cases with a given prior centre (issue 10).

For held-out MRI cases (the demo's recipe) this solves the conditional mean of the linear-Gaussian step,
``(A^H A / s^2 + I / r^2) x = A^H y / s^2 + c / r^2`` (s: the noise estimated from the k-space edges), for three
prior centres c and several radii r, and prints the official-style PSNR (magnitudes divided by their maxima):

* ``zero``: c = 0 (Tikhonov, no prior knowledge);
* ``vae``: c = the shipped VAE's round trip of the truth (the best any sample of a latent prior can offer as
  x_hat); only when the shipped prior has a VAE (a pixel-space prior represents the truth itself: its ceiling is
  the ``truth`` column);
* ``truth``: c = the truth (an oracle upper bound).

Beside them CG-SENSE (10 iterations), the quality table's reference. If the ``vae`` row cannot beat CG-SENSE by
much, no sampler setting will: the prior's representation is the ceiling.

Usage: ``python benchmarks/mri_prior_ceiling.py --cases 3``
"""

from __future__ import annotations

import argparse
import sys

import torch

from cardiac_mri.baselines import sense_cg
from cardiac_mri.demo import HELDOUT_CASE, held_out_problem
from cardiac_mri.likelihood import GaussianLikelihood, estimate_noise_std, linear_gaussian_model
from cardiac_mri.priors import load_default_priors
from cardiac_mri.sense import channels_to_complex, complex_to_channels
from common.sampling.cg import conjugate_gradient


def psnr(x: torch.Tensor, truth: torch.Tensor) -> float:
    """Mean over frames of the PSNR of |x| against |truth|, each video divided by its maximum."""
    a, t = x.abs(), truth.abs()
    a, t = a / a.amax(), t / t.amax()
    mse = ((a - t) ** 2).mean(dim=(-2, -1))
    return float((10 * torch.log10(1 / mse)).mean())


def conditional_mean(model, centre: torch.Tensor, r: float) -> torch.Tensor:
    """``(A^T A / s^2 + I / r^2)^-1 (A^T y / s^2 + centre / r^2)`` by CG (relative residual 1e-6)."""
    w_y, w_x = 1 / model.noise_std**2, 1 / r**2

    def normal(v: torch.Tensor) -> torch.Tensor:
        return w_y * model.adjoint(model.forward(v)) + w_x * v

    rhs = w_y * model.adjoint(model.y[None]) + w_x * centre
    return conjugate_gradient(normal, rhs, centre, max_iter=200, rtol=1e-6)[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", type=int, default=3)
    p.add_argument("--radii", default="0.01,0.03,0.1")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    vae = load_default_priors().get("vae")
    radii = [float(r) for r in args.radii.split(",")]
    names = ("zero", "truth") if vae is None else ("zero", "vae", "truth")
    print("| case | CG-SENSE | " + " | ".join(f"{c} r={r}" for c in names for r in radii) + " |")
    print("|---" * (2 + len(names) * len(radii)) + "|")
    for case in range(HELDOUT_CASE, HELDOUT_CASE + args.cases):
        prob = held_out_problem(64, case)
        lik = GaussianLikelihood(prob.op, prob.y / prob.scale, tau=1.0)
        model = linear_gaussian_model(lik, estimate_noise_std(lik.y, prob.op.mask))
        truth = complex_to_channels(prob.target)[None].float()
        with torch.no_grad():
            centres = {"zero": torch.zeros_like(truth), "truth": truth}
            if vae is not None:
                centres["vae"] = vae(truth)
            centres = {k: centres[k] for k in names}
        cg = sense_cg(prob.op, prob.y[None], iters=10)[0] / prob.scale
        row = [f"{psnr(cg, prob.target):.2f}"]
        for c in centres.values():
            for r in radii:
                x = conditional_mean(model, c, r)
                row.append(f"{psnr(channels_to_complex(x)[0], prob.target):.2f}")
        print(f"| {case} | " + " | ".join(row) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
