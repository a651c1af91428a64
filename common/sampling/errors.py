"""The one error type of the samplers."""

from __future__ import annotations


class SamplingError(RuntimeError):
    """A non-finite value appeared during sampling. ``anneal_step`` / ``mcmc_step`` are 0-based (``mcmc_step`` is
    None for the PF-ODE or end-of-step stage); ``source`` says what went bad ("likelihood", "prior", "state", ...)."""

    def __init__(self, message: str, *, anneal_step: int, mcmc_step: int | None, source: str) -> None:
        super().__init__(message)
        self.anneal_step, self.mcmc_step, self.source = anneal_step, mcmc_step, source
