"""``stepvip mri ...``: reconstruct CMRxRecon files with classical baselines, evaluate, make synthetic data.

Actions: ``reconstruct`` (zf | sense | tv | lps, or the diffusion methods step = STeP, idm-bcs, idm, svi,
vision-xl, tcvr (:mod:`common.methods`): posterior sampling on the prior's grid, then a data-consistency solve at
the data's resolution, :mod:`cardiac_mri.step`), ``evaluate`` (official CMRxRecon metrics of v5 or v7.3
submissions), ``make-synthetic`` (a synthetic dataset in the CMRxRecon layout) and ``export-training``
(``DIR/videos.npy`` for the prior).
Names map to functions here, at the edge; the library has no string dispatch.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cardiac_mri import baselines
from cardiac_mri.coils import espirit_maps, read_maps
from cardiac_mri.data import CineFile, find_kspace_key, parse_cine_path, read_kspace, read_mask
from cardiac_mri.fullres import DEFAULT_ITERS, DEFAULT_LAMBDA
from cardiac_mri.masks import (
    CMRXRECON_ACCELERATIONS,
    CMRXRECON_ACS,
    acs_rows,
    cmrxrecon_mask,
    effective_acceleration,
    sampled_lines,
)
from cardiac_mri.matio import MatFileError
from cardiac_mri.sense import SenseOperator
from common.io import OutputPathError, output_folder_writable
from common.recon.cli import add_sampling_arguments
from common.recon.errors import DemoError

CLASSICAL = ("zf", "sense", "tv", "lps")
# diffusion methods: CLI name -> name in common.methods.METHODS (the CLI edge maps names to methods)
DIFFUSION = {"step": "STeP", "idm-bcs": "IDM+BCS", "idm": "IDM", "svi": "SVI", "vision-xl": "VISION-XL", "tcvr": "TCVR"}
METHODS = CLASSICAL + tuple(DIFFUSION)
# The k-space norm must stay where float32 sums of squares neither overflow (3.4e38) nor vanish, with room for the
# solvers' inner products: outside this range the classical methods return Inf or all zeros.
KSPACE_NORM_RANGE = (1e-15, 1e15)


class UsageError(ValueError):
    """A bad option value or input of an ``mri`` command: one line on stderr, exit code 2."""


def _finite(name: str, value: float | None, positive: bool = False) -> None:
    """Raise ``UsageError`` unless option ``name`` is None or a finite number > 0 (``positive``) or >= 0."""
    if value is not None and not (math.isfinite(value) and (value > 0 if positive else value >= 0)):
        raise UsageError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value}")


def _at_least(name: str, value: int | None, low: int) -> None:
    """Raise ``UsageError`` unless option ``name`` is None or >= ``low``."""
    if value is not None and value < low:
        raise UsageError(f"{name} must be >= {low}, got {value}")


def _writable(path: Path) -> None:
    try:
        output_folder_writable(path)
    except OutputPathError as exc:
        raise UsageError(str(exc)) from exc


def check_kspace_scale(kspace: np.ndarray, source: object) -> None:
    """Refuse k-space whose norm lies outside :data:`KSPACE_NORM_RANGE` (all zeros, or so large or small that
    float32 solvers overflow or underflow), naming ``source`` and the norm found."""
    norm = float(np.linalg.norm(np.asarray(kspace).reshape(-1).astype(np.complex128)))
    lo, hi = KSPACE_NORM_RANGE
    if norm == 0:
        raise UsageError(f"{source}: the k-space is all zeros; there is nothing to reconstruct")
    if not lo <= norm <= hi:
        raise UsageError(f"{source}: the k-space norm is {norm:.3g}, outside the range float32 solvers handle "
                         f"({lo:g} .. {hi:g}); rescale the data")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``mri`` command group to the ``stepvip`` parser."""
    from common.cli import register_user_errors

    register_user_errors(MatFileError, UsageError)
    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = subparsers.add_parser("mri", help="cardiac cine MRI: reconstruct, evaluate, synthetic data",
                              description=__doc__, formatter_class=fmt)
    sub = p.add_subparsers(dest="mri_action", metavar="ACTION", required=True)

    r = sub.add_parser("reconstruct", help="reconstruct a cine .mat file with a baseline", formatter_class=fmt)
    r.add_argument("--input", required=True, type=Path, help="CMRxRecon cine_*.mat (FullSample or AccFactorXX)")
    r.add_argument("--acc", type=int, default=None,
                   help="acceleration R; required for FullSample input (retrospective CMRxRecon mask)")
    r.add_argument("--method", choices=METHODS, default="sense")
    r.add_argument("--out", required=True, type=Path, help="output root (the CMRxRecon layout is mirrored)")
    r.add_argument("--key", default=None, help="k-space dataset name (default: the official key present)")
    r.add_argument("--mask", type=Path, default=None,
                   help="mask .mat file (default: cine_<view>_mask.mat beside an AccFactor input)")
    r.add_argument("--maps", type=Path, default=None, help="coil maps [C, H, W] (.npy or .mat key 'maps')")
    r.add_argument("--calib", type=int, default=24, help="ESPIRiT calibration width (<= ACS lines)")
    r.add_argument("--iters", type=int, default=None, help="iterations (default: the method's own)")
    r.add_argument("--lam", type=float, default=None, help="sense: Tikhonov weight; tv: relative TV weight")
    r.add_argument("--lam-l", type=float, default=0.003, help="lps: relative nuclear-norm weight")
    r.add_argument("--lam-s", type=float, default=0.02, help="lps: relative temporal-Fourier sparsity weight")
    r.add_argument("--save-full", action="store_true",
                   help="also write cine_<view>_recon.mat: 'recon', complex, all frames and slices (t, slice, ky, kx)")
    r.add_argument("--format", choices=("v5", "v7.3"), default="v5",
                   help="MAT-file format of the outputs (v5: what the official Python scorer reads; v7.3: HDF5)")
    r.add_argument("--dc-lambda", type=float, default=DEFAULT_LAMBDA,
                   help="diffusion methods: Tikhonov weight of the final full-resolution data-consistency solve")
    r.add_argument("--dc-iters", type=int, default=DEFAULT_ITERS,
                   help="diffusion methods: CG iterations of the final data-consistency solve")
    add_sampling_arguments(r)  # --prior/--vae/--image/--video, --quality/--quick, --samples, --seed (diffusion)
    r.set_defaults(func=_reconstruct)

    e = sub.add_parser("evaluate", help="official CMRxRecon metrics of a submission folder", formatter_class=fmt)
    e.add_argument("--pred", required=True, type=Path, help="root holding .../AccFactorXX/Pxxx/cine_*.mat")
    e.add_argument("--gt", required=True, type=Path, help="CMRxRecon root with FullSample (or img4ranking files)")
    e.add_argument("--json", action="store_true", help="print JSON (per-file scores and the summary)")
    e.set_defaults(func=_evaluate)

    s = sub.add_parser("make-synthetic", help="write a synthetic multi-coil cine dataset", formatter_class=fmt)
    s.add_argument("--out", required=True, type=Path)
    s.add_argument("--patients", type=int, default=2)
    s.add_argument("--ny", type=int, default=64)
    s.add_argument("--nx", type=int, default=128)
    s.add_argument("--coils", type=int, default=8)
    s.add_argument("--frames", type=int, default=12)
    s.add_argument("--slices", type=int, default=3)
    s.add_argument("--noise", type=float, default=0.005, help="k-space noise std relative to max |image|")
    s.add_argument("--split", default="TrainingSet", choices=("TrainingSet", "ValidationSet"))
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_make_synthetic)

    t = sub.add_parser("export-training", help="write DIR/videos.npy [N, T, 2, H, W] for prior training",
                       formatter_class=fmt)
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--root", type=Path, help="CMRxRecon root (FullSample files are used)")
    src.add_argument("--synthetic", type=int, metavar="N", help="N synthetic videos instead")
    t.add_argument("--out", required=True, type=Path)
    t.add_argument("--size", type=int, default=192)
    t.add_argument("--frames", type=int, default=12, help="synthetic only")
    t.add_argument("--views", nargs="+", default=["sax", "lax"], choices=("sax", "lax"))
    t.add_argument("--seed", type=int, default=0, help="synthetic only")
    t.set_defaults(func=_export_training)


def _resolve_mask(args: argparse.Namespace, case: CineFile | None, full: bool, kspace: np.ndarray, acc: int | None):
    """Mask ``[ky, kx]`` and where it came from."""
    ny, nx = kspace.shape[-2:]
    if args.mask is not None:
        return read_mask(args.mask, acc=acc), str(args.mask)
    if full:
        return cmrxrecon_mask(ny, nx, acc).numpy(), f"CMRxRecon rule R={acc}, 24 ACS"
    if case is not None and case.mask_path.is_file():
        return read_mask(case.mask_path, acc=acc), str(case.mask_path)
    lines = sampled_lines(torch.from_numpy(np.abs(kspace).sum(axis=(0, 1, 2)) > 0)).numpy()
    mask = np.repeat(lines[:, None], nx, axis=1).astype(np.float32)
    return mask, "derived from the non-zero ky lines of the input (no mask file found)"


def _reconstruct(args: argparse.Namespace) -> int:
    """``stepvip mri reconstruct``: one line on stderr and exit code 2 for any problem found in the input."""
    from common.distributed import leave_distributed
    from common.recon.cli import OtherRank

    try:
        _check_reconstruct_options(args)
        return _reconstruct_checked(args)
    except OtherRank:  # a torchrun rank > 0: its samples are stored, rank 0 writes the outputs
        return 0
    except (DemoError, MatFileError, FileNotFoundError, UsageError) as exc:
        print(f"stepvip mri reconstruct: error: {exc}", file=sys.stderr)
        return 2
    finally:
        leave_distributed()


def _check_reconstruct_options(args: argparse.Namespace) -> None:
    """Every numeric option in range and ``--out`` writable, before any file is read."""
    _at_least("--acc", args.acc, 1)
    _at_least("--calib", args.calib, 1)
    _at_least("--iters", args.iters, 1)
    _finite("--lam", args.lam)
    _finite("--lam-l", args.lam_l)
    _finite("--lam-s", args.lam_s)
    _finite("--dc-lambda", args.dc_lambda)
    _at_least("--dc-iters", args.dc_iters, 1)
    _at_least("--samples", args.samples, 1)
    _at_least("--modes", args.modes, 1)
    _at_least("--seed", args.seed, 0)
    _finite("--temperature", args.temperature, positive=True)
    _finite("--radius-floor", args.radius_floor)
    _writable(args.out)


def _fail(message: str) -> int:
    print(f"stepvip mri reconstruct: error: {message}", file=sys.stderr)
    return 2


def _reconstruct_checked(args: argparse.Namespace) -> int:
    from cardiac_mri.evaluation import V73_WARNING, ranking_shape, ranking_subset, write_mat, write_submission

    # Huge pages for torch's large CPU arrays (k-space of all frames and coils): fewer page faults per allocation.
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    case = parse_cine_path(args.input.resolve())
    key = args.key if args.key is not None else find_kspace_key(args.input)
    kspace = read_kspace(args.input, key)
    t, n_slices, n_coils, ny, nx = kspace.shape
    try:
        ranking_shape((t, n_slices, ny, nx))
    except ValueError as exc:
        return _fail(f"{args.input}: cannot write a CMRxRecon submission: {exc}")
    full = key.endswith("full")
    acc = args.acc
    if not full and key[-2:].isdigit():
        file_acc = int(key[-2:])
        if acc is not None and acc != file_acc:
            return _fail(f"--acc {acc} contradicts {args.input} ({key})")
        acc = file_acc
    if full and acc is None:
        return _fail(f"{args.input} is fully sampled; give --acc (4, 8 or 10)")
    if full and args.mask is None and acc not in CMRXRECON_ACCELERATIONS:
        return _fail(f"--acc {acc}: the CMRxRecon mask rule for fully sampled {args.input} has R in "
                     f"{CMRXRECON_ACCELERATIONS}; give one of them or --mask")
    mask, mask_source = _resolve_mask(args, case, full, kspace, acc)
    if mask.shape != kspace.shape[-2:]:
        return _fail(f"mask {mask.shape} ({mask_source}) does not match the k-space (ky, kx) {kspace.shape[-2:]} of "
                     f"{args.input}")
    if full:
        kspace = kspace * mask
    mask_t = torch.from_numpy(mask)
    if not np.all(np.isfinite(kspace.view(np.float32))):
        return _fail(f"{args.input}: the k-space has non-finite values")
    check_kspace_scale(kspace, args.input)
    n_acs = int(sampled_lines(mask_t)[acs_rows(mask.shape[0], args.calib)].sum())
    if n_coils > 1 and args.maps is None and n_acs < args.calib:
        return _fail(f"{args.input}: only {n_acs} of the central {args.calib} lines are sampled; lower --calib to "
                     "the ACS size")
    if args.format == "v7.3":
        print(f"stepvip mri reconstruct: warning: {V73_WARNING}", file=sys.stderr)
    print(f"input {args.input} [{key}] shape (t, slice, coil, ky, kx) = {kspace.shape}; mask: {mask_source}; "
          f"effective acceleration {effective_acceleration(mask_t):.2f}")
    name = args.input.name if case is None else case.path.name
    out_dir = args.out if case is None else args.out / Path(case.coil_type, "Cine", case.split,
                                                          f"AccFactor{acc:02d}", case.patient)
    start = time.perf_counter()
    if args.method in DIFFUSION:
        from cardiac_mri.step import reconstruct_file

        recon = torch.from_numpy(reconstruct_file(args, kspace, mask_t, out_dir, name, DIFFUSION[args.method]))
    else:
        slices = []
        for s in range(n_slices):
            y = torch.from_numpy(kspace[:, s])[None]  # [1, T, C, H, W]
            slices.append(_run_method(args, y, mask_t)[0])
        recon = torch.stack(slices, dim=1)  # [T, S, H, W]
    elapsed = time.perf_counter() - start
    if not bool(torch.isfinite(torch.view_as_real(recon) if recon.is_complex() else recon).all()):
        return _fail(f"{args.method} gave non-finite values for {args.input}; nothing written")
    if not bool(recon.abs().amax() > 0):
        return _fail(f"{args.method} gave an all-zero reconstruction of {args.input} (non-zero k-space); "
                     "nothing written")
    out = write_submission(out_dir / name, ranking_subset(recon), fmt=args.format)
    if args.save_full:
        full_path = out_dir / name.replace(".mat", "_recon.mat")
        arr = recon.numpy().astype(np.complex64 if recon.is_complex() else np.float32)
        write_mat(full_path, {"recon": arr}, fmt=args.format)
        print(f"wrote {full_path} (recon, (t, slice, ky, kx) = {arr.shape}, MATLAB {args.format})")
    print(f"{args.method}: {n_slices} slice(s) in {elapsed:.1f} s; wrote {out} (img4ranking, MATLAB {args.format})")
    return 0


def _run_method(args: argparse.Namespace, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if args.method == "zf":
        return baselines.zero_filled_rss(y)
    if y.shape[2] == 1:
        op = SenseOperator.single_coil(mask)
    else:
        maps = read_maps(args.maps) if args.maps is not None else espirit_maps(y[0], calib_width=args.calib)
        op = SenseOperator(maps, mask)
    kw = {} if args.iters is None else {"iters": args.iters}
    if args.method == "sense":
        return baselines.sense_cg(op, y, **kw, **({} if args.lam is None else {"lam": args.lam}))
    if args.method == "tv":
        return baselines.tv_sense(op, y, **kw, **({} if args.lam is None else {"lam_rel": args.lam}))
    return baselines.low_rank_plus_sparse(op, y, lam_l=args.lam_l, lam_s=args.lam_s, **kw)


def _evaluate(args: argparse.Namespace) -> int:
    from cardiac_mri.data import find_cine_files
    from cardiac_mri.evaluation import V73_WARNING, evaluate_dirs, format_table, is_mat73, summarize

    try:
        scores = evaluate_dirs(args.pred, args.gt)
    except (ValueError, FileNotFoundError) as exc:  # MatFileError is a ValueError
        print(f"stepvip mri evaluate: error: {exc}", file=sys.stderr)
        return 2
    v73 = [c.path for c in find_cine_files(args.pred) if is_mat73(c.path)]
    if v73:
        print(f"stepvip mri evaluate: warning: {len(v73)} {V73_WARNING} (e.g. {v73[0]})", file=sys.stderr)
    bad = [f"{s.case.path} ({name} = {value})" for s in scores
           for name, value in (("psnr", s.psnr), ("ssim", s.ssim), ("nmse", s.nmse)) if not math.isfinite(value)]
    if bad:
        print(f"stepvip mri evaluate: error: metrics are not finite for {len(bad)} value(s), e.g. {bad[0]}; "
              "check the submission and the ground truth", file=sys.stderr)
        return 2
    rows = summarize(scores)
    if args.json:
        files = [{"path": str(s.case.path), "psnr": s.psnr, "ssim": s.ssim, "nmse": s.nmse} for s in scores]
        print(json.dumps({"summary": rows, "files": files}, indent=1, allow_nan=False))
    else:
        print(format_table(rows))
    return 0


def _make_synthetic(args: argparse.Namespace) -> int:
    from cardiac_mri.synthetic import write_synthetic_dataset

    try:
        _at_least("--patients", args.patients, 1)
        _at_least("--ny", args.ny, CMRXRECON_ACS)
        _at_least("--nx", args.nx, 2)
        _at_least("--coils", args.coils, 1)
        _at_least("--frames", args.frames, 1)  # fewer than 3 frames: data that reconstruct refuses (tests use it)
        _at_least("--slices", args.slices, 1)
        _finite("--noise", args.noise)
        _at_least("--seed", args.seed, 0)
        _writable(args.out)
    except UsageError as exc:
        print(f"stepvip mri make-synthetic: error: {exc}", file=sys.stderr)
        return 2
    paths = write_synthetic_dataset(
        args.out, args.patients, ny=args.ny, nx=args.nx, coils=args.coils, frames=args.frames, slices=args.slices,
        split=args.split, noise=args.noise, seed=args.seed,
    )
    print(f"wrote {len(paths)} files below {args.out}")
    return 0


def _export_training(args: argparse.Namespace) -> int:
    from cardiac_mri.images import CineVideoDataset, write_training_array
    from cardiac_mri.synthetic import SyntheticVideoDataset

    try:
        _at_least("--synthetic", args.synthetic, 1)
        _at_least("--size", args.size, 4)
        _at_least("--frames", args.frames, 1)
        _at_least("--seed", args.seed, 0)
        _writable(args.out)
    except UsageError as exc:
        print(f"stepvip mri export-training: error: {exc}", file=sys.stderr)
        return 2
    if args.synthetic is not None:
        data = SyntheticVideoDataset(args.synthetic, size=args.size, frames=args.frames, seed=args.seed)
        meta = {"source": "synthetic", "seed": args.seed}
    else:
        data = CineVideoDataset(args.root, size=args.size, views=args.views)
        meta = {"source": str(args.root)}
    path = write_training_array(args.out, data, metadata=meta)
    print(f"wrote {path} ({len(data)} videos)")
    return 0
