"""MATLAB v7.3 (HDF5) reading and writing helpers for the CMRxRecon file format.

A MATLAB v7.3 file is an HDF5 file with a 512-byte user block holding a text header. MATLAB stores arrays in
column-major order, so a MATLAB array of size ``(kx, ky, coil, slice, t)`` appears to h5py as an array of shape
``(t, slice, coil, ky, kx)``: this module never transposes, it reads and writes *h5py order*. Complex arrays are
compound datasets with the fields ``real`` and ``imag``. Writes go to a temporary file in the target folder that
is then renamed over the target (``os.replace``), so an existing file is never half-overwritten.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np

from common.io import atomic_path

_MATLAB_CLASS = {
    np.dtype(np.float64): "double",
    np.dtype(np.float32): "single",
    np.dtype(np.complex128): "double",
    np.dtype(np.complex64): "single",
    np.dtype(np.uint8): "uint8",
    np.dtype(np.int32): "int32",
    np.dtype(np.int64): "int64",
    np.dtype(np.bool_): "logical",
}


class MatFileError(ValueError):
    """A MATLAB file is missing, of the wrong version, or does not hold what was asked for."""


def check_mat73(path: str | os.PathLike) -> Path:
    """Return ``path`` as a ``Path`` after checking that it exists and is a MATLAB v7.3 (HDF5) file.

    Raises ``FileNotFoundError`` for a missing file and ``MatFileError`` for a MATLAB v5/v7 (non-HDF5) file or any
    other non-HDF5 file, naming the file in the message.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if h5py.is_hdf5(path):
        return path
    with open(path, "rb") as fh:
        head = fh.read(128)
    if head.startswith(b"MATLAB 5.0 MAT-file") or head.startswith(b"MATLAB 7"):
        raise MatFileError(
            f"{path}: is a MATLAB v5/v7 MAT-file ({head[:19].decode(errors='replace')!r}); expected a MATLAB v7.3 "
            "file (HDF5) as distributed by CMRxRecon; re-save it in MATLAB with save(..., '-v7.3')"
        )
    raise MatFileError(f"{path}: is not an HDF5 / MATLAB v7.3 file (first bytes {head[:16]!r})")


def list_datasets(path: str | os.PathLike) -> list[str]:
    """Names of the top-level datasets of a MATLAB v7.3 file (MATLAB's own ``#refs#`` group excluded)."""
    path = check_mat73(path)
    with h5py.File(path, "r") as f:
        return sorted(k for k, v in f.items() if isinstance(v, h5py.Dataset))


def read_array(path: str | os.PathLike, key: str) -> np.ndarray:
    """Read dataset ``key`` in h5py order; compound ``real``/``imag`` becomes a complex array.

    Raises ``MatFileError`` naming the file when ``key`` is absent (listing the keys present) or when a compound
    dtype lacks the ``real``/``imag`` fields.
    """
    path = check_mat73(path)
    with h5py.File(path, "r") as f:
        if key not in f or not isinstance(f[key], h5py.Dataset):
            present = sorted(k for k, v in f.items() if isinstance(v, h5py.Dataset))
            raise MatFileError(f"{path}: no dataset {key!r}; datasets present: {present}")
        data = f[key][()]
    return _decode(np.asarray(data), path, key)


def _decode(data: np.ndarray, path: Path, key: str) -> np.ndarray:
    if data.dtype.names is None:
        return data
    names = set(data.dtype.names)
    if not {"real", "imag"} <= names:
        raise MatFileError(
            f"{path}: dataset {key!r} has compound fields {sorted(names)}; expected 'real' and 'imag' (MATLAB complex)"
        )
    out_dtype = np.complex64 if data.dtype["real"] == np.float32 else np.complex128
    out = np.empty(data.shape, dtype=out_dtype)
    out.real = data["real"]
    out.imag = data["imag"]
    return out


def _encode(value: np.ndarray) -> np.ndarray:
    if not np.iscomplexobj(value):
        return value
    part = np.float32 if value.dtype == np.complex64 else np.float64
    compound = np.dtype([("real", part), ("imag", part)])
    out = np.empty(value.shape, dtype=compound)
    out["real"] = value.real
    out["imag"] = value.imag
    return out


def write_mat73(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write ``arrays`` (name -> array in h5py order) as a MATLAB v7.3 file, atomically.

    Complex arrays become compound ``real``/``imag`` datasets; every dataset gets the ``MATLAB_class`` attribute so
    MATLAB's ``load`` reads it. The file carries the 512-byte MATLAB header in its user block.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".tmp") as tmp:
        with h5py.File(tmp, "w", userblock_size=512) as f:
            for name, value in arrays.items():
                value = np.asarray(value)
                if value.dtype not in _MATLAB_CLASS:
                    raise TypeError(f"write_mat73({path}): array {name!r} has unsupported dtype {value.dtype}")
                ds = f.create_dataset(name, data=_encode(value))
                ds.attrs["MATLAB_class"] = np.bytes_(_MATLAB_CLASS[value.dtype])
        header = (
            f"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: {time.strftime('%a %b %d %H:%M:%S %Y')} "
            "HDF5 schema 1.00 ."
        ).encode("ascii")
        block = header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
        with open(tmp, "r+b") as fh:
            fh.write(block.ljust(512, b"\x00"))
    return path
