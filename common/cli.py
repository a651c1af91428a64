"""The ``stepvip`` command line.

Command groups are plugins: every entry point in the group ``stepvip.commands`` (see ``pyproject.toml``) is a
function ``register(subparsers)`` that adds one sub-command and sets ``func`` on its parser defaults. ``func``
receives the parsed ``argparse.Namespace`` and returns an exit code. ``common`` itself never imports a domain
package; the mapping from names to code lives in ``pyproject.toml``, at the edge.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

from common._version import __version__

ENTRY_POINT_GROUP = "stepvip.commands"


class PluginError(RuntimeError):
    """A registered command plugin could not be loaded."""


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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``stepvip`` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    return int(func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
