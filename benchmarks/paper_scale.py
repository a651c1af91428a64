"""Paper-scale timing (issue 16, item 3): STeP at ``--quality paper`` on one held-out case per domain, seconds and peak
memory per sample against the paper's Table 5 (A100: black hole 645 s / 52 GB, MRI 332 s / 23 GB).

For each domain: the paper's Table 3 DAPS preset (``sampler_presets("paper")`` of ``blackhole.reconstruct`` and
``cardiac_mri.step``: latent data step, 25 x (20 ODE + 60 MCMC) black hole, 20 x (20 ODE + 53 HMC) MRI) on the
held-out case of the demo simulated at the prior's frame size, 1 sample, on the best device there is (CUDA if
available, else CPU; ``--device`` to choose). The priors are the largest at hand:

* ``--prior DIR`` (one domain): trained checkpoints ``DIR/{vae,image,video}.safetensors``;
* otherwise networks built from ``--config`` (default ``configs/prior_bh.yaml`` / ``configs/prior_mri.yaml``, the
  paper's Table 4 sizes: 256 px black-hole frames, 192 px MRI frames, 131.7 M-parameter UNet) with random weights:
  time and memory do not depend on the weights, so this measures the paper-scale cost without trained paper-scale
  priors (the samples are meaningless and not scored).

Peak memory: ``torch.cuda.max_memory_allocated`` on a GPU; on the CPU the process's peak resident set size
(``resource.getrusage``, includes the Python interpreter and the simulation). ``--annealing-steps``, ``--ode-steps``,
``--mcmc-steps`` shorten the preset for a smoke run (then the time is not the paper's).

Usage::

    python benchmarks/paper_scale.py                          # both domains, paper sizes, untrained priors
    python benchmarks/paper_scale.py blackhole --prior runs/prior_bh_paper
    python benchmarks/paper_scale.py mri --config configs/prior_mri_tiny.yaml --annealing-steps 1 --ode-steps 2 \\
        --mcmc-steps 1                                        # CPU smoke run (tests/test_quality_table.py)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import time
from pathlib import Path

import torch

from common.recon.prior_set import Priors, load_priors, resolve_prior_paths

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PAPER = {"blackhole": {"seconds": 645.0, "memory_gb": 52.0}, "mri": {"seconds": 332.0, "memory_gb": 23.0}}
CONFIG = {"blackhole": "prior_bh.yaml", "mri": "prior_mri.yaml"}


def untrained_priors(config: Path, device: torch.device, seed: int = 0) -> Priors:
    """The VAE and the image / video UNets of a prior config with random weights (seeded), on ``device``."""
    from common.nets.unet import VideoUNet
    from common.nets.vae import FrameVAE
    from common.training.config import load_prior_config

    cfg = load_prior_config(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = None if cfg.vae is None else FrameVAE(cfg.vae)
        image = VideoUNet(dataclasses.replace(cfg.unet, temporal=False))
        video = VideoUNet(cfg.unet)
    nets = [n for n in (vae, image, video) if n is not None]
    for n in nets:
        n.to(device).eval().requires_grad_(False)
    return Priors(vae=vae, image=image, video=video, paths={"config": str(config), "weights": "random (timing only)"})


def domain_task(domain: str, priors: Priors, case: int):
    """``(task, paper DAPS preset)`` of held-out case ``case`` simulated at the priors' frame size."""
    size = priors.image.config.image_size * priors.latent_factor
    if domain == "blackhole":
        from blackhole.demo import held_out_case
        from blackhole.measurements import closure_data, vis_table_from_obs
        from blackhole.reconstruct import DEFAULT_FOV_UAS, blackhole_task, sampler_presets

        truth, obs, _ = held_out_case(case, npix=size)
        task = blackhole_task(closure_data(vis_table_from_obs(obs)), size, DEFAULT_FOV_UAS, truth=truth)
    else:
        from cardiac_mri.demo import FRAMES, held_out_problem
        from cardiac_mri.step import REFERENCE_TAU, mri_task, sampler_presets

        problem = held_out_problem(size, case)
        task = mri_task(problem.likelihood(tau=REFERENCE_TAU), FRAMES, size, truth=(problem.target * problem.scale)
                        .numpy())
    return task, sampler_presets("paper")["paper"]


def peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib * 1024 / 1e9


def measure(domain: str, priors: Priors, device: torch.device, case: int, overrides: dict, seed: int = 0) -> dict:
    """Time one STeP sample at the paper preset (with ``overrides``) and report against Table 5."""
    from common.methods import METHODS

    task, cfg = domain_task(domain, priors, case)
    cfg = dataclasses.replace(cfg, **overrides)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    x = METHODS["STeP"].sample(task, priors, cfg, 1, seed)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    if not bool(torch.isfinite(x).all()):
        raise RuntimeError(f"paper_scale {domain}: the sample has non-finite values")
    mem = peak_memory_gb(device)
    frame = task.image_shape
    return {"domain": domain, "case": case, "device": str(device) if device.type != "cuda"
            else torch.cuda.get_device_name(device), "frames": task.frames, "frame_shape": list(frame),
            "priors": priors.paths, "unet_parameters": sum(p.numel() for p in priors.video.parameters()),
            "daps": {k: getattr(cfg, k) for k in ("annealing_steps", "ode_steps", "mcmc_steps", "data_step")},
            "paper_preset": not overrides, "seconds_per_sample": round(seconds, 2),
            "peak_memory_gb": round(mem, 3), "peak_memory_kind": "cuda max allocated" if device.type == "cuda"
            else "process peak RSS", "paper_seconds": PAPER[domain]["seconds"],
            "paper_memory_gb": PAPER[domain]["memory_gb"],
            "seconds_ratio": round(seconds / PAPER[domain]["seconds"], 3),
            "memory_ratio": round(mem / PAPER[domain]["memory_gb"], 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("domains", nargs="*", choices=("blackhole", "mri"), default=[],
                   help="default: both")
    p.add_argument("--prior", type=Path, default=None, help="trained prior folder (one domain only)")
    p.add_argument("--config", type=Path, default=None,
                   help="prior config for random-weight networks (one domain only; default the paper-size "
                        "configs/prior_bh.yaml, configs/prior_mri.yaml)")
    p.add_argument("--case", type=int, default=None, help="held-out case (default: the demo's)")
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--annealing-steps", type=int, default=None, help="override (smoke runs)")
    p.add_argument("--ode-steps", type=int, default=None, help="override (smoke runs)")
    p.add_argument("--mcmc-steps", type=int, default=None, help="override (smoke runs)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    domains = args.domains or ["blackhole", "mri"]
    if (args.prior is not None or args.config is not None) and len(domains) != 1:
        p.error("--prior and --config name one domain's prior: give exactly one domain")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    overrides = {k: v for k, v in (("annealing_steps", args.annealing_steps), ("ode_steps", args.ode_steps),
                                   ("mcmc_steps", args.mcmc_steps)) if v is not None}
    if any(v < 1 for v in overrides.values()):
        p.error(f"step overrides must be >= 1, got {overrides}")
    results = []
    for domain in domains:
        if args.prior is not None:
            from blackhole.priors import default_prior_paths as bh_paths
            from cardiac_mri.priors import default_prior_paths as mri_paths

            default = bh_paths if domain == "blackhole" else mri_paths
            priors = load_priors(resolve_prior_paths(args.prior, {}, default), map_location=device)
        else:
            priors = untrained_priors(args.config or CONFIGS / CONFIG[domain], device)
        if args.case is None:
            from blackhole.demo import HELDOUT_CASE as BH
            from cardiac_mri.demo import HELDOUT_CASE as MRI

            case = BH if domain == "blackhole" else MRI
        else:
            case = args.case
        r = measure(domain, priors, device, case, overrides)
        results.append(r)
        print(f"{domain}: {r['seconds_per_sample']:.1f} s / sample ({r['seconds_ratio']:.2f} x the paper's "
              f"{r['paper_seconds']:.0f} s), peak memory {r['peak_memory_gb']:.2f} GB ({r['peak_memory_kind']}; "
              f"{r['memory_ratio']:.2f} x the paper's {r['paper_memory_gb']:.0f} GB) on {r['device']}, "
              f"{r['frames']} frames of {r['frame_shape']}, DAPS {r['daps']}"
              + ("" if r["paper_preset"] else " (steps overridden: not the paper's setting)"), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
