"""The image-prior baselines of STeP paper Sec. 4.1 / App. B.3 inside the same DAPS sampler.

IDM: the image UNet with its temporal branches off, every frame denoised independently. IDM+BCS: the same with
batch-consistent noise, one 2-D noise image repeated over the frames for the initial state and every re-noising
(Eq. 17; MCMC noise stays i.i.d.).
"""

from __future__ import annotations

import torch

from common.methods.base import Method
from common.methods.step import daps_samples, describe_daps
from common.recon.prior_set import Priors
from common.recon.task import ReconTask
from common.sampling import DAPSConfig, image_mode


def sample_idm(task: ReconTask, priors: Priors, config: DAPSConfig, n_samples: int, seed: int) -> torch.Tensor:
    """IDM: DAPS with the image prior applied per frame."""
    return daps_samples(task, priors, image_mode(priors.image), False, config, n_samples, seed)


def sample_idm_bcs(task: ReconTask, priors: Priors, config: DAPSConfig, n_samples: int, seed: int) -> torch.Tensor:
    """IDM+BCS: IDM with batch-consistent noise (Eq. 17)."""
    return daps_samples(task, priors, image_mode(priors.image), True, config, n_samples, seed)


IDM = Method("IDM", sample_idm, None, describe_daps, "DAPS with the image prior per frame")
IDM_BCS = Method("IDM+BCS", sample_idm_bcs, None, describe_daps,
                 "DAPS with the image prior and batch-consistent noise (Eq. 17)")
