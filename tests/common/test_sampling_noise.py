"""Per-sample generators, seed reproducibility, batch independence and batch-consistent noise (paper Eq. 17)."""

from __future__ import annotations

import pytest
import torch

from common.sampling import DAPSConfig, PerSampleNoise, daps_sample, make_generators, per_frame
from common.sampling import noise as noise_mod
from common.schedules import annealing_sigmas

pytestmark = pytest.mark.usefixtures("one_torch_thread")


SHAPE = (3, 1, 4, 4)  # [T, C, H, W]


def _draws(gens: list[torch.Generator], bc: bool = False) -> torch.Tensor:
    return PerSampleNoise(gens, SHAPE, "cpu", torch.float32).randn(batch_consistent=bc)


def test_int_seed_expands_to_seed_plus_k() -> None:
    gens, seeds = make_generators(7, 3, "cpu")
    assert seeds == [7, 8, 9]
    torch.testing.assert_close(_draws(gens), _draws(make_generators([7, 8, 9], 3, "cpu")[0]), rtol=0, atol=0)


def test_sample_rows_do_not_depend_on_the_batch() -> None:
    batch = _draws(make_generators([3, 4, 5], 3, "cpu")[0])
    alone = _draws(make_generators([4], 1, "cpu")[0])
    torch.testing.assert_close(batch[1:2], alone, rtol=0, atol=0)
    assert not torch.equal(batch[0], batch[1])
    noise = PerSampleNoise(make_generators([3, 4], 2, "cpu")[0], SHAPE, "cpu", torch.float32)
    block = noise.randn_block(5)
    assert block.shape == (5, 2, *SHAPE)
    alone = PerSampleNoise(make_generators([4], 1, "cpu")[0], SHAPE, "cpu", torch.float32).randn_block(5)
    torch.testing.assert_close(block[:, 1:2], alone, rtol=0, atol=0)


def test_generator_spec_errors() -> None:
    with pytest.raises(ValueError, match="expected 3 per-sample"):
        make_generators([1, 2], 3, "cpu")
    with pytest.raises(TypeError, match="single torch.Generator"):
        make_generators(torch.Generator(), 2, "cpu")
    with pytest.raises(ValueError, match="seed must be >= 0"):
        make_generators(-1, 2, "cpu")
    with pytest.raises(TypeError, match="only non-negative int seeds or only torch.Generator"):
        make_generators([1, "a"], 2, "cpu")
    gens, seeds = make_generators(None, 2, "cpu")
    assert len(gens) == 2 and seeds[0] != seeds[1]


def test_batch_consistent_noise_is_shared_across_frames_only() -> None:
    bc = _draws(make_generators([1, 2], 2, "cpu")[0], bc=True)
    assert bc.shape == (2, *SHAPE)
    for t in range(1, SHAPE[0]):
        torch.testing.assert_close(bc[:, t], bc[:, 0], rtol=0, atol=0)
    assert not torch.equal(bc[0], bc[1])  # but not across samples
    plain = _draws(make_generators([1, 2], 2, "cpu")[0])
    assert not torch.allclose(plain[:, 1], plain[:, 0])
    assert abs(plain.std().item() - 1.0) < 0.2 and abs(bc[:, 0].std().item() - 1.0) < 0.3


def test_block_sizes_depend_on_the_sample_shape_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(noise_mod, "MAX_BLOCK_ELEMENTS", 100)  # 48 elements per sample -> 2 steps per block
    noise = PerSampleNoise(make_generators([0], 1, "cpu")[0], SHAPE, "cpu", torch.float32)
    assert noise.block_sizes(5) == [2, 2, 1]
    assert noise.block_sizes(0) == []


# ---- through daps_sample --------------------------------------------------------------------------------------------

def _denoiser(z: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Exact denoiser of N(0, 0.25 I) data."""
    return z * 0.25 / (0.25 + sigma.reshape(-1, 1, 1, 1, 1) ** 2)


def _loglik(x: torch.Tensor) -> torch.Tensor:
    return -((x - 0.3) ** 2).flatten(1).sum(1) / 0.5


CFG = DAPSConfig(annealing_steps=4, sigma_max=5.0, sigma_min=0.1, ode_steps=4, mcmc_steps=6, lr=0.01,
                 lr_min_ratio=0.5, momentum=0.5)


def test_daps_seed_reproducibility_and_batch_independence() -> None:
    batch = daps_sample(_denoiser, _loglik, (3, *SHAPE), CFG, generator=[11, 12, 13])
    alone = daps_sample(_denoiser, _loglik, (1, *SHAPE), CFG, generator=[12])
    torch.testing.assert_close(batch[1:2], alone, rtol=1e-6, atol=1e-6)
    again = daps_sample(_denoiser, _loglik, (3, *SHAPE), CFG, generator=11)  # int seed 11 -> 11, 12, 13
    torch.testing.assert_close(again, batch, rtol=0, atol=0)
    gens = [torch.Generator().manual_seed(s) for s in (11, 12, 13)]
    torch.testing.assert_close(daps_sample(_denoiser, _loglik, (3, *SHAPE), CFG, generator=gens), batch,
                               rtol=0, atol=0)
    assert not torch.allclose(batch[0], batch[1])
    other = daps_sample(_denoiser, _loglik, (1, *SHAPE), CFG, generator=[99])
    assert not torch.allclose(other, alone)


class _Spy:
    """Per-frame denoiser recording its input whenever it is called at an annealing sigma (a PF-ODE start)."""

    def __init__(self, config: DAPSConfig) -> None:
        grid = annealing_sigmas(config.sigma_max, config.sigma_min, config.annealing_steps, config.rho)
        self.grid = grid[:-1].float()
        self.starts: list[torch.Tensor] = []
        self.denoise = per_frame(_denoiser)

    def __call__(self, z: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if torch.isclose(self.grid, sigma[0].float(), rtol=1e-6).any():
            self.starts.append(z.clone())
        return self.denoise(z, sigma)


def _frame_constant(z: torch.Tensor) -> bool:
    return bool(all(torch.equal(z[:, t], z[:, 0]) for t in range(1, z.shape[1])))


@pytest.mark.parametrize("bc", [True, False])
def test_batch_consistent_initial_state_and_renoising(bc: bool) -> None:
    """IDM+BCS: z_T and every re-noised state are frame-constant (no MCMC, per-frame denoiser); plain mode not."""
    cfg = DAPSConfig(annealing_steps=3, sigma_max=5.0, sigma_min=0.1, ode_steps=3, mcmc_steps=0, lr=0.01,
                     prior_term="gaussian")
    spy = _Spy(cfg)
    daps_sample(spy, _loglik, (2, *SHAPE), cfg, batch_consistent=bc, generator=3)
    assert len(spy.starts) == 3
    assert all(_frame_constant(z) == bc for z in spy.starts)
    assert abs(spy.starts[0].std().item() - 5.0) < 1.5  # z_T ~ N(0, sigma_max^2)


def test_batch_consistent_keeps_mcmc_noise_iid() -> None:
    spy = _Spy(CFG)
    out = daps_sample(spy, _loglik, (2, *SHAPE), CFG, batch_consistent=True, generator=3)
    assert _frame_constant(spy.starts[0])
    assert not _frame_constant(spy.starts[1])  # MCMC noise and momentum differ between frames
    assert not _frame_constant(out)


def test_batch_consistent_keeps_momentum_iid(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the MCMC noise switched off, frame differences after the MCMC can only come from the momentum draw."""
    monkeypatch.setattr(PerSampleNoise, "randn_block", lambda self, n: torch.zeros(n, self.batch, *self.sample_shape))
    spy = _Spy(CFG)
    daps_sample(spy, _loglik, (2, *SHAPE), CFG, batch_consistent=True, generator=3)
    assert _frame_constant(spy.starts[0])
    assert not _frame_constant(spy.starts[1])
    cfg = DAPSConfig(**{**CFG.to_dict(), "momentum": 0.0})  # Langevin: no momentum, so nothing breaks the symmetry
    spy = _Spy(cfg)
    daps_sample(spy, _loglik, (2, *SHAPE), cfg, batch_consistent=True, generator=3)
    assert all(_frame_constant(z) for z in spy.starts)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_daps_on_cuda_follows_the_device() -> None:
    batch = daps_sample(_denoiser, _loglik, (3, *SHAPE), CFG, generator=[11, 12, 13], device="cuda")
    assert batch.device.type == "cuda"
    alone = daps_sample(_denoiser, _loglik, (1, *SHAPE), CFG, generator=[12], device="cuda")
    torch.testing.assert_close(batch[1:2], alone, rtol=1e-5, atol=1e-5)
    gens = [torch.Generator(device="cuda").manual_seed(s) for s in (11, 12, 13)]
    torch.testing.assert_close(daps_sample(_denoiser, _loglik, (3, *SHAPE), CFG, generator=gens), batch,
                               rtol=0, atol=0)  # device inferred from the generators


def test_dtype_follows_the_denoiser_or_the_argument() -> None:
    class Den(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("var", torch.tensor(0.25, dtype=torch.float64))

        def forward(self, z: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            return z * self.var / (self.var + sigma.reshape(-1, 1, 1, 1, 1) ** 2)

    assert daps_sample(Den(), _loglik, (1, *SHAPE), CFG, generator=0).dtype == torch.float64
    assert daps_sample(_denoiser, _loglik, (1, *SHAPE), CFG, generator=0).dtype == torch.float32
    out = daps_sample(_denoiser, _loglik, (1, *SHAPE), CFG, generator=0, dtype=torch.float64)
    assert out.dtype == torch.float64
