"""Package data: the EHT 2017 station table (``EHT2017.txt``, ehtim array-file format) used by ``blackhole.array``,
and example data: one calibrated EHT 2017 Sgr A* observation (``eht2017/``, :func:`example_uvfits`).

``eht2017/ER6_SGRA_2017_097_hi_hops_netcal-LMTcal-besttime_StokesI.uvfits`` is from the EHT Collaboration's release
2022-D02-01 ("First Sagittarius A* EHT Results: Calibrated Data", EHT Collaboration et al. 2022, ApJL 930, L13):
April 7 2017 (day 097), high band, EHT-HOPS pipeline, network- and LMT-calibrated, the 100-minute "best time"
window, Stokes I (RR = LL = I). Licence: ODC-PDDL (Open Data Commons Public Domain Dedication and License,
https://www.opendatacommons.org/licenses/pddl/1.0/), see ``eht2017/LICENSE.txt``; ``eht2017/RELEASE_README.md`` is
the release's own description.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

EXAMPLE_UVFITS = "ER6_SGRA_2017_097_hi_hops_netcal-LMTcal-besttime_StokesI.uvfits"


def example_uvfits() -> Path:
    """Path of the shipped EHT 2017 Sgr A* observation (module docstring); FileNotFoundError if it is missing."""
    path = Path(str(files("blackhole.data") / "eht2017" / EXAMPLE_UVFITS))
    if not path.is_file():
        raise FileNotFoundError(f"example data {path} is missing from this installation (reinstall stepvip)")
    return path
