"""SENSE forward + adjoint per 12-frame video: cardiac_mri.SenseOperator against sigpy.mri.linop.Sense, same data.

sigpy's operator is static (one frame), so the reference applies it frame by frame, as a user of sigpy would; both
run on the CPU in the same process, and the ratio (sigpy time / ours) is what the README reports. "ours" is
``op.adjoint(op(x))`` with fresh outputs (the k-space of all frames and coils is allocated each call); "normal" is
``op.normal(x)`` (A^H A without the k-space array, what the CG solves use). Also checks that the two agree (largest
relative error of the forward and of forward+adjoint). torch's CPU allocator is asked for transparent huge pages
(``THP_MEM_ALLOC_ENABLE=1``, as ``stepvip mri reconstruct`` does; set it to 0 to measure without). Usage:

    python benchmarks/bench_sense.py [--sizes 192x192 246x512] [--coils 10] [--frames 12] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # before torch allocates anything

import numpy as np
import sigpy.mri
import torch

from cardiac_mri import SenseOperator
from cardiac_mri.masks import cmrxrecon_mask


def _median_times(fns, repeats: int) -> list[float]:
    """Median wall time of each function, calls interleaved so that load from other processes hits all alike."""
    for fn in fns:
        fn()  # warm-up
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, acc in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def bench(ny: int, nx: int, coils: int, frames: int, repeats: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    maps = (rng.standard_normal((coils, ny, nx)) + 1j * rng.standard_normal((coils, ny, nx))).astype(np.complex64)
    x = (rng.standard_normal((frames, ny, nx)) + 1j * rng.standard_normal((frames, ny, nx))).astype(np.complex64)
    mask = cmrxrecon_mask(ny, nx, 8)
    op = SenseOperator(torch.from_numpy(maps), mask)
    xt = torch.from_numpy(x)[None]
    s = sigpy.mri.linop.Sense(maps, weights=mask.numpy())

    def ours():
        return op.adjoint(op(xt))

    def normal():
        return op.normal(xt)

    def reference():
        return np.stack([s.H(s(x[t])) for t in range(frames)])

    y_ours = op(xt)[0].numpy()
    y_ref = np.stack([s(x[t]) for t in range(frames)])
    err_fwd = np.linalg.norm(y_ours - y_ref) / np.linalg.norm(y_ref)
    err = max(err_fwd, np.linalg.norm(ours()[0].numpy() - reference()) / np.linalg.norm(reference()))
    err = max(err, np.linalg.norm(normal()[0].numpy() - reference()) / np.linalg.norm(reference()))
    t_ours, t_ref, t_normal = _median_times([ours, reference, normal], repeats)
    return {"size": f"{ny}x{nx}", "ours_s": t_ours, "sigpy_s": t_ref, "ratio": t_ref / t_ours, "rel_err": err,
            "normal_s": t_normal, "normal_ratio": t_ref / t_normal, "rows": op.row_plan() is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["192x192", "246x512"])
    parser.add_argument("--coils", type=int, default=10)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (numpy FFT is single-threaded)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"SENSE forward+adjoint, {args.frames} frames x {args.coils} coils, complex64, CPU, torch threads "
          f"{args.threads}, median of {args.repeats}, THP_MEM_ALLOC_ENABLE={os.environ['THP_MEM_ALLOC_ENABLE']}")
    print(f"{'size':>9} {'ours [s]':>9} {'sigpy [s]':>10} {'sigpy/ours':>11} {'normal [s]':>11} {'sigpy/normal':>13} "
          f"{'rel. err':>9} {'row path':>9}")
    for size in args.sizes:
        ny, nx = (int(v) for v in size.split("x"))
        r = bench(ny, nx, args.coils, args.frames, args.repeats)
        print(f"{r['size']:>9} {r['ours_s']:>9.4f} {r['sigpy_s']:>10.4f} {r['ratio']:>11.2f} {r['normal_s']:>11.4f} "
              f"{r['normal_ratio']:>13.2f} {r['rel_err']:>9.1e} {str(r['rows']):>9}")


if __name__ == "__main__":
    main()
