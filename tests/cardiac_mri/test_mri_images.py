import json

import numpy as np
import pytest
import torch

from cardiac_mri.images import (
    CineFrameDataset,
    CineVideoDataset,
    VideoArrayDataset,
    center_crop,
    fourier_resize,
    to_model_grid,
    video_scale,
    write_training_array,
)
from cardiac_mri.sense import channels_to_complex
from cardiac_mri.synthetic import SyntheticVideoDataset, write_synthetic_dataset


def test_fourier_resize_preserves_values_and_band_limited_content():
    const = torch.full((2, 40, 40), 0.3 + 0.1j, dtype=torch.complex128)
    assert torch.allclose(fourier_resize(const, 24), torch.full((2, 24, 24), 0.3 + 0.1j, dtype=torch.complex128))
    n, m = 40, 24
    grid = torch.arange(n, dtype=torch.float64)
    wave = torch.cos(2 * torch.pi * 3 * grid / n)[None, :] * torch.ones(n, 1)  # 3 cycles across the FOV
    small = fourier_resize(wave.to(torch.complex128), m)
    expect = torch.cos(2 * torch.pi * 3 * torch.arange(m, dtype=torch.float64) / m)[None, :] * torch.ones(m, 1)
    assert torch.allclose(small.real, expect, atol=1e-10)
    assert fourier_resize(const, 64).shape == (2, 64, 64)


def test_model_grid_and_crop():
    x = torch.zeros(3, 30, 50, dtype=torch.complex64)
    assert to_model_grid(x + 1, 16).shape == (3, 16, 16)
    a = torch.arange(10)[None].expand(3, 10)
    assert center_crop(a, (3, 4))[0].tolist() == [3, 4, 5, 6]  # 10 // 2 - 4 // 2 = 3
    with pytest.raises(ValueError, match="cannot crop"):
        center_crop(a, (4, 4))
    with pytest.raises(ValueError, match="no signal"):
        video_scale(torch.zeros(2, 4, 4, dtype=torch.complex64))


def test_video_and_frame_datasets_from_cmrxrecon_layout(tmp_path):
    write_synthetic_dataset(tmp_path, 1, ny=40, nx=64, coils=4, frames=6, slices=2, views=("sax",),
                            accelerations=(8,))
    ds = CineVideoDataset(tmp_path, size=32, coil_types=("SingleCoil",))
    assert len(ds) == 2
    v = ds[1]
    assert v.shape == (6, 2, 32, 32) and v.dtype == torch.float32
    assert float(torch.quantile(channels_to_complex(v).abs().flatten(), 0.99)) == pytest.approx(1.0, rel=1e-4)
    multi = CineVideoDataset(tmp_path, size=32, coil_types=("MultiCoil",))
    m = channels_to_complex(multi[0])
    s = channels_to_complex(ds[0])
    # the ESPIRiT-combined multi-coil magnitude matches the single-coil one (same phantom, maps known up to phase)
    inside = s.abs() > 0.3
    assert float((m.abs()[inside] - s.abs()[inside]).abs().mean()) < 0.03
    frames = CineFrameDataset(ds)
    assert len(frames) == 12 and torch.equal(frames[7], ds[1][1])
    with pytest.raises(FileNotFoundError, match="no FullSample"):
        CineVideoDataset(tmp_path, views=("lax",))


def test_training_array_round_trip(tmp_path):
    data = SyntheticVideoDataset(3, size=24, frames=4, seed=1)
    path = write_training_array(tmp_path / "train", data, metadata={"source": "synthetic"})
    arr = np.load(path)
    assert arr.shape == (3, 4, 2, 24, 24) and arr.dtype == np.float32
    assert np.array_equal(arr[2], data[2].numpy())
    meta = json.loads((tmp_path / "train" / "videos.json").read_text())
    assert meta["shape"] == [3, 4, 2, 24, 24] and len(meta["videos"]) == 3 and meta["source"] == "synthetic"
    vids = VideoArrayDataset(tmp_path / "train")
    assert len(vids) == 3 and torch.equal(vids[1], data[1])
    frames = CineFrameDataset(tmp_path / "train")
    assert len(frames) == 12 and frames[5].shape == (2, 24, 24)
    # reproducible from the seed, different across items
    assert torch.equal(SyntheticVideoDataset(3, size=24, frames=4, seed=1)[0], data[0])
    assert not torch.equal(data[0], data[2])


def test_retrospective_problem_on_model_grid(cine64):
    from cardiac_mri.masks import paper_mask
    from cardiac_mri.problem import retrospective_problem

    k = cine64.kspace[:, 0]  # [12, 8, 64, 64]
    mask = paper_mask("6x", 32, 32)
    prob = retrospective_problem(k, mask, size=32, calib_width=12)
    assert prob.y.shape == (12, 8, 32, 32) and prob.target.shape == (12, 32, 32)
    assert prob.target_channels().shape == (12, 2, 32, 32)
    lik = prob.likelihood(tau=1.0)
    truth = prob.target_channels()[None]
    # the reference video explains the data up to noise and map error; a zero video does not
    misfit_truth = float(lik.data_misfit(truth)[0])
    misfit_zero = float(lik.data_misfit(torch.zeros_like(truth))[0])
    assert misfit_truth < 0.1 * misfit_zero
    assert float(lik(truth)[0]) > float(lik(0.5 * truth)[0])
    single = retrospective_problem(k[:, :1] * 0 + k.sum(dim=1, keepdim=True), mask, size=32)
    assert single.op.num_coils == 1
    assert float(single.likelihood().data_misfit(single.target_channels()[None])[0]) < 1e-3 * float(
        single.y.abs().norm())
    with pytest.raises(ValueError, match="Generator"):
        retrospective_problem(k, mask, size=32, calib_width=12, noise_std=0.1)
