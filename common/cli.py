"""The ``stepvip`` command line.

Command groups are plugins: every entry point in the group ``stepvip.commands`` (see ``pyproject.toml``) is a
function ``register(subparsers)`` that adds one sub-command and sets ``func`` on its parser defaults. ``func``
receives the parsed ``argparse.Namespace`` and returns an exit code. ``common`` itself never imports a domain
package; the mapping from names to code lives in ``pyproject.toml``, at the edge.

User errors (bad input, a missing or malformed file, an output that cannot be written, a sampler that met NaN) are
reported by :func:`main` as one line on stderr, ``stepvip <command>: error: <message>``, with exit code 2; genuine
bugs keep their traceback. The user-error types of ``common`` are listed here; a domain plugin adds its own with
:func:`register_user_errors` from its ``register``. ``STEPVIP_TRACEBACK=1`` shows the traceback of user errors too.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

from common._version import __version__

ENTRY_POINT_GROUP = "stepvip.commands"


class PluginError(RuntimeError):
    """A registered command plugin could not be loaded."""


# Input files that are absent, are folders where files are expected (or the reverse), or cannot be opened.
_OS_USER_ERRORS: tuple[type[BaseException], ...] = (FileNotFoundError, IsADirectoryError, NotADirectoryError,
                                                    PermissionError)
_USER_ERRORS: list[type[BaseException]] = []


def register_user_errors(*types: type[BaseException]) -> None:
    """Declare exception types whose message is meant for the user (reported in one line, exit code 2)."""
    for t in types:
        if t not in _USER_ERRORS:
            _USER_ERRORS.append(t)


def user_error_types() -> tuple[type[BaseException], ...]:
    """The exception types :func:`main` reports as one line with exit code 2 (common's and the plugins')."""
    from common.checkpoints import CheckpointError
    from common.io import OutputPathError
    from common.prior_report import ReportError
    from common.recon.errors import DemoError
    from common.sampling.errors import SamplingError

    return (DemoError, CheckpointError, SamplingError, ReportError, OutputPathError, *_OS_USER_ERRORS,
            *_USER_ERRORS)


def _command_name(argv: Sequence[str]) -> str:
    """``stepvip mri reconstruct`` from the leading non-option words of ``argv``."""
    words = []
    for a in argv:
        if a.startswith("-"):
            break
        words.append(a)
    return " ".join(["stepvip", *words[:2]])


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename is not None and str(exc.filename) not in text:
        text = f"{exc.filename}: {text}"
    return text


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered command group."""
    parser = argparse.ArgumentParser(
        prog="stepvip",
        description="Posterior sampling for video inverse problems with spatiotemporal diffusion priors (STeP).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"stepvip {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            register = ep.load()
        except Exception as exc:  # re-raised with the plugin named: never skipped silently
            raise PluginError(f"stepvip: command plugin {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
        register(subparsers)
    return parser


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace, name: str) -> int:
    """Run a parsed command's ``func``: a user error (:func:`user_error_types`) becomes one line on stderr,
    ``<name>: error: <message>``, and exit code 2; Ctrl-C exit code 130; a bug keeps its traceback. Every entry
    point (``stepvip``, ``python -m blackhole.cli``, ``python -m blackhole.demo``) goes through here."""
    try:
        return int(func(args) or 0)
    except user_error_types() as exc:
        if os.environ.get("STEPVIP_TRACEBACK"):
            raise
        print(f"{name}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``stepvip`` console script; returns the process exit code."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    return run_command(func, args, _command_name(argv))


if __name__ == "__main__":
    sys.exit(main())
