"""Progress reporting for DAPS: the per-step event, a (sigma, misfit) trace recorder and a tqdm bar."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tqdm.auto import tqdm


@dataclass(frozen=True)
class SamplingEvent:
    """One DAPS step, passed to the ``callback`` of :func:`common.sampling.daps_sample`.

    ``anneal_step`` k (0-based, of ``anneal_steps``) works at noise level ``sigma`` with step size ``lr``.
    ``mcmc_step`` j (0-based) for an MCMC update, with ``misfit`` = -mean over the batch of log p(y | x) at the state
    where that update's gradient was taken; ``mcmc_step`` is None for the end-of-annealing-step event, whose
    ``misfit`` is evaluated at the MCMC output z0 of that step (before re-noising). ``report``: the measures in the
    user's units that the caller's ``report`` function gave for that output (end-of-step events only), e.g.
    ``{"chi2_cp": 1.2, "chi2_logca": 1.1}`` or ``{"rel_misfit": 0.03}``; shown by the progress bar instead of
    the raw -log-likelihood.
    """

    anneal_step: int
    anneal_steps: int
    mcmc_step: int | None
    sigma: float
    lr: float
    misfit: float
    report: Mapping[str, float] | None = None


Callback = Callable[[SamplingEvent], None]


class TraceRecorder:
    """Callback recording ``(sigma, misfit)`` once per annealing step (the end-of-step events)."""

    def __init__(self) -> None:
        self.sigmas: list[float] = []
        self.misfits: list[float] = []

    def __call__(self, event: SamplingEvent) -> None:
        if event.mcmc_step is None:
            self.sigmas.append(event.sigma)
            self.misfits.append(event.misfit)

    def as_dict(self) -> dict[str, list[float]]:
        return {"sigma": list(self.sigmas), "misfit": list(self.misfits)}


class ProgressBar:
    """tqdm bar over the annealing steps, showing sigma and the data misfit."""

    def __init__(self, total: int, desc: str = "DAPS") -> None:
        self.bar = tqdm(total=total, desc=desc, unit="step")

    def __call__(self, event: SamplingEvent) -> None:
        if event.mcmc_step is None:
            shown = event.report if event.report else {"misfit": event.misfit}
            self.bar.set_postfix(sigma=f"{event.sigma:.3g}", **{k: f"{v:.4g}" for k, v in shown.items()},
                                 refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def combine(*callbacks: Callback | None) -> Callback | None:
    """One callback calling each non-None callback in order (None when there are none)."""
    cbs = [c for c in callbacks if c is not None]
    if not cbs:
        return None
    if len(cbs) == 1:
        return cbs[0]

    def call(event: SamplingEvent) -> None:
        for c in cbs:
            c(event)

    return call
