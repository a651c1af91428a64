"""Run the chosen methods on a task: samples, posterior summaries, modes and truth metrics.

``metrics[method]`` averages each measure over the samples; ``psnr_of_mean`` and ``<fit>_of_mean`` score the
posterior mean (the movie written to the FITS / submission files); ``seconds_per_sample`` is the mean sampling time
of one sample (of the run that drew it: a resumed run reports the times of the interrupted one for the samples it
reused, so this value, unlike the samples, can differ from an uninterrupted run's).

Samples are drawn one at a time (:func:`draw_samples`: method.sample(..., 1, seed + k), which every method
guarantees equals sample k of a batched call) into a sample store (:mod:`common.recon.sample_store`), then summarised
(:func:`collect`).
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
from common.recon.sample_store import MemoryStore, SampleStore
from common.recon.task import ReconTask


def truth_metrics(pred01: np.ndarray, truth01: np.ndarray, motion_blur_px: float) -> dict[str, np.ndarray]:
    """Per-sample ``psnr, ssim`` (frame averages), ``dpsnr, dssim`` and the motion SNR ``msnr`` (blur of
    ``motion_blur_px`` pixels, the task's ``motion_blur_px``) of ``[S, T, H, W]`` against ``[T, H, W]``, all images
    in ``[0, 1]`` (Gaussian 11x11 SSIM window, paper Sec. 4.1)."""
    p = torch.as_tensor(np.asarray(pred01, dtype=np.float64))
    t = torch.as_tensor(np.asarray(truth01, dtype=np.float64)).expand_as(p)
    return {"psnr": psnr(p, t).mean(-1).numpy(), "ssim": ssim(p, t).mean(-1).numpy(),
            "dpsnr": dpsnr(p, t).numpy(), "dssim": dssim(p, t).numpy(), "msnr": msnr(p, t, motion_blur_px).numpy()}


def mean_fit(task: ReconTask, mean: np.ndarray) -> dict[str, float]:
    """Data fit of the posterior mean ``mean [T, H, W]`` (physical units; the movie the FITS / submission files
    hold), ``{}`` when the task cannot map physical units back; keys as in ``task.data_fit``."""
    if task.from_physical is None:
        return {}
    x = task.from_physical(mean[None])
    return {k: float(np.asarray(v).reshape(-1)[0]) for k, v in task.data_fit(x).items()}


def draw_samples(task: ReconTask, priors: Priors, plan: list[tuple[Method, Any]], n_samples: int, seed: int,
                 store: SampleStore | MemoryStore, rank: int = 0, world: int = 1) -> None:
    """Draw sample k (seed ``seed + k``) of every ``(method, settings)`` of ``plan`` for the k < ``n_samples`` of
    this process (k = rank, rank + world, ...: the samples split across ``world`` torchrun processes) that
    ``store`` does not hold yet, one at a time, each put into ``store`` as soon as it is done (progress on stderr)."""
    who = f"[{task.name}]" if world == 1 else f"[{task.name} rank {rank}/{world}]"
    for method, settings in plan:
        mine = range(rank, n_samples, world)
        todo = [k for k in mine if not store.has(method.name, k)]
        done = f", {len(mine) - len(todo)} already done" if len(todo) < len(mine) else ""
        print(f"{who} {method.name}: {len(todo)} of {n_samples} sample(s) to draw{done}, {method.describe(settings)}",
              file=sys.stderr, flush=True)
        for k in todo:
            t0 = time.perf_counter()
            x = method.sample(task, priors, settings, 1, seed + k)
            seconds = time.perf_counter() - t0
            store.put(method.name, k, x, seconds)
            fit = ", ".join(f"{name} {float(np.asarray(v).reshape(-1)[0]):.4g}" for name, v in task.data_fit(x).items())
            print(f"{who} sample {k + 1}/{n_samples} of {method.name} done in {seconds:.1f} s"
                  + (f", {fit}" if fit else ""), file=sys.stderr, flush=True)


def summarise(task: ReconTask, method: str, x: torch.Tensor, seconds: list[float], seed: int,
              n_modes: int) -> tuple[MethodPosterior, dict[str, float]]:
    """Posterior, modes and metrics row of one method's samples ``x [S, T, C, H, W]`` (network units) that took
    ``seconds`` each (module docstring)."""
    post = MethodPosterior(method, task.to_physical(x), task.data_fit(x))
    find_modes(post, n_modes=n_modes, seed=seed)
    row = {}
    if task.truth is not None:
        truth01 = task.metric_images(task.truth[None])[0]
        scores = truth_metrics(task.metric_images(post.samples), truth01, task.motion_blur_px)
        row.update({k: float(v.mean()) for k, v in scores.items()})
        of_mean = truth_metrics(task.metric_images(post.mean_sample()[None]), truth01, task.motion_blur_px)
        row["psnr_of_mean"] = float(of_mean["psnr"][0])
    row.update({k: float(v.mean()) for k, v in post.fit.items()})
    row.update({f"{k}_of_mean": v for k, v in mean_fit(task, post.mean_sample()).items()})
    row["seconds_per_sample"] = float(np.mean(seconds))
    return post, row


def collect(task: ReconTask, plan: list[tuple[Method, Any]], n_samples: int, seed: int, n_modes: int,
            store: SampleStore | MemoryStore) -> tuple[list[MethodPosterior], dict[str, dict[str, float]]]:
    """``(posteriors, metrics)`` of the ``n_samples`` samples of every method of ``plan`` held by ``store``."""
    posts, metrics = [], {}
    for method, _ in plan:
        got = [store.get(method.name, k) for k in range(n_samples)]
        post, metrics[method.name] = summarise(task, method.name, torch.cat([x for x, _ in got]),
                                               [s for _, s in got], seed, n_modes)
        posts.append(post)
    return posts, metrics


def run_task(task: ReconTask, priors: Priors, plan: list[tuple[Method, Any]], n_samples: int, seed: int,
             n_modes: int, store: SampleStore | MemoryStore | None = None
             ) -> tuple[list[MethodPosterior], dict[str, dict[str, float]]]:
    """Sample every ``(method, settings)`` of ``plan`` (sample k from seed ``seed + k`` for every method; those
    already in ``store`` are reused; default: an in-memory store), summarise, find modes and (with a truth) score:
    ``(posteriors, metrics)`` (module docstring)."""
    store = MemoryStore() if store is None else store
    draw_samples(task, priors, plan, n_samples, seed, store)
    return collect(task, plan, n_samples, seed, n_modes, store)


def run_stored(task: ReconTask, priors: Priors, plan: list[tuple[Method, Any]], n_samples: int, seed: int,
               n_modes: int, store: SampleStore, resume: bool
               ) -> tuple[list[MethodPosterior], dict[str, dict[str, float]]] | None:
    """:func:`run_task` through the work folder ``store`` (:mod:`common.recon.sample_store`), resumable and split
    across torchrun processes: ``store`` is refused if it exists without ``resume`` or holds another run's samples;
    with ``WORLD_SIZE > 1`` (the process group is joined here, :func:`common.distributed.setup_distributed`;
    the caller leaves it) process r draws samples k with k % world == r, and after a barrier rank 0 returns
    ``(posteriors, metrics)`` of all of them, the other ranks None. The caller removes ``store`` once its outputs
    are in place."""
    from common.distributed import LONG_WAIT, DistInfo, env_world_size, setup_distributed

    if resume and not store.folder.exists():
        print(f"[{task.name}] --resume: no unfinished run in {store.folder}; starting from the first sample",
              file=sys.stderr, flush=True)
    store.check(resume)  # before the process group: a refusal is the same one line on every rank
    workers = setup_distributed(LONG_WAIT) if env_world_size() > 1 else DistInfo(0, 1, priors.device)
    workers.barrier()  # every rank checked the folder before rank 0 creates it
    if workers.rank == 0:
        store.create()
    workers.barrier()
    draw_samples(task, priors, plan, n_samples, seed, store, workers.rank, workers.world_size)
    workers.barrier()
    if workers.rank != 0:
        return None
    return collect(task, plan, n_samples, seed, n_modes, store)
