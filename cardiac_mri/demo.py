"""``stepvip demo mri``: STeP vs IDM+BCS vs IDM on a held-out synthetic multi-coil cine case.

The case: ``cardiac_mri.synthetic.synthetic_cine(ny=S, nx=2S, coils=8, frames=12, slices=1, view="sax",
noise=0.005, seed=CASE)`` with ``CASE = 100000`` by default (``--case``) and S the prior's frame size (64 for the
shipped prior). The shipped prior was trained on ``SyntheticVideoDataset`` videos, whose generators are seeded with
``[0, i]``, i < 600 (``configs/prior_mri_ship.yaml``); this case's generator is seeded with the single integer
CASE, a different stream, so it is held out. Its fully sampled k-space is moved to the S x S model grid
(:func:`cardiac_mri.problem.retrospective_problem`: readout crop, Fourier resize, ESPIRiT maps from 12 ACS lines)
and masked with the paper's 8x / 12-ACS equispaced mask (``paper_mask("8x")``, the same for every frame). The truth
is the coil-combined image on the grid. Outputs: the driver's (:mod:`common.recon.outputs`) plus
``mat/<method>/cine_sax.mat`` (run4Ranking subset of the posterior mean, MATLAB v5) and ``cine_sax_recon.mat`` (the
complex mean, all frames) (:func:`cardiac_mri.step.submission_export`). Units: see :mod:`cardiac_mri.step`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cardiac_mri.step import (
    REFERENCE_TAU,
    load_mri_priors,
    mri_task,
    prior_image_size,
    sample_and_write,
    submission_export,
)
from common.recon.outputs import format_table

HELDOUT_CASE = 100000
FRAMES = 12
COILS = 8


def held_out_problem(size: int, case: int = HELDOUT_CASE, noise: float = 0.005, mask: str = "8x",
                     view: str = "sax"):
    """The :class:`cardiac_mri.problem.CineProblem` of the held-out case on the ``size`` x ``size`` grid: k-space
    noise ``noise`` (x the image maximum, :func:`~cardiac_mri.synthetic.synthetic_cine`), the paper's ``mask``
    (``"8x"``: 12 ACS lines, the demo's and the quality table's; ``"6x"``: 24), coil maps estimated from the ACS
    lines; ``view`` ``"sax"`` (the demo's and the table's) or ``"lax"``."""
    from cardiac_mri.masks import PAPER_SETTINGS, paper_mask
    from cardiac_mri.problem import retrospective_problem
    from cardiac_mri.synthetic import synthetic_cine

    cine = synthetic_cine(ny=size, nx=2 * size, coils=COILS, frames=FRAMES, slices=1, view=view, noise=noise,
                          seed=case)
    return retrospective_problem(cine.kspace[:, 0], paper_mask(mask, size, size), size=size,
                                 calib_width=PAPER_SETTINGS[mask][1])


def run(args: argparse.Namespace) -> int:
    """Entry point of ``stepvip demo mri`` (options: :func:`common.recon.cli.add_arguments`)."""
    priors = load_mri_priors(args)
    size = prior_image_size(priors)
    case = HELDOUT_CASE if args.case is None else args.case
    problem = held_out_problem(size, case)
    lik = problem.likelihood(tau=REFERENCE_TAU)
    truth = (problem.target * problem.scale).numpy()
    task = mri_task(lik, FRAMES, size, truth=truth, export=submission_export("cine_sax.mat"),
                    attrs={"case": f"synthetic_cine(ny={size}, nx={2 * size}, coils={COILS}, frames={FRAMES}, "
                                   f"view='sax', noise=0.005, seed={case})",
                           "mask": "paper_mask('8x'): R = 8, 12 ACS lines, same mask for every frame"})
    metrics = sample_and_write(args, task, priors, Path(args.out), {"command": "stepvip demo mri"})
    print(format_table(metrics))
    print(f"wrote {getattr(args, 'final_out', args.out)}")
    return 0


if __name__ == "__main__":
    import sys

    from common.recon.cli import demo_main

    sys.exit(demo_main("cardiac_mri.demo", run))
