import numpy as np
import pytest
import torch

from cardiac_mri.coils import espirit_maps, normalize_maps, read_maps, rss, time_averaged_kspace
from cardiac_mri.masks import equispaced_mask
from cardiac_mri.matio import write_mat73


def test_espirit_recovers_birdcage_maps_up_to_phase(cine64):
    mask = equispaced_mask(64, 64, 8, 24, frames=12, kt_shift=True)
    k = cine64.kspace[:, 0] * mask[:, None]  # [T, C, H, W], per-frame shifted lattice
    maps = espirit_maps(k, calib_width=24)
    assert maps.shape == (8, 64, 64) and maps.dtype == torch.complex64
    inside = (cine64.image[:, 0].abs().amax(dim=0) > 0.2 * cine64.image.abs().max())
    # maps are defined up to one phase per pixel: compare the projection |<S_est, S_true>| (both unit-norm)
    proj = (maps.conj() * cine64.maps).sum(dim=0).abs()
    assert float(proj[inside].mean()) > 0.98
    power = (maps.abs() ** 2).sum(dim=0)
    assert torch.allclose(power[inside], torch.ones_like(power[inside]), atol=1e-3)


def test_time_average_uses_sampled_frames_only():
    k = np.zeros((2, 1, 4, 4), np.complex64)
    k[0, 0, 0] = 2.0  # line 0 sampled only in frame 0
    k[:, 0, 1] = 1.0  # line 1 in both
    avg = time_averaged_kspace(k)
    np.testing.assert_allclose(avg[0, 0], 2.0)
    np.testing.assert_allclose(avg[0, 1], 1.0)


def test_espirit_refuses_unsampled_calibration(cine64):
    mask = equispaced_mask(64, 64, 8, 12)
    with pytest.raises(ValueError, match="calib_width"):
        espirit_maps(cine64.kspace[:, 0] * mask, calib_width=24)


def test_user_maps(tmp_path, cine64):
    np.save(tmp_path / "maps.npy", cine64.maps.numpy())
    assert torch.equal(read_maps(tmp_path / "maps.npy"), cine64.maps)
    write_mat73(tmp_path / "maps.mat", {"maps": cine64.maps.numpy()})
    assert torch.equal(read_maps(tmp_path / "maps.mat"), cine64.maps)
    np.save(tmp_path / "bad.npy", np.ones((4, 4), np.complex64))
    with pytest.raises(ValueError, match=r"bad\.npy.*\[C, H, W\]"):
        read_maps(tmp_path / "bad.npy")


def test_normalize_and_rss():
    gen = torch.Generator().manual_seed(0)
    m = torch.randn(3, 5, 5, dtype=torch.complex64, generator=gen)
    n = normalize_maps(m)
    assert torch.allclose((n.abs() ** 2).sum(0), torch.ones(5, 5), atol=1e-5)
    x = torch.randn(2, 3, 5, 5, dtype=torch.complex64, generator=gen)
    np.testing.assert_allclose(rss(x).numpy(), np.sqrt((np.abs(x.numpy()) ** 2).sum(1)), rtol=1e-5)
