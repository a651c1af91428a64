"""CMRxRecon 2023 cine data: k-space and mask files, the folder layout, and the images a prior trains on.

Layout: ``{MultiCoil,SingleCoil}/Cine/{TrainingSet,ValidationSet}/{FullSample,AccFactor04,AccFactor08,AccFactor10}/
Pxxx/cine_{sax,lax}.mat`` plus ``cine_{sax,lax}_mask.mat``. Files are MATLAB v7.3 (HDF5); MATLAB's
``(kx, ky, coil, slice, t)`` reads in h5py as ``(t, slice, coil, ky, kx)``, which is the order used here. K-space
is centred: ``image = fftshift(ifft2(ifftshift(k)))`` with orthonormal scaling (:func:`cardiac_mri.sense.ifft2c`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cardiac_mri.matio import MatFileError, check_mat73, list_datasets, read_array

MULTI_COIL_KEYS = ("kspace_full", "kspace_sub04", "kspace_sub08", "kspace_sub10")
SINGLE_COIL_KEYS = ("kspace_single_full", "kspace_single_sub04", "kspace_single_sub08", "kspace_single_sub10")
KSPACE_KEYS = MULTI_COIL_KEYS + SINGLE_COIL_KEYS
MASK_KEYS = ("mask04", "mask08", "mask10")
COIL_TYPES = ("MultiCoil", "SingleCoil")
VIEWS = ("sax", "lax")

_ACC_DIR = re.compile(r"^(FullSample|AccFactor(\d\d))$")
_PATIENT_DIR = re.compile(r"^P\d+$")
_CINE_FILE = re.compile(r"^cine_(sax|lax)\.mat$")


def read_kspace(path: str | os.PathLike, key: str | None = None) -> np.ndarray:
    """Read cine k-space as a numpy complex64 array ``(t, slice, coil, ky, kx)``.

    Args:
        path: a CMRxRecon ``cine_*.mat`` file (MATLAB v7.3 / HDF5, compound ``real``/``imag``).
        key: dataset name; ``None`` finds the one official key present (``kspace_full``, ``kspace_sub04|08|10``,
            ``kspace_single_full``, ``kspace_single_sub04|08|10``).
    Single-coil files (rank 4, ``(t, slice, ky, kx)``) get a coil axis of length 1.
    Raises ``MatFileError`` naming the file for a MATLAB v5 file, a missing or ambiguous key, a wrong rank or a
    non-complex dataset; ``FileNotFoundError`` for a missing file.
    """
    path = check_mat73(path)
    if key is None:
        key = find_kspace_key(path)
    data = read_array(path, key)
    if not np.iscomplexobj(data):
        raise MatFileError(f"{path}: dataset {key!r} is real ({data.dtype}); expected complex k-space (real/imag)")
    single = key.startswith("kspace_single")
    expected = 4 if single else 5
    if data.ndim != expected:
        order = "(t, slice, ky, kx)" if single else "(t, slice, coil, ky, kx)"
        raise MatFileError(
            f"{path}: dataset {key!r} has rank {data.ndim} (shape {data.shape}); expected rank {expected} {order} "
            "in h5py order (the reverse of MATLAB's)"
        )
    if single:
        data = data[:, :, None]
    return np.ascontiguousarray(data.astype(np.complex64, copy=False))


def find_kspace_key(path: str | os.PathLike) -> str:
    """The one official CMRxRecon k-space key present in ``path`` (``MatFileError`` if none or several)."""
    path = check_mat73(path)
    present = list_datasets(path)
    found = [k for k in KSPACE_KEYS if k in present]
    if not found:
        raise MatFileError(f"{path}: none of the CMRxRecon k-space keys {list(KSPACE_KEYS)} found; present: {present}")
    if len(found) > 1:
        raise MatFileError(f"{path}: several k-space keys {found}; pass key= to choose one")
    return found[0]


def read_mask(path: str | os.PathLike, key: str | None = None, acc: int | None = None) -> np.ndarray:
    """Read a CMRxRecon mask file as float32 ``(ky, kx)`` (MATLAB ``(kx, ky)``), values 0/1.

    ``key`` defaults to ``mask{acc:02d}`` when ``acc`` is given, else to the one official mask key present.
    """
    path = check_mat73(path)
    if key is None:
        if acc is not None:
            key = f"mask{acc:02d}"
        else:
            present = list_datasets(path)
            found = [k for k in MASK_KEYS if k in present]
            if len(found) != 1:
                raise MatFileError(f"{path}: expected exactly one of {list(MASK_KEYS)}, found {found} in {present}")
            key = found[0]
    mask = read_array(path, key)
    if np.iscomplexobj(mask) or mask.ndim != 2:
        raise MatFileError(f"{path}: mask {key!r} must be a real 2-D (ky, kx) array, got {mask.dtype} {mask.shape}")
    if not np.all((mask == 0) | (mask == 1)):
        raise MatFileError(f"{path}: mask {key!r} has values other than 0 and 1")
    return mask.astype(np.float32)


@dataclass(frozen=True)
class CineFile:
    """One ``cine_{view}.mat`` in the CMRxRecon layout; ``acc`` is ``None`` for FullSample."""

    path: Path
    coil_type: str
    split: str
    acc: int | None
    patient: str
    view: str

    @property
    def mask_path(self) -> Path:
        return self.path.with_name(f"cine_{self.view}_mask.mat")

    @property
    def acc_dir(self) -> str:
        return "FullSample" if self.acc is None else f"AccFactor{self.acc:02d}"

    def relative(self) -> Path:
        """The path below the dataset root: ``coil/Cine/split/acc/patient/cine_view.mat``."""
        return Path(self.coil_type, "Cine", self.split, self.acc_dir, self.patient, self.path.name)


def parse_cine_path(path: str | os.PathLike) -> CineFile | None:
    """Recognise ``.../{coil}/Cine/{split}/{acc}/Pxxx/cine_{view}.mat``; ``None`` if ``path`` does not match."""
    path = Path(path)
    parts = path.parts
    if len(parts) < 6:
        return None
    coil, cine, split, acc_dir, patient, name = parts[-6:]
    m_acc, m_file = _ACC_DIR.match(acc_dir), _CINE_FILE.match(name)
    if coil not in COIL_TYPES or cine != "Cine" or not m_acc or not m_file or not _PATIENT_DIR.match(patient):
        return None
    acc = None if m_acc.group(2) is None else int(m_acc.group(2))
    return CineFile(path, coil, split, acc, patient, m_file.group(1))


def find_cine_files(root: str | os.PathLike) -> list[CineFile]:
    """All cine files below ``root`` in the CMRxRecon layout, sorted by path (mask files excluded)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory")
    found = [parse_cine_path(p) for p in sorted(root.rglob("cine_*.mat"))]
    return [f for f in found if f is not None]


def kspace_key(coil_type: str, acc: int | None) -> str:
    """The official dataset name for a coil type and acceleration (``None`` = fully sampled)."""
    prefix = "kspace_single_" if coil_type == "SingleCoil" else "kspace_"
    return prefix + ("full" if acc is None else f"sub{acc:02d}")
