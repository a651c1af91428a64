"""Ring features against analytic rings (independent oracle: the parameters the rings were drawn with) and the
posterior summaries of the science outputs."""

from __future__ import annotations

import numpy as np
import pytest

from blackhole.ringfit import fit_ring, fit_rings
from blackhole.science import posterior_quantiles, science_outputs
from common.posterior import MethodPosterior


def analytic_ring(n: int = 64, fov: float = 128.0, d: float = 52.0, fwhm: float = 13.0, pa: float = 40.0,
                  a: float = 0.5, east: float = 3.0, north: float = -2.0) -> tuple[np.ndarray, float]:
    """Gaussian ring of diameter d and FWHM (uas), brightness 1 + a cos(theta - PA) (theta east of north),
    centred (east, north) uas from the image centre; ehtim orientation (row 0 north, column 0 east)."""
    ps = fov / n
    c = (n - 1) / 2
    yy, xx = np.mgrid[:n, :n]
    dn, de = (c - yy) * ps - north, (c - xx) * ps - east
    r, th = np.hypot(dn, de), np.arctan2(de, dn)
    img = np.exp(-0.5 * ((r - d / 2) / (fwhm / np.sqrt(8 * np.log(2)))) ** 2) * (1 + a * np.cos(th - np.radians(pa)))
    return img, ps


@pytest.mark.parametrize("d, fwhm, pa, a, east, north", [
    (52.0, 13.0, 40.0, 0.5, 3.0, -2.0),
    (40.0, 8.0, -120.0, 0.3, 0.0, 0.0),
    (60.0, 20.0, 170.0, 0.8, -5.0, 6.0),
    (48.0, 16.0, -90.0, 0.0, 1.0, 1.0),
])
def test_ring_fit_recovers_analytic_rings(d, fwhm, pa, a, east, north):
    img, ps = analytic_ring(d=d, fwhm=fwhm, pa=pa, a=a, east=east, north=north)
    f = fit_ring(img, ps)
    assert f.diameter == pytest.approx(d, abs=0.5)
    assert f.fractional_width == pytest.approx(fwhm / d, rel=0.05)
    assert f.asymmetry == pytest.approx(2 * a / np.pi, abs=0.01)  # contrast of the bright half of 1 + a cos
    if a > 0:
        assert abs((f.position_angle - pa + 180) % 360 - 180) < 1.0
    assert f.centre_east == pytest.approx(east, abs=0.5)
    assert f.centre_north == pytest.approx(north, abs=0.5)


def test_ring_fit_scale_invariant_and_dark_frame():
    img, ps = analytic_ring()
    a, b = fit_ring(img, ps), fit_ring(7.5 * img, ps)
    assert a.as_dict() == pytest.approx(b.as_dict())
    dark = fit_ring(np.zeros((32, 32)), 2.0)
    assert all(np.isnan(v) for v in dark.as_dict().values())
    stack = fit_rings(np.stack([img, img])[None], ps)
    assert stack["diameter"].shape == (1, 2)
    with pytest.raises(ValueError, match="expected an image"):
        fit_ring(np.zeros(5), 2.0)


def test_position_angle_quantiles_wrap_at_180():
    v = np.array([[179.0], [-179.0], [178.0], [-178.0], [180.0]])
    q = posterior_quantiles(v, "position_angle")
    assert abs(abs(q[1, 0]) - 180.0) < 1.0
    spread = (q[2, 0] - q[0, 0]) % 360.0
    assert spread < 5.0  # a narrow band across the cut, not ~360 degrees


def test_science_outputs_against_truth_rings():
    frames = [analytic_ring(d=d, pa=pa)[0] for d, pa in ((50.0, 0.0), (54.0, 90.0), (52.0, -90.0))]
    ps = analytic_ring()[1]
    truth = np.stack(frames) / np.stack(frames).sum(axis=(-2, -1), keepdims=True) * 2.0  # 2 Jy per frame
    samples = np.stack([truth, truth * 1.0, np.roll(truth, 1, axis=-1)])
    post = MethodPosterior("STeP", samples, {"chi2_cp": np.ones(3), "chi2_logca": np.ones(3)})
    summary, arrays = science_outputs([post], ps, np.array([12.5, 12.6, 12.7]), flux=np.full(3, 2.0),
                                      flux_sigma=np.full(3, 0.01), truth=truth)
    med = np.array(summary["methods"]["STeP"]["diameter"]["median"])
    assert med == pytest.approx([50.0, 54.0, 52.0], abs=0.6)
    assert np.array(summary["truth"]["diameter"]) == pytest.approx([50.0, 54.0, 52.0], abs=0.6)
    assert np.array(summary["methods"]["STeP"]["flux"]["median"]) == pytest.approx(2.0)
    assert arrays["STeP_diameter"][1].shape == (3, 3)
    assert arrays["STeP_position_angle_q"][1].shape == (3, 3)
