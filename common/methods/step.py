"""STeP (paper Algorithm 1): DAPS with the spatiotemporal video prior, and the DAPS driver the IDM baselines share.

:func:`daps_samples` runs :func:`common.sampling.daps` on a task with the data-consistency step that
``config.data_step`` names (:func:`common.sampling.consistency.make_step`), so STeP, IDM and IDM+BCS differ only in
the denoiser and in batch-consistent noise (paper Sec. 4.1, App. B.3).
"""

from __future__ import annotations

import torch

from common.denoisers import Denoiser
from common.methods.base import Method
from common.recon.errors import DemoError
from common.recon.prior_set import Priors, check_fits, latent_shape
from common.recon.task import ReconTask
from common.sampling import DAPSConfig, daps
from common.sampling.consistency import make_step


def daps_samples(task: ReconTask, priors: Priors, denoiser: Denoiser, batch_consistent: bool, config: DAPSConfig,
                 n_samples: int, seed: int, batch: int | None = None) -> torch.Tensor:
    """``n_samples`` DAPS posterior samples ``[S, T, C, H, W]`` (network units): the pixel-space output of the
    data-consistency step ``config.data_step``.

    Sample k uses seed ``seed + k`` whatever ``batch`` (samples per sampler call; default: 1 on a CPU, where a
    batch of 5 black-hole movies ran 1.8x slower per sample than single ones, all of them on other devices).
    """
    if batch is None:
        batch = 1 if priors.device.type == "cpu" else n_samples
    if batch < n_samples:
        return torch.cat([daps_samples(task, priors, denoiser, batch_consistent, config,
                                       min(batch, n_samples - k), seed + k, batch)
                          for k in range(0, n_samples, batch)])
    check_fits(priors, task.name, task.image_shape)
    latent = priors.vae is not None
    try:
        step = make_step(config, denoiser, log_likelihood=task.log_likelihood,
                         decode=priors.decode if latent else None, encode=priors.encode if latent else None,
                         residuals=task.residuals, linear=task.linear, project=task.project)
    except ValueError as exc:
        raise DemoError(f"{task.name}: {exc}") from exc
    shape = latent_shape(priors, n_samples, task.frames, task.image_shape)
    return daps(denoiser, step, shape, config, batch_consistent=batch_consistent, generator=seed,
                report=task.report).pixels


def sample_step(task: ReconTask, priors: Priors, config: DAPSConfig, n_samples: int, seed: int) -> torch.Tensor:
    """STeP: DAPS with the video UNet (temporal branches on)."""
    return daps_samples(task, priors, priors.video, False, config, n_samples, seed)


def describe_daps(config: DAPSConfig) -> str:
    """One line naming the DAPS setting, e.g. "5 annealing x 3 ODE steps, data step pixel (gauss-newton, 4
    iterations, 35 at the last, temperature 1)"."""
    head = f"{config.annealing_steps} annealing x {config.ode_steps} ODE steps, data step {config.data_step}"
    if config.data_step == "latent":
        return f"{head} ({config.mcmc_steps} {config.kernel} steps through the decoder)"
    if config.data_step == "linear-gaussian":
        kind = {"both": "exact draws", "data": "data-perturbed draws", "none": "conditional mean"}[config.perturb]
        return f"{head} ({kind}, {config.cg_iters} CG iterations, temperature {config.temperature:g})"
    return (f"{head} ({config.pixel_kernel}, {config.dc_iters} iterations, {config.dc_final_iters} at the last, "
            f"temperature {config.temperature:g})")


STEP = Method("STeP", sample_step, None, describe_daps, "DAPS with the spatiotemporal video prior (paper Alg. 1)",
              network="video")
