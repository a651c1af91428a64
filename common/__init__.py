"""Domain-free core of stepvip: denoiser protocol, schedules, DAPS sampler, networks, training, metrics, CLI.

Nothing in ``common`` imports a domain package (``blackhole``, ``cardiac_mri``).
"""

from common._version import __version__

__all__ = ["__version__"]
