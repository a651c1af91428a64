"""Reader round trips on files written the way CMRxRecon's are (independently of cardiac_mri.matio), and errors."""

import h5py
import numpy as np
import pytest
import scipy.io

from cardiac_mri.data import find_cine_files, find_kspace_key, parse_cine_path, read_kspace, read_mask
from cardiac_mri.matio import MatFileError, read_array, write_mat73


def _write_official(path, key, arr):
    """A MATLAB v7.3-like file written directly with h5py: compound real/imag, h5py order = reversed MATLAB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    comp = np.dtype([("real", "<f4"), ("imag", "<f4")])
    data = np.empty(arr.shape, comp)
    data["real"], data["imag"] = arr.real, arr.imag
    with h5py.File(path, "w", userblock_size=512) as f:
        f.create_dataset(key, data=data)
    return path


def _random_kspace(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64) * 1e-3


def test_multicoil_round_trip_official_layout(tmp_path):
    k = _random_kspace((12, 3, 4, 20, 32))  # (t, slice, coil, ky, kx)
    path = _write_official(tmp_path / "MultiCoil/Cine/TrainingSet/AccFactor08/P007/cine_sax.mat", "kspace_sub08", k)
    out = read_kspace(path)
    assert out.dtype == np.complex64 and out.shape == (12, 3, 4, 20, 32)
    np.testing.assert_array_equal(out, k)
    case = parse_cine_path(path)
    assert (case.coil_type, case.split, case.acc, case.patient, case.view) == ("MultiCoil", "TrainingSet", 8,
                                                                                "P007", "sax")


def test_single_coil_gets_coil_axis(tmp_path):
    k = _random_kspace((12, 2, 20, 32), seed=1)
    path = _write_official(tmp_path / "cine_lax.mat", "kspace_single_full", k)
    out = read_kspace(path)
    assert out.shape == (12, 2, 1, 20, 32)
    np.testing.assert_array_equal(out[:, :, 0], k)


def test_matlab_order_is_reversed(tmp_path):
    """A MATLAB (kx, ky, coil, slice, t) array: element (kx=i, ky=j, ..., t=n) reads back at [n, ..., j, i]."""
    k = _random_kspace((3, 2, 2, 5, 7), seed=2)
    path = _write_official(tmp_path / "cine_sax.mat", "kspace_full", k)
    with h5py.File(path, "r") as f:
        assert f["kspace_full"].shape == (3, 2, 2, 5, 7)
    out = read_kspace(path)
    assert out[2, 1, 0, 4, 6] == k[2, 1, 0, 4, 6]


def test_writer_round_trip_and_matlab_header(tmp_path):
    k = _random_kspace((2, 1, 3, 4, 5), seed=3)
    mask = np.zeros((4, 5), np.float32)
    mask[::2] = 1
    path = write_mat73(tmp_path / "a" / "cine_sax.mat", {"kspace_sub04": k, "mask04": mask})
    assert open(path, "rb").read(19) == b"MATLAB 7.3 MAT-file"
    with h5py.File(path, "r") as f:
        assert f["kspace_sub04"].dtype.names == ("real", "imag")
        assert f["kspace_sub04"].attrs["MATLAB_class"] == b"single"
    np.testing.assert_array_equal(read_kspace(path, "kspace_sub04"), k)
    np.testing.assert_array_equal(read_mask(path, acc=4), mask)
    assert not list(tmp_path.glob("a/.*.tmp"))


def test_missing_key_names_file_and_keys(tmp_path):
    path = _write_official(tmp_path / "cine_sax.mat", "something_else", _random_kspace((2, 1, 2, 4, 4)))
    with pytest.raises(MatFileError, match=r"cine_sax\.mat.*none of the CMRxRecon k-space keys.*something_else"):
        read_kspace(path)
    with pytest.raises(MatFileError, match=r"no dataset 'kspace_full'"):
        read_kspace(path, key="kspace_full")


def test_wrong_rank(tmp_path):
    path = _write_official(tmp_path / "cine_sax.mat", "kspace_full", _random_kspace((2, 4, 4, 4)))
    with pytest.raises(MatFileError, match=r"cine_sax\.mat.*rank 4.*expected rank 5"):
        read_kspace(path)


def test_matlab_v5_file_is_refused(tmp_path):
    path = tmp_path / "cine_sax.mat"
    scipy.io.savemat(path, {"kspace_full": _random_kspace((4, 4, 2))})
    with pytest.raises(MatFileError, match=r"cine_sax\.mat.*MATLAB v5.*v7\.3"):
        read_kspace(path)


def test_other_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.mat"):
        read_kspace(tmp_path / "nope.mat")
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"not a mat file at all")
    with pytest.raises(MatFileError, match="not an HDF5"):
        read_kspace(junk)
    real = tmp_path / "real.mat"
    with h5py.File(real, "w") as f:
        f["kspace_full"] = np.ones((2, 1, 2, 4, 4))
    with pytest.raises(MatFileError, match="is real"):
        read_kspace(real)
    both = tmp_path / "both.mat"
    write_mat73(both, {"kspace_full": _random_kspace((1, 1, 1, 2, 2)), "kspace_sub04": _random_kspace((1, 1, 1, 2, 2))})
    with pytest.raises(MatFileError, match="several k-space keys"):
        find_kspace_key(both)
    bad_compound = tmp_path / "bad.mat"
    with h5py.File(bad_compound, "w") as f:
        f.create_dataset("kspace_full", data=np.zeros((1, 1, 1, 2, 2), dtype=[("re", "<f4"), ("im", "<f4")]))
    with pytest.raises(MatFileError, match="'real' and 'imag'"):
        read_array(bad_compound, "kspace_full")


def test_mask_file_errors(tmp_path):
    path = write_mat73(tmp_path / "cine_sax_mask.mat", {"mask08": np.full((4, 4), 2.0)})
    with pytest.raises(MatFileError, match="other than 0 and 1"):
        read_mask(path)
    path = write_mat73(tmp_path / "m2.mat", {"mask08": np.ones((2, 4, 4))})
    with pytest.raises(MatFileError, match=r"2-D \(ky, kx\)"):
        read_mask(path, acc=8)


def test_find_cine_files(tmp_path):
    for rel in ["MultiCoil/Cine/TrainingSet/FullSample/P001/cine_sax.mat",
                "SingleCoil/Cine/ValidationSet/AccFactor10/P002/cine_lax.mat",
                "SingleCoil/Cine/ValidationSet/AccFactor10/P002/cine_lax_mask.mat",
                "Other/Cine/TrainingSet/FullSample/P001/cine_sax.mat"]:
        _write_official(tmp_path / rel, "kspace_full", _random_kspace((1, 1, 1, 2, 2)))
    found = find_cine_files(tmp_path)
    assert [(f.coil_type, f.acc, f.view) for f in found] == [("MultiCoil", None, "sax"), ("SingleCoil", 10, "lax")]
    assert found[1].mask_path.name == "cine_lax_mask.mat"
