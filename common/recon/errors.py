"""The one user-error type of the reconstruction driver."""

from __future__ import annotations


class DemoError(ValueError):
    """A user error (missing or bad prior, input or option), reported on one line with exit code 2."""


ReconError = DemoError
