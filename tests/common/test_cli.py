"""The `stepvip` console script: version, help, and the plugin command groups."""

import subprocess
import sys

import pytest

from common import __version__
from common.cli import build_parser, main


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"stepvip {__version__}"


def test_help_lists_every_command_group():
    help_text = build_parser().format_help()
    for group in ("blackhole", "mri", "train", "sample-prior"):
        assert group in help_text


def test_no_command_prints_usage_and_fails(capsys):
    assert main([]) == 2
    assert "usage: stepvip" in capsys.readouterr().err


def test_console_script_runs_as_module():
    out = subprocess.run(
        [sys.executable, "-m", "common.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"stepvip {__version__}"
