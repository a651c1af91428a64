"""``stepvip mri ...``: reconstruct CMRxRecon files with classical baselines, evaluate, make synthetic data.

Actions: ``reconstruct`` (zf | sense | tv | lps; step = STeP posterior sampling and svi | vision-xl | tcvr,
the diffusion baselines of :mod:`common.methods`, all through :mod:`cardiac_mri.step`), ``evaluate`` (official
CMRxRecon metrics), ``make-synthetic`` (a synthetic dataset in the CMRxRecon layout) and ``export-training``
(``DIR/videos.npy`` for the prior).
Names map to functions here, at the edge; the library has no string dispatch.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cardiac_mri import baselines
from cardiac_mri.coils import espirit_maps, read_maps
from cardiac_mri.data import CineFile, find_kspace_key, parse_cine_path, read_kspace, read_mask
from cardiac_mri.masks import acs_rows, cmrxrecon_mask, effective_acceleration, sampled_lines
from cardiac_mri.matio import write_mat73
from cardiac_mri.sense import SenseOperator
from common.recon.cli import add_sampling_arguments
from common.recon.errors import DemoError

# diffusion methods: CLI name -> name in common.methods.METHODS (the CLI edge maps names to methods)
DIFFUSION = {"step": "STeP", "svi": "SVI", "vision-xl": "VISION-XL", "tcvr": "TCVR"}
METHODS = ("zf", "sense", "tv", "lps", *DIFFUSION)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``mri`` command group to the ``stepvip`` parser."""
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
    r.add_argument("--save-full", action="store_true", help="also write cine_<view>_recon.mat (all frames, slices)")
    r.add_argument("--format", choices=("v7.3", "v5"), default="v7.3", help="submission MAT-file format")
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
    from cardiac_mri.evaluation import ranking_subset, write_submission

    case = parse_cine_path(args.input.resolve())
    key = args.key if args.key is not None else find_kspace_key(args.input)
    kspace = read_kspace(args.input, key)
    full = key.endswith("full")
    acc = args.acc
    if not full and key[-2:].isdigit():
        file_acc = int(key[-2:])
        if acc is not None and acc != file_acc:
            print(f"stepvip mri reconstruct: --acc {acc} contradicts {args.input} ({key})", file=sys.stderr)
            return 2
        acc = file_acc
    if full and acc is None:
        print(f"stepvip mri reconstruct: {args.input} is fully sampled; give --acc (4, 8 or 10)", file=sys.stderr)
        return 2
    mask, mask_source = _resolve_mask(args, case, full, kspace, acc)
    if mask.shape != kspace.shape[-2:]:
        print(f"stepvip mri reconstruct: mask {mask.shape} does not match k-space (ky, kx) {kspace.shape[-2:]}",
              file=sys.stderr)
        return 2
    if full:
        kspace = kspace * mask
    mask_t = torch.from_numpy(mask)
    print(f"input {args.input} [{key}] shape (t, slice, coil, ky, kx) = {kspace.shape}; mask: {mask_source}; "
          f"effective acceleration {effective_acceleration(mask_t):.2f}")
    n_acs = int(sampled_lines(mask_t)[acs_rows(mask.shape[0], args.calib)].sum())
    if kspace.shape[2] > 1 and args.maps is None and n_acs < args.calib:
        print(f"stepvip mri reconstruct: only {n_acs} of the central {args.calib} lines are sampled; "
              "lower --calib to the ACS size", file=sys.stderr)
        return 2
    name = args.input.name if case is None else case.path.name
    out_dir = args.out if case is None else args.out / Path(case.coil_type, "Cine", case.split,
                                                          f"AccFactor{acc:02d}", case.patient)
    if args.method in DIFFUSION:
        from cardiac_mri.step import reconstruct_file

        try:
            return reconstruct_file(args, kspace, mask_t, out_dir, name, DIFFUSION[args.method])
        except DemoError as exc:
            print(f"stepvip mri reconstruct: error: {exc}", file=sys.stderr)
            return 2
    start = time.perf_counter()
    slices = []
    for s in range(kspace.shape[1]):
        y = torch.from_numpy(kspace[:, s])[None]  # [1, T, C, H, W]
        slices.append(_run_method(args, y, mask_t)[0])
    recon = torch.stack(slices, dim=1)  # [T, S, H, W]
    elapsed = time.perf_counter() - start
    out = write_submission(out_dir / name, ranking_subset(recon), fmt=args.format)
    if args.save_full:
        full_path = out_dir / name.replace(".mat", "_recon.mat")
        arr = recon.numpy().astype(np.complex64 if recon.is_complex() else np.float32)
        write_mat73(full_path, {"recon": arr})
        print(f"wrote {full_path} (recon, (t, slice, ky, kx))")
    print(f"{args.method}: {kspace.shape[1]} slices in {elapsed:.1f} s; wrote {out} (img4ranking)")
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
    from cardiac_mri.evaluation import evaluate_dirs, format_table, summarize

    scores = evaluate_dirs(args.pred, args.gt)
    rows = summarize(scores)
    if args.json:
        files = [{"path": str(s.case.path), "psnr": s.psnr, "ssim": s.ssim, "nmse": s.nmse} for s in scores]
        print(json.dumps({"summary": rows, "files": files}, indent=1))
    else:
        print(format_table(rows))
    return 0


def _make_synthetic(args: argparse.Namespace) -> int:
    from cardiac_mri.synthetic import write_synthetic_dataset

    paths = write_synthetic_dataset(
        args.out, args.patients, ny=args.ny, nx=args.nx, coils=args.coils, frames=args.frames, slices=args.slices,
        split=args.split, noise=args.noise, seed=args.seed,
    )
    print(f"wrote {len(paths)} files below {args.out}")
    return 0


def _export_training(args: argparse.Namespace) -> int:
    from cardiac_mri.images import CineVideoDataset, write_training_array
    from cardiac_mri.synthetic import SyntheticVideoDataset

    if args.synthetic is not None:
        data = SyntheticVideoDataset(args.synthetic, size=args.size, frames=args.frames, seed=args.seed)
        meta = {"source": "synthetic", "seed": args.seed}
    else:
        data = CineVideoDataset(args.root, size=args.size, views=args.views)
        meta = {"source": str(args.root)}
    path = write_training_array(args.out, data, metadata=meta)
    print(f"wrote {path} ({len(data)} videos)")
    return 0
