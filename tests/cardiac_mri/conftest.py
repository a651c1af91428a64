"""Shared small synthetic cases for the cardiac_mri tests (64 x 64, 8 coils, 12 frames)."""

import pytest

from cardiac_mri.synthetic import synthetic_cine


@pytest.fixture(scope="session")
def cine64():
    """One seeded SAX slice: image [12, 1, 64, 64], maps [8, 64, 64], k-space [12, 1, 8, 64, 64]."""
    return synthetic_cine(64, 64, coils=8, frames=12, slices=1, seed=0)
