"""Data-consistency steps of DAPS (samplers of p(x0 | x_t, y)); see :mod:`common.sampling.consistency.base`."""

from common.sampling.consistency.base import ConsistencyStep, PixelRadius, StepResult, StepState, decoder_gain
from common.sampling.consistency.factory import make_step
from common.sampling.consistency.latent import LatentMCMC
from common.sampling.consistency.linear_gaussian import LinearGaussian, LinearGaussianStep
from common.sampling.consistency.pixel import PixelGaussNewton, PixelLangevin, whitened_gaussian

__all__ = ["ConsistencyStep", "LatentMCMC", "LinearGaussian", "LinearGaussianStep", "PixelGaussNewton",
           "PixelLangevin", "PixelRadius", "StepResult", "StepState", "decoder_gain", "make_step",
           "whitened_gaussian"]
