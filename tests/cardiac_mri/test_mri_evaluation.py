import h5py
import numpy as np
import pytest
import scipy.io
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from cardiac_mri.data import parse_cine_path
from cardiac_mri.evaluation import (
    evaluate_dirs,
    format_table,
    image_metrics,
    matlab_round,
    ranking_shape,
    ranking_slices,
    ranking_subset,
    read_ranking,
    rss_images,
    summarize,
    write_submission,
)
from cardiac_mri.matio import write_mat73
from tests.cardiac_mri.official_scorer import official_score


def test_matlab_round_half_away_from_zero():
    assert [matlab_round(v) for v in (0.5, 1.5, 2.5, -0.5, -2.5, 2.4999, 102 / 3)] == [1, 2, 3, -1, -3, 2, 34]
    assert round(2.5) == 2  # why the helper exists


def test_official_metrics_against_scikit_image():
    rng = np.random.default_rng(0)
    gt = rng.random((3, 2, 40, 30)) * 5
    pred = gt + 0.3 * rng.standard_normal(gt.shape)
    pred = np.abs(pred)
    m = image_metrics(pred, gt)
    for t in range(3):
        for s in range(2):
            g, p = gt[t, s] / gt[t, s].max(), pred[t, s] / pred[t, s].max()
            assert m["psnr"][t, s] == pytest.approx(peak_signal_noise_ratio(g, p, data_range=1.0), rel=1e-10)
            assert m["ssim"][t, s] == pytest.approx(structural_similarity(g, p, data_range=1.0), rel=1e-8)
            assert m["nmse"][t, s] == pytest.approx(np.linalg.norm(g - p) ** 2 / np.linalg.norm(g) ** 2, rel=1e-10)
    with pytest.raises(ValueError, match="all zero"):
        image_metrics(np.zeros((1, 8, 8)), np.ones((1, 8, 8)))


@pytest.mark.parametrize("sz, slices", [(3, (0, 1)), (10, (3, 4)), (9, (3, 4)), (4, (0, 1))])
def test_ranking_subset_follows_run4ranking(sz, slices):
    ny, nx = 204, 512
    img = np.random.default_rng(1).standard_normal((12, sz, ny, nx)) + 0j
    sub = ranking_subset(img)
    cy, cx = matlab_round(ny / 2), matlab_round(nx / 3)  # 102, 171
    assert sub.shape == (3, 2, cy, cx) and sub.dtype == np.float32
    # MATLAB crop: 1-based start floor(n/2) + 1 + ceil(-m/2)  ->  0-based floor(n/2) - floor(m/2)
    y0, x0 = ny // 2 + int(np.ceil(-cy / 2)), nx // 2 + int(np.ceil(-cx / 2))
    expect = np.abs(img[:3][:, list(slices), y0 : y0 + cy, x0 : x0 + cx]).astype(np.float32)
    np.testing.assert_array_equal(sub, expect)


@pytest.mark.parametrize("sz", [1, 2])
def test_ranking_subset_keeps_every_slice_below_three(sz):
    """run4Ranking (challenge 2024, and runRecon.m): ``if sz < 3, sliceToUse = 1:sz``."""
    img = np.random.default_rng(4).standard_normal((12, sz, 20, 30)) + 1j
    sub = ranking_subset(img)
    assert sub.shape == (3, sz, 10, 10) == ranking_shape(img.shape)
    np.testing.assert_array_equal(sub, np.abs(img[:3, :, 5:15, 10:20]).astype(np.float32))
    assert ranking_slices(sz) == list(range(sz)) and ranking_slices(5) == [1, 2]


def test_ranking_needs_three_frames():
    with pytest.raises(ValueError, match=">= 3 frames"):
        ranking_subset(np.ones((2, 3, 20, 20)))


def test_submission_formats(tmp_path):
    arr = np.random.default_rng(2).random((3, 2, 10, 7)).astype(np.float32)
    p5 = write_submission(tmp_path / "MultiCoil/Cine/ValidationSet/AccFactor04/P001/cine_sax.mat", arr)
    assert not h5py.is_hdf5(p5)  # v5 by default: what the official Python scorer reads
    assert scipy.io.loadmat(p5)["img4ranking"].shape == (7, 10, 2, 3)  # MATLAB order (sx/3, sy/2, 2, 3)
    np.testing.assert_array_equal(read_ranking(p5), arr)
    p = write_submission(tmp_path / "v73.mat", arr, fmt="v7.3")
    with h5py.File(p, "r") as f:  # readable by plain h5py, single precision
        assert f["img4ranking"].dtype == np.float32 and f["img4ranking"].shape == (3, 2, 10, 7)
    np.testing.assert_array_equal(read_ranking(p), arr)
    with pytest.raises(ValueError, match="non-finite"):
        write_submission(tmp_path / "nan.mat", np.full((3, 1, 4, 4), np.nan))
    assert not (tmp_path / "nan.mat").exists()


@pytest.mark.parametrize("slices", [1, 2, 3])
def test_official_scorer_logic_on_our_files(tmp_path, slices):
    """Our writer's files through the official scorer's own logic (tests/cardiac_mri/official_scorer.py): v5 scores
    exactly as ``evaluate_dirs``; v7.3 is dropped by the official scorer (reversed axes) but read right by ours."""
    rng = np.random.default_rng(5)
    k = (rng.standard_normal((12, slices, 4, 24, 36)) + 1j * rng.standard_normal((12, slices, 4, 24, 36)))
    truth = ranking_subset(rss_images(k.astype(np.complex64)))
    noisy = np.abs(truth + 0.1 * truth.max() * rng.standard_normal(truth.shape)).astype(np.float32)
    rel = "MultiCoil/Cine/ValidationSet/AccFactor08/P001/cine_sax.mat"
    gt_path = write_submission(tmp_path / "gt" / rel, truth)  # the challenge's ground truth: img4ranking, v5
    scores = {}
    for fmt in ("v5", "v7.3"):
        pred_path = write_submission(tmp_path / fmt / rel, noisy, fmt=fmt)
        ours = evaluate_dirs(tmp_path / fmt, tmp_path / "gt")[0]
        scores[fmt] = (ours, official_score([(gt_path, pred_path)]))
    ours, official = scores["v5"]
    assert official["kept"] == 1 and noisy.shape[1] == min(slices, 2)
    # the official scorer normalises in float32 (the file's precision), ours in float64
    assert ours.psnr == pytest.approx(official["psnr"], abs=1e-6)
    assert ours.ssim == pytest.approx(official["ssim"], abs=1e-6)
    assert ours.nmse == pytest.approx(official["nmse"], rel=1e-5)
    ours73, official73 = scores["v7.3"]
    assert official73["kept"] == 0 and np.isnan(official73["psnr"])  # what the issue reported
    assert (ours73.psnr, ours73.ssim, ours73.nmse) == (ours.psnr, ours.ssim, ours.nmse)


def test_evaluate_dirs_perfect_and_noisy(tmp_path):
    rng = np.random.default_rng(3)
    k = (rng.standard_normal((12, 3, 4, 24, 36)) + 1j * rng.standard_normal((12, 3, 4, 24, 36))).astype(np.complex64)
    gt_root, pred_root = tmp_path / "gt", tmp_path / "pred"
    write_mat73(gt_root / "MultiCoil/Cine/ValidationSet/FullSample/P001/cine_lax.mat", {"kspace_full": k})
    truth = ranking_subset(rss_images(k))
    rel = "MultiCoil/Cine/ValidationSet/AccFactor08/P001/cine_lax.mat"
    write_submission(pred_root / rel, truth)
    scores = evaluate_dirs(pred_root, gt_root)
    assert len(scores) == 1 and scores[0].psnr == np.inf and scores[0].nmse == 0 and scores[0].ssim == pytest.approx(1)
    noisy = truth + 0.05 * truth.max() * rng.random(truth.shape).astype(np.float32)
    write_submission(pred_root / rel, noisy)
    s = evaluate_dirs(pred_root, gt_root)[0]
    expect = image_metrics(noisy, truth)
    assert s.psnr == pytest.approx(expect["psnr"].mean()) and 10 < s.psnr < 60
    rows = summarize([s])
    assert rows[0]["acceleration"] == "AccFactor08" and rows[0]["view"] == "lax" and rows[0]["files"] == 1
    assert "AccFactor08" in format_table(rows)
    assert parse_cine_path(pred_root / rel).acc == 8
    with pytest.raises(FileNotFoundError, match="no ground truth"):
        evaluate_dirs(pred_root, tmp_path / "elsewhere")
    write_submission(pred_root / rel, truth[:, :1])  # wrong shape: one line naming the file and both shapes
    with pytest.raises(ValueError, match=r"cine_lax.mat: img4ranking has shape .* \(3, 1, 12, 12\), the ground truth"):
        evaluate_dirs(pred_root, gt_root)
