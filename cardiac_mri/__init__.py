"""Cardiac cine MRI: multi-coil SENSE forward model, CMRxRecon data and evaluation, synthetic cine, baselines.

Modules: :mod:`~cardiac_mri.masks` (equispaced ACS masks), :mod:`~cardiac_mri.sense` (``SenseOperator``, centred
FFTs), :mod:`~cardiac_mri.coils` (ESPIRiT, RSS), :mod:`~cardiac_mri.matio` (MATLAB v7.3 I/O),
:mod:`~cardiac_mri.data` (CMRxRecon files and layout), :mod:`~cardiac_mri.images` (model grid, normalisation,
Datasets, training array), :mod:`~cardiac_mri.likelihood` (Gaussian likelihood), :mod:`~cardiac_mri.baselines`
(zero-filled, CG-SENSE, temporal TV, L+S), :mod:`~cardiac_mri.evaluation` (official metrics, submission files),
:mod:`~cardiac_mri.synthetic` (beating-heart phantom), :mod:`~cardiac_mri.problem` (retrospective problem on the
model grid for a sampler), :mod:`~cardiac_mri.cli` (``stepvip mri``).
"""

from cardiac_mri.likelihood import GaussianLikelihood
from cardiac_mri.sense import SenseOperator

__all__ = ["GaussianLikelihood", "SenseOperator"]
