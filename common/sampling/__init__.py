"""DAPS posterior sampling with diffusion priors (STeP paper Sec. 3.3, Algorithm 1; IDM/IDM+BCS baselines, App. B.3).

Public API: :class:`DAPSConfig` (+ ``from_yaml``/``from_dict``, :func:`load_daps_preset`, the folder ``PRESETS`` of
the paper's Table 3 presets), :func:`daps` (any data-consistency step of :mod:`common.sampling.consistency`;
returns latent and pixel samples), :func:`daps_sample` (the paper's latent step; returns the latent),
:class:`SamplingError`, the callback tools :class:`SamplingEvent`, :class:`TraceRecorder`, :class:`ProgressBar`,
the IDM helpers :func:`image_mode` and :func:`per_frame`, and the building blocks :func:`pf_ode_euler`,
:func:`langevin_step`, :func:`hmc_step`, :func:`make_generators`, :class:`PerSampleNoise`.
"""

from pathlib import Path

from common.sampling.config import DAPSConfig, load_daps_preset
from common.sampling.daps import DAPSResult, SamplingError, daps, daps_sample
from common.sampling.mcmc import exact_prior_grad, gaussian_prior_grad, hmc_step, langevin_step, likelihood_grad
from common.sampling.noise import PerSampleNoise, make_generators
from common.sampling.ode import image_mode, per_frame, pf_ode_euler
from common.sampling.progress import ProgressBar, SamplingEvent, TraceRecorder

PRESETS = Path(__file__).resolve().parent / "presets"  # Table 3 presets: daps_blackhole.yaml, daps_mri.yaml

__all__ = [
    "PRESETS",
    "DAPSConfig",
    "PerSampleNoise",
    "ProgressBar",
    "SamplingError",
    "SamplingEvent",
    "TraceRecorder",
    "DAPSResult",
    "daps",
    "daps_sample",
    "exact_prior_grad",
    "gaussian_prior_grad",
    "hmc_step",
    "image_mode",
    "langevin_step",
    "likelihood_grad",
    "load_daps_preset",
    "make_generators",
    "per_frame",
    "pf_ode_euler",
]
