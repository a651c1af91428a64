"""Single source of the package version (read by pyproject.toml and ``stepvip --version``)."""

__version__ = "0.1.0"
