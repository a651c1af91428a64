"""Shared, session-scoped fixtures: ehtim import (~4 s) and the Sgr A* track (~1.5 s) are built once."""

from __future__ import annotations

import numpy as np
import pytest

NPIX = 32
FOV_UAS = 128.0


def ring_movie(n_frames: int, npix: int = NPIX, fov_uas: float = FOV_UAS, shift: float = 1.0,
               diameter: float = 52.0, flux: float = 2.0) -> np.ndarray:
    """A ring whose bright side turns by ``shift`` x 2 pi over the movie; [T, H, W] Jy/pixel, ehtim orientation."""
    c = (npix - 1) / 2
    yy, xx = np.mgrid[:npix, :npix]
    step = fov_uas / npix
    r = np.hypot(yy - c, xx - c) * step
    th = np.arctan2(c - xx, c - yy)
    frames = []
    for k in range(n_frames):
        im = np.exp(-0.5 * ((r - diameter / 2) / 6.0) ** 2) * (1 + 0.6 * np.cos(th - 2 * np.pi * shift * k / n_frames))
        frames.append(im / im.sum() * flux)
    return np.stack(frames)


@pytest.fixture(scope="session")
def eh():
    from blackhole.ehtim_compat import import_ehtim

    return import_ehtim()


@pytest.fixture(scope="session")
def obs0(eh):
    from blackhole.array import make_observation

    return make_observation()


@pytest.fixture(scope="session")
def times(obs0):
    return np.unique(obs0.data["time"])


@pytest.fixture(scope="session")
def psize(eh):
    return FOV_UAS * eh.RADPERUAS / NPIX


@pytest.fixture(scope="session")
def truth(times):
    return ring_movie(len(times))


@pytest.fixture(scope="session")
def obs_noisy(eh, obs0, truth, times, psize):
    """ehtim-simulated data of the truth movie: thermal noise, no gain/phase errors (ehtim's own observe_same)."""
    from blackhole.ehtim_compat import ehtim_fixes
    from blackhole.fits_io import to_ehtim_movie

    mov = to_ehtim_movie(truth, psize, times)
    with ehtim_fixes():
        return mov.observe_same(obs0, ttype="direct", add_th_noise=True, ampcal=True, phasecal=True, seed=4)


@pytest.fixture(scope="session")
def closure_noisy(obs_noisy):
    from blackhole.measurements import closure_data, vis_table_from_obs

    return closure_data(vis_table_from_obs(obs_noisy))
