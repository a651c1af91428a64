import numpy as np
import pytest
import torch

from cardiac_mri.masks import (
    acs_rows,
    cmrxrecon_mask,
    effective_acceleration,
    equispaced_mask,
    paper_mask,
    sampled_lines,
)


def _expected_lines(ny, acc, n_acs, offset=0):
    """Independent set-based construction of the sampled ky lines."""
    start = ny // 2 - n_acs // 2
    return set(range(offset % acc, ny, acc)) | set(range(start, start + n_acs))


@pytest.mark.parametrize("ny, acc", [(204, 4), (204, 8), (246, 10), (64, 8), (63, 4)])
def test_cmrxrecon_rule(ny, acc):
    mask = cmrxrecon_mask(ny, 512, acc)
    assert mask.shape == (ny, 512) and mask.dtype == torch.float32
    lines = set(np.flatnonzero(sampled_lines(mask).numpy()).tolist())
    assert lines == _expected_lines(ny, acc, 24)
    assert bool((mask == mask[:, :1]).all())  # every kx of a sampled line
    assert 0 in lines
    assert effective_acceleration(mask) == pytest.approx(ny / len(lines))
    assert effective_acceleration(mask) < acc


def test_acs_block_centring_matches_matlab_zpad():
    # MATLAB zpad(ones(sx, 24), [sx, 204]): 1-based rows floor(204/2)+1+ceil(-24/2) .. floor(204/2)+ceil(24/2)
    r = acs_rows(204, 24)
    assert (r.start + 1, r.stop) == (204 // 2 + 1 - 12, 204 // 2 + 12)
    r = acs_rows(63, 12)
    assert (r.start, r.stop) == (25, 37)


def test_paper_masks_scan_time_reduction():
    # App. B.2: 6x with 24 ACS ~73 % and 8x with 12 ACS ~82 % scan-time reduction at 192 lines
    for setting, reduction in (("6x", 0.73), ("8x", 0.82)):
        mask = paper_mask(setting)
        assert abs(1 - 1 / effective_acceleration(mask) - reduction) < 0.01


def test_kt_shift_and_frames():
    m = equispaced_mask(64, 32, 4, 8, frames=6, kt_shift=True)
    assert m.shape == (6, 64, 32)
    for t in range(6):
        lines = set(np.flatnonzero(sampled_lines(m[t]).numpy()).tolist())
        assert lines == _expected_lines(64, 4, 8, offset=t)
    same = equispaced_mask(64, 32, 4, 8, frames=3)
    assert bool((same == same[0]).all())
    with pytest.raises(ValueError, match="kt_shift"):
        equispaced_mask(64, 32, 4, kt_shift=True)


def test_bad_arguments():
    with pytest.raises(ValueError, match="CMRxRecon accelerations"):
        cmrxrecon_mask(64, 64, 6)
    with pytest.raises(ValueError, match="setting"):
        paper_mask("5x")
    with pytest.raises(ValueError, match="samples nothing"):
        effective_acceleration(torch.zeros(4, 4))
