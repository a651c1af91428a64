"""Run the chosen methods on a task: samples, posterior summaries, modes and truth metrics.

``metrics[method]`` averages each measure over the samples; ``psnr_of_mean`` and ``<fit>_of_mean`` score the
posterior mean (the movie written to the FITS / submission files); ``seconds_per_sample`` is the sampling time.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
import torch

from common.methods import Method
from common.metrics import dpsnr, dssim, msnr, psnr, ssim
from common.posterior import MethodPosterior, find_modes
from common.recon.prior_set import Priors
from common.recon.task import ReconTask


def truth_metrics(pred01: np.ndarray, truth01: np.ndarray, motion_blur_px: float) -> dict[str, np.ndarray]:
    """Per-sample ``psnr, ssim`` (frame averages), ``dpsnr, dssim`` and the motion SNR ``msnr`` (blur of
    ``motion_blur_px`` pixels, the task's ``motion_blur_px``) of ``[S, T, H, W]`` against ``[T, H, W]``, all images
    in ``[0, 1]`` (Gaussian 11x11 SSIM window, paper Sec. 4.1)."""
    p = torch.as_tensor(np.asarray(pred01, dtype=np.float64))
    t = torch.as_tensor(np.asarray(truth01, dtype=np.float64)).expand_as(p)
    return {"psnr": psnr(p, t).mean(-1).numpy(), "ssim": ssim(p, t).mean(-1).numpy(),
            "dpsnr": dpsnr(p, t).numpy(), "dssim": dssim(p, t).numpy(), "msnr": msnr(p, t, motion_blur_px).numpy()}


def mean_fit(task: ReconTask, post: MethodPosterior) -> dict[str, float]:
    """Data fit of the posterior mean (the movie the FITS / submission files hold), ``{}`` when the task cannot
    map physical units back; keys as in ``task.data_fit``."""
    if task.from_physical is None:
        return {}
    x = task.from_physical(post.mean_sample()[None])
    return {k: float(np.asarray(v).reshape(-1)[0]) for k, v in task.data_fit(x).items()}


def run_task(task: ReconTask, priors: Priors, plan: list[tuple[Method, Any]], n_samples: int, seed: int,
             n_modes: int) -> tuple[list[MethodPosterior], dict[str, dict[str, float]]]:
    """Sample every ``(method, settings)`` of ``plan`` (sample k from seed ``seed + k`` for every method),
    summarise, find modes and (with a truth) score: ``(posteriors, metrics)`` (module docstring)."""
    posts, metrics = [], {}
    for method, settings in plan:
        print(f"[{task.name}] {method.name}: {n_samples} sample(s), {method.describe(settings)}", file=sys.stderr,
              flush=True)
        t0 = time.perf_counter()
        x = method.sample(task, priors, settings, n_samples, seed)
        seconds = time.perf_counter() - t0
        post = MethodPosterior(method.name, task.to_physical(x), task.data_fit(x))
        find_modes(post, n_modes=n_modes, seed=seed)
        posts.append(post)
        row = {}
        if task.truth is not None:
            truth01 = task.metric_images(task.truth[None])[0]
            scores = truth_metrics(task.metric_images(post.samples), truth01, task.motion_blur_px)
            row.update({k: float(v.mean()) for k, v in scores.items()})
            of_mean = truth_metrics(task.metric_images(post.mean_sample()[None]), truth01, task.motion_blur_px)
            row["psnr_of_mean"] = float(of_mean["psnr"][0])
        row.update({k: float(v.mean()) for k, v in post.fit.items()})
        row.update({f"{k}_of_mean": v for k, v in mean_fit(task, post).items()})
        row["seconds_per_sample"] = seconds / n_samples
        metrics[method.name] = row
    return posts, metrics
