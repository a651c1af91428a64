"""EHT 2017 station table and the paper's Sgr A* observation track (paper Sec. 4.2, App. B.1; FACTS.md s.4).

The station table (positions in metres, SEFDs in Jy) ships as package data ``blackhole/data/EHT2017.txt`` in ehtim's
array-file format. ``make_observation`` builds an empty ehtim ``Obsdata`` (u, v, thermal sigmas, no visibilities) for
the track; with the defaults it has 64 timestamps of 102 s, 7 stations (PV never rises) and 21 baselines each.

Station order matters: ehtim's minimal closure sets take the first station of the array table present at a time as
the reference. We order the table by ascending SEFD so the reference is the most sensitive station (ALMA), as in the
STeP experiments; ``closures`` follows the same order, so our closure sets equal ehtim's station for station.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np

from blackhole.ehtim_compat import import_ehtim

# Sgr A* (J2000) and the 2017 track used by the paper's simulations.
SGRA_RA_HOURS = 17.761120
SGRA_DEC_DEG = -29.007797
RF_HZ = 230e9
MJD_2017_APR_07 = 57850


def station_table_path() -> Path:
    """Path of the packaged EHT 2017 station table."""
    return Path(str(files("blackhole") / "data" / "EHT2017.txt"))


@dataclass(frozen=True)
class ObservationSetup:
    """Parameters of a simulated VLBI track (ehtim ``Array.obsdata`` arguments; times UTC hours, seconds, Hz)."""

    ra_hours: float = SGRA_RA_HOURS
    dec_deg: float = SGRA_DEC_DEG
    rf_hz: float = RF_HZ
    bw_hz: float = 2e9
    tint_s: float = 102.0
    tadv_s: float = 102.0
    tstart_hr: float = 12.5
    tstop_hr: float = 14.3
    mjd: int = MJD_2017_APR_07
    elevmin_deg: float = 10.0
    elevmax_deg: float = 85.0


def load_array(path: str | Path | None = None):
    """Load an ehtim ``Array`` from an ehtim array-file, stations sorted by ascending mean SEFD.

    ``path`` defaults to the packaged EHT 2017 table. Raises ``FileNotFoundError``/``ValueError`` naming the file.
    """
    eh = import_ehtim()
    path = Path(path) if path is not None else station_table_path()
    if not path.is_file():
        raise FileNotFoundError(f"station table {path}: no such file")
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            arr = eh.array.load_txt(str(path))
    except Exception as exc:
        raise ValueError(f"station table {path}: cannot be read as an ehtim array file ({exc})") from exc
    tarr = arr.tarr
    if len(tarr) < 2:
        raise ValueError(f"station table {path}: expected at least 2 stations, found {len(tarr)}")
    order = np.argsort(0.5 * (tarr["sefdr"] + tarr["sefdl"]), kind="stable")
    return eh.array.Array(tarr[order].copy())


def make_observation(setup: ObservationSetup | None = None, array=None):
    """Empty ehtim ``Obsdata`` (u, v, thermal sigma; zero visibilities) for ``setup`` (default: paper's Sgr A* track).

    Thermal sigma per baseline (Stokes I) is ehtim's: sqrt(SEFD_1 SEFD_2 / (2 bw tint)) / 0.88 / sqrt(2).
    """
    setup = setup or ObservationSetup()
    array = array if array is not None else load_array()
    return array.obsdata(
        setup.ra_hours, setup.dec_deg, setup.rf_hz, setup.bw_hz, setup.tint_s, setup.tadv_s,
        setup.tstart_hr, setup.tstop_hr, mjd=setup.mjd, timetype="UTC",
        elevmin=setup.elevmin_deg, elevmax=setup.elevmax_deg,
    )


def station_order(obs) -> list[str]:
    """Station names in the order of ``obs.tarr`` (the order that defines closure reference stations)."""
    return [str(s) for s in obs.tarr["site"]]
