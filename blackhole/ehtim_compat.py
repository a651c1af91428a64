"""The one adapter between this package and ehtim 1.3.2 (FACTS.md s.4 pitfalls).

* ``import_ehtim()`` imports ehtim once with its banner ("Warning: No NFFT installed!", "Welcome to eht-imaging!")
  kept off stdout, so a CLI that prints JSON stays parseable.
* ``Obsdata.tlist()`` returns a 2-D object array when every timestamp has the same number of baselines (our Sgr A*
  track: 64 x 21), which breaks ``c_phases``, ``c_amplitudes``, ``split_obs``, ``chisq`` on movies, jones corruption
  and StarWarps. ``tlist(obs)`` is a correct replacement, and ``ehtim_fixes()`` is a context manager that swaps it in
  for ``Obsdata.tlist`` only while ehtim code runs inside the ``with`` block, then restores ehtim's method: ehtim's
  behaviour outside the block (the rest of a user's program) is unchanged.
* ``TTYPE`` is the only Fourier transform type we pass to ehtim ('direct'): its default 'nfft' needs pynfft.
* ``Movie.save_hdf5`` uses ``np.string_`` (gone in numpy 2): this package exports FITS (``fits_io``) instead, and
  ehtim's hash-seeded gains are avoided by ``simulate`` (own seeded generator).
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterator
from functools import lru_cache
from types import ModuleType

import numpy as np

TTYPE = "direct"
_LOCK = threading.RLock()


@lru_cache(maxsize=1)
def import_ehtim() -> ModuleType:
    """Import ehtim once, silencing its import banner; returns the module."""
    with contextlib.redirect_stdout(io.StringIO()):
        import ehtim  # noqa: PLC0415  (heavy, ~4 s: imported lazily)
    return ehtim


def tlist(obs, conj: bool = False, t_gather: float = 0.0) -> np.ndarray:
    """Equal-time groups of ``obs.data`` as a 1-D object array of record arrays (never 2-D).

    Same grouping as ehtim's ``Obsdata.tlist(conj, t_gather)``: consecutive rows with equal ``time`` (or, if
    ``t_gather`` > 0 seconds, equal ``int(time / t_gather)``); with ``conj=True`` every baseline also appears
    reversed (ehtim's ``data_conj``).
    """
    data = np.asarray(obs.data_conj() if conj else obs.data)
    times = np.asarray(data["time"], dtype=float)
    keys = np.floor(times / (t_gather / 3600.0)) if t_gather > 0 else times
    if len(keys) == 0:
        return np.empty(0, dtype=object)
    breaks = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    groups = np.split(data, breaks)
    out = np.empty(len(groups), dtype=object)
    for i, g in enumerate(groups):
        out[i] = g
    return out


@contextlib.contextmanager
def ehtim_fixes(quiet: bool = True) -> Iterator[ModuleType]:
    """Run ehtim code with a correct ``Obsdata.tlist`` (and, if ``quiet``, its progress prints kept off stdout).

    Usage: ``with ehtim_fixes() as eh: cp = obs.c_phases(count='min')``. The original method is restored on exit,
    also when the block raises. Re-entrant; a lock keeps threads from seeing a half-patched class.
    """
    eh = import_ehtim()
    cls = eh.obsdata.Obsdata
    with _LOCK:
        original = cls.__dict__["tlist"]

        def _tlist(self, conj=False, t_gather=0.0, scan_gather=False):
            if scan_gather:
                raise NotImplementedError("ehtim_fixes: Obsdata.tlist(scan_gather=True) is not supported here")
            return tlist(self, conj=conj, t_gather=t_gather)

        cls.tlist = _tlist
        try:
            if quiet:
                with contextlib.redirect_stdout(io.StringIO()):
                    yield eh
            else:
                yield eh
        finally:
            cls.tlist = original
