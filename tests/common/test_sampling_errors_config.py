"""NaN/Inf detection, callbacks/trace/progress, and DAPSConfig + YAML presets of common.sampling."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from common.sampling import (
    PRESETS,
    DAPSConfig,
    SamplingError,
    SamplingEvent,
    TraceRecorder,
    daps_sample,
    load_daps_preset,
)
from common.schedules import annealing_sigmas

pytestmark = pytest.mark.usefixtures("one_torch_thread")


ROOT = Path(__file__).resolve().parents[2]
SHAPE = (2, 2, 1, 3, 3)
CFG = DAPSConfig(annealing_steps=3, sigma_max=5.0, sigma_min=0.1, ode_steps=3, mcmc_steps=4, lr=0.01,
                 lr_min_ratio=0.5, momentum=0.5)


def _denoiser(z: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return z * 0.25 / (0.25 + sigma.reshape(-1, 1, 1, 1, 1) ** 2)


def _loglik(x: torch.Tensor) -> torch.Tensor:
    return -((x - 0.3) ** 2).flatten(1).sum(1)


class _NaNLikelihood:
    """Returns NaN for batch element 1 at its ``bad_call``-th call (0-based)."""

    def __init__(self, bad_call: int) -> None:
        self.calls, self.bad_call = 0, bad_call

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = _loglik(x)
        if self.calls == self.bad_call:
            out = out * torch.tensor([1.0, float("nan")])
        self.calls += 1
        return out


def test_nan_in_likelihood_names_the_steps() -> None:
    # calls 0..3 are the MCMC steps of annealing step 0, call 4 its end-of-step check; call 7 is step 1, MCMC 2
    with pytest.raises(SamplingError, match=r"likelihood returned NaN/Inf at annealing step 1 .*MCMC step 2.*\[1\]") \
            as info:
        daps_sample(_denoiser, _NaNLikelihood(7), SHAPE, CFG, generator=0)
    assert (info.value.anneal_step, info.value.mcmc_step, info.value.source) == (1, 2, "likelihood")


def test_nan_in_denoiser_names_ode_or_prior() -> None:
    grid = annealing_sigmas(CFG.sigma_max, CFG.sigma_min, CFG.annealing_steps)

    def bad_at(target: float):
        def denoise(z: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            out = _denoiser(z, sigma)
            return out * float("nan") if abs(float(sigma[0]) - target) < 1e-6 * target else out
        return denoise

    with pytest.raises(SamplingError, match=r"PF-ODE at annealing step 2 .*MCMC step None") as info:
        daps_sample(bad_at(float(grid[2])), _loglik, SHAPE, CFG, generator=0)
    assert (info.value.anneal_step, info.value.mcmc_step, info.value.source) == (2, None, "denoiser")
    with pytest.raises(SamplingError, match=r"prior term .* at annealing step 0 .*MCMC step 0") as info:
        daps_sample(bad_at(CFG.prior_sigma), _loglik, SHAPE, CFG, generator=0)
    assert info.value.source == "prior"


def test_divergence_names_the_state() -> None:
    """Finite likelihood and gradient (1e36 per element) but lr * gradient overflows float32: the state is named."""
    cfg = DAPSConfig(annealing_steps=2, sigma_max=5.0, sigma_min=0.1, ode_steps=3, mcmc_steps=4, lr=1e3)
    with pytest.raises(SamplingError, match=r"state became NaN/Inf at annealing step 0 .*MCMC step 0.*step size") \
            as info:
        daps_sample(_denoiser, lambda x: 1e36 * x.flatten(1).sum(1), SHAPE, cfg, generator=0)
    assert info.value.source == "state"


def test_callback_events_trace_and_progress(capsys: pytest.CaptureFixture) -> None:
    events: list[SamplingEvent] = []
    trace = TraceRecorder()

    def cb(e: SamplingEvent) -> None:
        events.append(e)
        trace(e)

    cfg = DAPSConfig(**{**CFG.to_dict(), "progress": True})
    out = daps_sample(_denoiser, _loglik, SHAPE, cfg, generator=0, callback=cb)
    n, m = CFG.annealing_steps, CFG.mcmc_steps
    assert len(events) == n * (m + 1)
    assert [e.mcmc_step for e in events[: m + 1]] == [*range(m), None]
    grid = annealing_sigmas(CFG.sigma_max, CFG.sigma_min, n).tolist()
    assert trace.sigmas == pytest.approx(grid[:n])
    assert [e.lr for e in events if e.mcmc_step is None] == pytest.approx([CFG.lr_at(k) for k in range(n)])
    assert all(e.anneal_steps == n for e in events)
    assert trace.misfits[-1] == pytest.approx(-_loglik(out).mean().item(), rel=1e-6)  # misfit of the final z0
    assert trace.as_dict()["sigma"] == trace.sigmas
    assert "DAPS" in capsys.readouterr().err  # tqdm bar on stderr


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"shape must be \[B, T, C, H, W\]"):
        daps_sample(_denoiser, _loglik, (2, 3, 3), CFG)
    with pytest.raises(ValueError, match=r"denoiser must return a tensor shaped like its input \(2, 2, 1, 3, 3\); "
                                         r"found \(2, 2, 1, 3\)"):
        daps_sample(lambda z, s: z[..., 0], _loglik, SHAPE, CFG)
    with pytest.raises(TypeError, match="DAPSConfig"):
        daps_sample(_denoiser, _loglik, SHAPE, {"lr": 1.0})


# ---- config and presets ---------------------------------------------------------------------------------------------

def test_presets_load_with_paper_values() -> None:
    bh, lik = load_daps_preset(PRESETS / "daps_blackhole.yaml")
    assert (bh.annealing_steps, bh.sigma_max, bh.sigma_min, bh.mcmc_steps, bh.ode_steps) == (25, 100.0, 0.01, 60, 20)
    assert (bh.lr, bh.lr_min_ratio, bh.momentum, bh.kernel) == (1.2e-5, 0.015, 0.0, "langevin")
    assert lik["tau"] == 0.021 and bh.grad_clamp == pytest.approx(1 / 0.021**2)
    mri = DAPSConfig.from_yaml(PRESETS / "daps_mri.yaml")
    assert (mri.annealing_steps, mri.mcmc_steps, mri.lr, mri.lr_min_ratio, mri.momentum) == (20, 53, 1.2e-3, 0.011,
                                                                                            0.83)
    assert mri.kernel == "hmc" and mri.grad_clamp == pytest.approx(1 / 0.10**2)
    assert (mri.prior_term, mri.prior_sigma, mri.ode_sigma_min) == ("exact", 0.01, 1e-5)


def test_unknown_and_invalid_keys_are_rejected(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("annealing_steps: 5\nlearning_rate: 0.1\nmcmc_step: 3\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*unknown key\(s\) \['learning_rate', 'mcmc_step'\]"):
        DAPSConfig.from_yaml(p)
    p.write_text("lr: -1\n")
    with pytest.raises(ValueError, match=r"lr must be > 0, got -1.*bad\.yaml"):
        DAPSConfig.from_yaml(p)
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: expected a mapping"):
        DAPSConfig.from_yaml(p)
    with pytest.raises(ValueError, match="cannot read"):
        DAPSConfig.from_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="prior_term must be one of"):
        DAPSConfig(prior_term="exactly")
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\)"):
        DAPSConfig(momentum=1.0)
    with pytest.raises(ValueError, match="annealing_steps must be an int"):
        DAPSConfig(annealing_steps=2.5)
    with pytest.raises(ValueError, match="radius_scale must be > 0, got 0.0"):
        DAPSConfig(radius_scale=0.0)


def test_lr_decay_and_roundtrip() -> None:
    cfg = DAPSConfig(annealing_steps=4, lr=1.0, lr_min_ratio=0.2)
    assert [cfg.lr_at(k) for k in range(4)] == pytest.approx([1.0 - 0.8 * k / 5 for k in range(4)])
    assert DAPSConfig.from_dict(cfg.to_dict()) == cfg
    assert DAPSConfig.from_dict({"sigma_max": 80}).sigma_max == 80.0
