"""The command-line edge of the reconstructions: shared flags, method names -> methods and their settings,
``stepvip demo``.

A demo or reconstruction command parses its flags here (:func:`add_arguments`), maps ``--methods`` to
:class:`~common.methods.Method` objects (:func:`parse_methods`, the only name lookup), picks each method's settings for
``--quick`` / ``--quality`` (:func:`method_plan`: the domain's DAPS presets for STeP, IDM+BCS and IDM with the
``--data-step``/``--perturb``/``--temperature``/``--radius-floor`` overrides; the method's own presets for SVI,
VISION-XL and TCVR) and hands typed objects to :mod:`common.recon.run` (:func:`sample_and_write`). The
``stepvip demo`` group (:func:`register`) finds the domain demos through the entry-point group ``stepvip.demos``
(``name = "package.module:run"``, ``run(args) -> int``), so ``common`` imports no domain.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from common.cli import run_command
from common.distributed import rank_device
from common.io import atomic_folder, output_folder_writable
from common.methods import METHODS, Method
from common.recon.errors import DemoError
from common.recon.outputs import write_outputs
from common.recon.prior_set import Priors, check_channels, load_priors, resolve_prior_paths
from common.recon.task import ReconTask
from common.sampling import PRESETS, DAPSConfig
from common.sampling.config import DATA_STEPS, PERTURBATIONS

DEMO_METHODS = ("STeP", "IDM+BCS", "IDM")  # what `stepvip demo` compares unless --methods says otherwise
DEMO_GROUP = "stepvip.demos"


def priors_from_args(args: argparse.Namespace, default: Callable[[], dict], channels: int, domain: str) -> Priors:
    """The priors named by ``--prior/--vae/--image/--video`` (default: ``default()``, the shipped ones), checked to
    take ``channels``-channel frames (``domain`` names the expected layout in the error)."""
    paths = resolve_prior_paths(args.prior, {"vae": args.vae, "image": args.image, "video": args.video}, default)
    return check_channels(load_priors(paths, map_location=rank_device(args.device)), channels, domain)


def parse_methods(text: str) -> tuple[Method, ...]:
    """``--methods "STeP,SVI"`` -> the registered :class:`Method` objects (``DemoError`` naming the choices)."""
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in names if m not in METHODS]
    if bad or not names:
        raise DemoError(f"--methods {text!r}: expected a comma-separated subset of {','.join(METHODS)}")
    return tuple(METHODS[m] for m in names)


def setting_key(args: argparse.Namespace) -> str:
    return "quick" if args.quick else args.quality


def method_plan(args: argparse.Namespace, methods: tuple[Method, ...],
                daps_presets: Callable[[str], dict[str, DAPSConfig]], domain: str) -> list[tuple[Method, Any]]:
    """``[(method, settings)]`` for ``--quick`` / ``--quality`` (module docstring); invalid overrides raise
    ``DemoError`` before any sampling."""
    key = setting_key(args)
    daps_cfg = sampler_config(args, daps_presets(key)) if any(m.uses_daps for m in methods) else None
    return [(m, daps_cfg if m.uses_daps else m.presets(key, domain)) for m in methods]


def settings_dict(settings: Any) -> dict:
    """JSON-able view of a settings dataclass."""
    return settings.to_dict() if hasattr(settings, "to_dict") else dataclasses.asdict(settings)


class OtherRank(Exception):
    """Raised on a torchrun process of rank > 0 once its samples are stored: rank 0 merges and writes the outputs;
    :func:`all_or_nothing` turns it into exit code 0 with nothing written by this process."""


def sample_and_write(args: argparse.Namespace, task: ReconTask, priors: Priors, out: Path, attrs: dict,
                     presets: Callable[[str], dict[str, DAPSConfig]], default_samples: dict[str, int],
                     methods: tuple[Method, ...]) -> dict[str, dict[str, float]]:
    """Shared tail of every demo and reconstruction: the settings of ``--quick``/``--quality``
    (:func:`method_plan`; ``presets(setting)`` are the domain's DAPS presets), ``--samples`` (default
    ``default_samples[setting]``), sampling and :func:`~common.recon.outputs.write_outputs` into ``out``, with the
    settings and seeds in the attributes. Returns the metrics.

    Each finished sample is stored at once in the work folder ``<final out>.partial``
    (:mod:`common.recon.sample_store`); ``--resume`` reuses the samples found there (refused if they belong to
    another run), and without it an existing work folder is refused, never overwritten. Under ``torchrun`` with
    ``WORLD_SIZE > 1`` process r draws the samples k with k % world == r into the same work folder; after a
    barrier rank 0 merges them and writes the outputs, the other ranks raise :class:`OtherRank`. The work folder
    is removed once the outputs are in place (after the rename of :func:`all_or_nothing`, when run inside it)."""
    from common.distributed import leave_distributed
    from common.recon.run import run_stored
    from common.recon.sample_store import SampleStore, run_identity, work_folder

    key = setting_key(args)
    plan = method_plan(args, methods, presets, task.name)
    n = args.samples if args.samples is not None else default_samples[key]
    if n < 1:
        raise DemoError(f"--samples must be >= 1, got {n}")
    store = SampleStore(work_folder(Path(getattr(args, "final_out", out))),
                        {m.name: run_identity(task, priors, args.seed, key, m.name, settings_dict(s)) for m, s in plan})
    try:
        result = run_stored(task, priors, plan, n, args.seed, args.modes, store, bool(getattr(args, "resume", False)))
    finally:
        leave_distributed()
    if result is None:
        raise OtherRank(f"samples stored in {store.folder}")
    posts, metrics = result
    all_attrs = {**attrs, "settings": {m.name: settings_dict(s) for m, s in plan}, "setting": key,
                 "seed": args.seed, "samples": n, "seeds": f"sample k of every method: seed {args.seed} + k",
                 "priors": priors.paths}
    daps = [s for m, s in plan if m.uses_daps]
    if daps:
        all_attrs["daps_config"] = daps[0].to_dict()
    write_outputs(Path(out), task, posts, metrics, all_attrs)
    on_commit = getattr(args, "on_commit", None)
    if on_commit is None:
        store.remove()
    else:
        on_commit.append(store.remove)
    return metrics


def check_sampling_args(args: argparse.Namespace) -> None:
    """The numeric options of :func:`add_sampling_arguments` (and ``--case``) in range, before any work: one-line
    ``DemoError`` naming the option, what it expects and what it got."""
    for name, low in (("samples", 1), ("modes", 1), ("seed", 0), ("case", 0)):
        value = getattr(args, name, None)
        if value is not None and value < low:
            raise DemoError(f"--{name} must be >= {low}, got {value}")
    for name, positive in (("temperature", True), ("radius_floor", False)):
        value = getattr(args, name, None)
        if value is not None and not (math.isfinite(value) and (value > 0 if positive else value >= 0)):
            flag = "--" + name.replace("_", "-")
            raise DemoError(f"{flag} must be a finite number {'> 0' if positive else '>= 0'}, got {value}")


def add_arguments(parser: argparse.ArgumentParser, methods_default: tuple[str, ...] = DEMO_METHODS) -> None:
    """Options shared by demos and reconstructions: ``--out``, ``--methods`` and :func:`add_sampling_arguments`."""
    parser.add_argument("--out", required=True, type=Path, help="output folder (created)")
    parser.add_argument("--methods", default=",".join(methods_default),
                        help=f"comma-separated subset of {','.join(METHODS)}")
    add_sampling_arguments(parser)


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """Prior files, sampler setting, samples, seed, modes, progress."""
    parser.add_argument("--prior", type=Path, default=None,
                        help="folder with vae.safetensors, image.safetensors, video.safetensors (default: shipped)")
    parser.add_argument("--vae", type=Path, default=None, help="VAE checkpoint (overrides --prior)")
    parser.add_argument("--image", type=Path, default=None, help="image-prior checkpoint (IDM; overrides --prior)")
    parser.add_argument("--video", type=Path, default=None, help="video-prior checkpoint (STeP; overrides --prior)")
    parser.add_argument("--quality", choices=("default", "paper"), default="default",
                        help="method settings: CPU default, or each paper's own settings table (DAPS: Table 3)")
    parser.add_argument("--quick", action="store_true", help="tiny sampler settings (tests, smoke runs)")
    parser.add_argument("--data-step", choices=DATA_STEPS, default=None,
                        help="DAPS methods: data-consistency step (default: the setting's: pixel (black hole) or "
                             "linear-gaussian (MRI) on the CPU default, latent for --quality paper)")
    parser.add_argument("--perturb", choices=PERTURBATIONS, default=None,
                        help="pixel / linear-gaussian steps: perturb data and prior (exact draws), data only, or "
                             "none (conditional mean / mode) (default: the setting's)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="multiplier of the data's own noise level for the pixel / linear-gaussian steps "
                             "(1 = calibrated; default: the setting's)")
    parser.add_argument("--radius-floor", type=float, default=None,
                        help="floor of the pixel-space prior radius r_k, network units (default: the setting's)")
    parser.add_argument("--samples", type=int, default=None, help="posterior samples per method (default: per setting)")
    parser.add_argument("--seed", type=int, default=0, help="sample k uses seed + k (same for every method)")
    parser.add_argument("--modes", type=int, default=3, help="number of k-means modes (at most the samples)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run: reuse the samples stored in <out>.partial (same command)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--device", default="cpu", help="torch device for the networks and likelihood, e.g. cuda")


def paper_preset(filename: str) -> DAPSConfig:
    """The paper's Table 3 DAPS preset ``common/sampling/presets/<filename>`` (package data)."""
    path = PRESETS / filename
    if not path.is_file():
        raise DemoError(f"--quality paper needs the Table 3 preset {path}, which is missing from this installation")
    return DAPSConfig.from_yaml(path)


def sampler_config(args: argparse.Namespace, presets: dict[str, DAPSConfig]) -> DAPSConfig:
    """The DAPS config of ``--quick`` / ``--quality`` from ``presets`` (keys quick, default, paper), with the
    progress bar on unless ``--no-progress`` and the data-step options ``--data-step``, ``--perturb``,
    ``--temperature``, ``--radius-floor`` where given (invalid values: ``DemoError`` naming the flag)."""
    key = setting_key(args)
    changes = {name: getattr(args, name, None) for name in ("data_step", "perturb", "temperature", "radius_floor")}
    changes = {k: v for k, v in changes.items() if v is not None}
    try:
        return dataclasses.replace(presets[key], progress=not args.no_progress, **changes)
    except ValueError as exc:
        flags = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in changes.items())
        raise DemoError(f"{flags}: {exc}") from exc


class _RunFailed(Exception):
    """Internal: the wrapped command returned a non-zero exit code; its temporary output folder is discarded."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def all_or_nothing(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run a command whose ``args.out`` is its own output folder inside :func:`common.io.atomic_folder`: it writes
    into a temporary sibling folder that replaces ``args.out`` as a whole only when the command succeeds, so the
    folder holds the old complete set of files or the new one (no stale files of an earlier run with other
    methods), and an interrupted or failed run leaves it untouched. ``args.out`` is checked before any work.
    ``args.on_commit``: functions the command adds, called once the new folder is in place (removal of the sample
    store). A torchrun process of rank > 0 (:class:`OtherRank`) writes nothing and exits 0."""

    def wrapped(args: argparse.Namespace) -> int:
        final = Path(args.out)
        output_folder_writable(final)
        args.on_commit = []
        try:
            with atomic_folder(final) as tmp:
                args.out, args.final_out = tmp, final  # final_out: for messages naming the folder
                try:
                    code = int(func(args) or 0)
                finally:
                    args.out = final
                if code:
                    raise _RunFailed(code)
        except _RunFailed as exc:
            return exc.code
        except OtherRank:
            return 0
        for commit in args.on_commit:
            commit()
        return code

    return wrapped


def add_demo_parser(subparsers, name: str, run: Callable[[argparse.Namespace], int], help_text: str) -> None:
    """One ``stepvip demo NAME`` parser with the shared options (outputs all-or-nothing)."""
    p = subparsers.add_parser(name, help=help_text, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_arguments(p)
    p.add_argument("--case", type=int, default=None, help="held-out synthetic case index (default: the documented one)")
    p.set_defaults(func=checked(all_or_nothing(run)))


def checked(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run :func:`check_sampling_args` before the command."""

    def wrapped(args: argparse.Namespace) -> int:
        check_sampling_args(args)
        return func(args)

    return wrapped


def demo_main(name: str, run: Callable[[argparse.Namespace], int], argv: list[str] | None = None) -> int:
    """Run one demo without the entry-point lookup (``python -m blackhole.demo --out DIR ...``)."""
    parser = argparse.ArgumentParser(prog=f"python -m {name}")
    add_demo_parser(parser.add_subparsers(dest="demo", required=True), "demo", run, "")
    args = parser.parse_args(["demo", *(sys.argv[1:] if argv is None else argv)])
    return run_command(args.func, args, f"python -m {name}")


def register(subparsers) -> None:
    """Add ``stepvip demo`` with one sub-command per entry point of the group ``stepvip.demos``."""
    p = subparsers.add_parser(
        "demo", help="STeP vs its baselines on a held-out synthetic case",
        description="Run STeP (video prior) and baselines (default IDM+BCS and IDM under the same DAPS settings; "
                    "also SVI, VISION-XL, TCVR with --methods) on a held-out synthetic case of one domain with the "
                    "same seeds; write posterior samples (netCDF), uncertainty summaries, metrics.json, figures and "
                    "GIFs into --out.")
    sub = p.add_subparsers(dest="demo", metavar="DOMAIN", required=True)
    for ep in sorted(entry_points(group=DEMO_GROUP), key=lambda e: e.name):
        add_demo_parser(sub, ep.name, _lazy(ep), f"the {ep.name} demo ({ep.value})")


def _lazy(ep) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        return ep.load()(args)

    return run
