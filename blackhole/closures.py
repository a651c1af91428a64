"""Minimal sets of closure triangles and quadrangles per timestamp (paper Eq. 6-7, 13; ehtim's count='min').

For P stations present at one time, with stations ordered as in the observation's station table and the first one
present as reference r:

* closure phases: triangles (r, i, j) for all pairs i < j of the other stations, (P-1)(P-2)/2 of them
  (15 for P = 7); value angle(V_ri V_ij V_jr);
* log closure amplitudes: ehtim's quadrangles (r, s_i, s_j, s_k) for i = 3..P-1, j = 1..i-1, k = j+1 (or 1 when
  j = i-1), P(P-3)/2 of them (14 for P = 7); value log|V_12| + log|V_34| - log|V_14| - log|V_23|.

Sets are index tables into the rows of a ``VisTable`` (``measurements``): a row index per baseline and a sign that
says whether the stored baseline runs the triangle's way (+1) or must be conjugated (-1). Timestamps with fewer than
3 (closure phases) or 4 (closure amplitudes) stations contribute nothing and are listed, not raised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClosureSet:
    """Index tables of a minimal closure set over all timestamps of a ``VisTable``.

    Attributes (Ncp closure phases, Nlca log closure amplitudes):
        cp_rows [Ncp, 3] int: rows of baselines (1,2), (2,3), (3,1).
        cp_sign [Ncp, 3] float: +1 if the row is stored in that direction, -1 if it must be conjugated.
        cp_stations [Ncp, 3] str; cp_time [Ncp] UTC hours; cp_frame [Ncp] int.
        lca_rows [Nlca, 4] int: rows of (1,2), (3,4) (numerator) and (1,4), (2,3) (denominator).
        lca_stations [Nlca, 4] str; lca_time [Nlca]; lca_frame [Nlca].
        sparse_times: timestamps (hours) with fewer than 3 stations (no closure phase possible).
    """

    cp_rows: np.ndarray
    cp_sign: np.ndarray
    cp_stations: np.ndarray
    cp_time: np.ndarray
    cp_frame: np.ndarray
    lca_rows: np.ndarray
    lca_stations: np.ndarray
    lca_time: np.ndarray
    lca_frame: np.ndarray
    sparse_times: tuple[float, ...]


def minimal_triangles(stations_ordered: list[str]) -> list[tuple[str, str, str]]:
    """Triangles (ref, i, j) of the minimal closure-phase set; ``stations_ordered[0]`` is the reference."""
    ref, rest = stations_ordered[0], stations_ordered[1:]
    return [(ref, rest[a], rest[b]) for a in range(len(rest)) for b in range(a + 1, len(rest))]


def minimal_quadrangles(stations_ordered: list[str]) -> list[tuple[str, str, str, str]]:
    """Quadrangles of the minimal log-closure-amplitude set (ehtim's ``quad_minimal_set`` rule)."""
    s = stations_ordered
    quads = []
    for i in range(3, len(s)):
        for j in range(1, i):
            k = 1 if j == i - 1 else j + 1
            quads.append((s[0], s[i], s[j], s[k]))
    return quads


def build_closure_set(time: np.ndarray, frame: np.ndarray, t1: np.ndarray, t2: np.ndarray,
                      station_order: list[str]) -> ClosureSet:
    """Minimal closure sets for baseline rows ``(time[M], frame[M], t1[M], t2[M])``.

    Rows are grouped by exact ``time``; within a timestamp the stations present are ordered by ``station_order``
    (its first present station is the reference). A station absent from ``station_order`` raises ``ValueError``.
    A duplicated baseline at one time keeps its last row (as ehtim's per-time dictionary does).
    """
    rank = {name: i for i, name in enumerate(station_order)}
    unknown = sorted({str(s) for s in np.concatenate([t1, t2])} - set(rank))
    if unknown:
        raise ValueError(f"closure sets: stations {unknown} are not in the station table {station_order}")
    cp_rows, cp_sign, cp_st, cp_t, cp_f = [], [], [], [], []
    lca_rows, lca_st, lca_t, lca_f = [], [], [], []
    sparse = []
    for t in np.unique(time):
        idx = np.flatnonzero(time == t)
        lookup: dict[tuple[str, str], tuple[int, float]] = {}
        for m in idx:
            a, b = str(t1[m]), str(t2[m])
            lookup[(a, b)] = (int(m), 1.0)
            lookup[(b, a)] = (int(m), -1.0)
        present = sorted({str(s) for s in t1[idx]} | {str(s) for s in t2[idx]}, key=rank.__getitem__)
        if len(present) < 3:
            sparse.append(float(t))
            continue
        f = int(frame[idx[0]])
        for tri in minimal_triangles(present):
            legs = [(tri[0], tri[1]), (tri[1], tri[2]), (tri[2], tri[0])]
            if not all(leg in lookup for leg in legs):
                continue
            cp_rows.append([lookup[leg][0] for leg in legs])
            cp_sign.append([lookup[leg][1] for leg in legs])
            cp_st.append(tri)
            cp_t.append(t)
            cp_f.append(f)
        if len(present) < 4:
            continue
        for q in minimal_quadrangles(present):
            legs = [(q[0], q[1]), (q[2], q[3]), (q[0], q[3]), (q[1], q[2])]
            if not all(leg in lookup for leg in legs):
                continue
            lca_rows.append([lookup[leg][0] for leg in legs])
            lca_st.append(q)
            lca_t.append(t)
            lca_f.append(f)
    return ClosureSet(
        cp_rows=np.asarray(cp_rows, dtype=np.int64).reshape(-1, 3),
        cp_sign=np.asarray(cp_sign, dtype=np.float64).reshape(-1, 3),
        cp_stations=np.asarray(cp_st, dtype=str).reshape(-1, 3),
        cp_time=np.asarray(cp_t, dtype=np.float64),
        cp_frame=np.asarray(cp_f, dtype=np.int64),
        lca_rows=np.asarray(lca_rows, dtype=np.int64).reshape(-1, 4),
        lca_stations=np.asarray(lca_st, dtype=str).reshape(-1, 4),
        lca_time=np.asarray(lca_t, dtype=np.float64),
        lca_frame=np.asarray(lca_f, dtype=np.int64),
        sparse_times=tuple(sparse),
    )
