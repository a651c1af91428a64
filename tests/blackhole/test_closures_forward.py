"""Closure sets, forward model and chi-squares against ehtim 1.3.2 on the same data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from blackhole.closures import minimal_quadrangles, minimal_triangles
from blackhole.ehtim_compat import TTYPE, ehtim_fixes
from blackhole.fits_io import to_ehtim_movie
from blackhole.forward import ClosureForward, VisibilityModel
from blackhole.likelihood import ClosureLikelihood, align_flux
from blackhole.measurements import closure_data, vis_table_from_obs
from blackhole.simulate import Corruption, corrupt

from .conftest import NPIX, ring_movie


def _key(t, stations):
    return (round(float(t), 6), *[str(s) for s in stations])


def test_track_and_closure_counts(obs0, closure_noisy):
    tab = vis_table_from_obs(obs0)
    assert tab.n_frames == 64
    assert set(tab.stations) - set(np.concatenate([tab.t1, tab.t2])) == {"PV"}  # PV never rises
    assert tab.stations[0] == "ALMA"  # lowest SEFD first: the closure reference
    cs = closure_noisy.closures
    assert np.all(np.bincount(cs.cp_frame, minlength=64) == 15)
    assert np.all(np.bincount(cs.lca_frame, minlength=64) == 14)
    assert len(closure_noisy.cphase) == 960 and len(closure_noisy.logcamp) == 896
    for p in range(3, 9):
        names = [f"S{i}" for i in range(p)]
        assert len(minimal_triangles(names)) == (p - 1) * (p - 2) // 2
        assert len(minimal_quadrangles(names)) == p * (p - 3) // 2


def test_measured_closures_equal_ehtim(obs_noisy, closure_noisy):
    with ehtim_fixes():
        cp = obs_noisy.c_phases(count="min", mode="all", ang_unit="deg")
        ca = obs_noisy.c_amplitudes(count="min", mode="all", ctype="logcamp", debias=True)
    ref_cp = {_key(r["time"], (r["t1"], r["t2"], r["t3"])): (r["cphase"], r["sigmacp"]) for r in cp}
    ref_ca = {_key(r["time"], (r["t1"], r["t2"], r["t3"], r["t4"])): (r["camp"], r["sigmaca"]) for r in ca}
    cs = closure_noisy.closures
    assert len(ref_cp) == len(closure_noisy.cphase) and len(ref_ca) == len(closure_noisy.logcamp)
    ours_cp = {_key(t, s): (v, e) for t, s, v, e in zip(cs.cp_time, cs.cp_stations, np.degrees(closure_noisy.cphase),
                                                         np.degrees(closure_noisy.cphase_sigma), strict=True)}
    assert ours_cp.keys() == ref_cp.keys()
    d = np.array([ours_cp[k][0] - ref_cp[k][0] for k in ref_cp])
    assert np.abs((d + 180) % 360 - 180).max() < 1e-4
    assert max(abs(ours_cp[k][1] - ref_cp[k][1]) for k in ref_cp) < 1e-4
    ours_ca = {_key(t, s): (v, e) for t, s, v, e in zip(cs.lca_time, cs.lca_stations, closure_noisy.logcamp,
                                                         closure_noisy.logcamp_sigma, strict=True)}
    assert ours_ca.keys() == ref_ca.keys()
    assert max(abs(ours_ca[k][0] - ref_ca[k][0]) for k in ref_ca) < 1e-4
    assert max(abs(ours_ca[k][1] - ref_ca[k][1]) for k in ref_ca) < 1e-4


def test_model_closures_equal_ehtim_noise_free(obs0, truth, times, psize, closure_noisy):
    """Our torch closure phases / log closure amplitudes of a movie vs ehtim's on its noise-free observation."""
    mov = to_ehtim_movie(truth, psize, times)
    with ehtim_fixes():
        obs = mov.observe_same_nonoise(obs0, ttype=TTYPE)
        cp = obs.c_phases(count="min", mode="all", ang_unit="rad")
        ca = obs.c_amplitudes(count="min", mode="all", ctype="logcamp", debias=False)
    fwd = ClosureForward(closure_noisy, NPIX, NPIX, psize)
    out = fwd(torch.as_tensor(truth)[None, :, None])
    cs = closure_noisy.closures
    ref_cp = {_key(r["time"], (r["t1"], r["t2"], r["t3"])): r["cphase"] for r in cp}
    ref_ca = {_key(r["time"], (r["t1"], r["t2"], r["t3"], r["t4"])): r["camp"] for r in ca}
    d = np.array([out.cphase[0, i].item() - ref_cp[_key(t, s)] for i, (t, s) in
                  enumerate(zip(cs.cp_time, cs.cp_stations, strict=True))])
    assert np.abs(np.angle(np.exp(1j * d))).max() < 1e-6
    d = np.array([out.logcamp[0, i].item() - ref_ca[_key(t, s)] for i, (t, s) in
                  enumerate(zip(cs.lca_time, cs.lca_stations, strict=True))])
    assert np.abs(d).max() < 1e-6
    assert torch.allclose(out.flux[0], torch.as_tensor(truth.sum(axis=(1, 2))))


def test_separable_dft_equals_ehtim_ftmatrix(eh, psize):
    """Non-square image, several frames: separable DFT == ehtim's dense ftmatrix (triangle pulse)."""
    rng = np.random.default_rng(0)
    h, w, t = 12, 20, 3
    u, v = rng.normal(0, 4e9, 10), rng.normal(0, 4e9, 10)
    frame = np.array([0, 0, 1, 2, 2, 2, 1, 0, 2, 1])
    x = rng.random((t, h, w))
    re, im = VisibilityModel(u, v, frame, t, h, w, psize)(torch.as_tensor(x)[None])
    model = VisibilityModel(u, v, frame, t, h, w, psize)
    ours = (re[0] + 1j * im[0]).numpy()[model.slot.numpy()]
    a = eh.observing.obs_helpers.ftmatrix(psize, w, h, np.stack([u, v], 1))
    ref = np.array([a[m] @ x[frame[m]].ravel() for m in range(10)])
    assert np.abs(ours - ref).max() < 1e-9 * np.abs(ref).max()


@pytest.mark.parametrize("fit", ["good", "poor"])
def test_chisq_equals_ehtim(obs_noisy, closure_noisy, truth, times, psize, fit):
    movie = truth if fit == "good" else ring_movie(len(times), shift=-0.5, diameter=40.0)
    lik = ClosureLikelihood(closure_noisy, NPIX, NPIX, psize)
    ours = lik.chisq(torch.as_tensor(movie)[None, :, None], with_vis=True)
    mov = to_ehtim_movie(movie, psize, times)
    with ehtim_fixes():
        ref = {d: obs_noisy.chisq(mov, dtype=d, ttype=TTYPE) for d in ("cphase", "logcamp", "vis", "amp")}
    for d in ("cphase", "logcamp", "vis", "amp"):
        assert abs(ours[d].item() / ref[d] - 1) < 0.01, (d, ours[d].item(), ref[d])
    if fit == "good":
        assert 0.7 < ref["cphase"] < 1.4 and 0.7 < ref["logcamp"] < 1.4
    else:
        assert ref["cphase"] > 5 and ref["logcamp"] > 5


def test_likelihood_gradient_matches_finite_differences(closure_noisy, truth, psize):
    lik = ClosureLikelihood(closure_noisy, NPIX, NPIX, psize, tau=1.0, w_vis=0.5, w_amp=0.5)
    rng = np.random.default_rng(1)
    x = torch.as_tensor(truth * (1 + 0.3 * rng.random(truth.shape)))[None, :, None].requires_grad_(True)
    loss = lik.data_loss(x).sum()
    (g,) = torch.autograd.grad(loss, x)
    for _ in range(3):
        d = torch.as_tensor(rng.standard_normal(x.shape)) * 1e-4
        eps = 1e-3
        with torch.no_grad():
            fd = (lik.data_loss(x + eps * d) - lik.data_loss(x - eps * d)).item() / (2 * eps)
        assert abs(fd - (g * d).sum().item()) < 1e-5 * max(1.0, abs(fd)), fd
    # log-likelihood = -L / tau^2 (reference temperature by default)
    lik2 = ClosureLikelihood(closure_noisy, NPIX, NPIX, psize)
    lik1 = ClosureLikelihood(closure_noisy, NPIX, NPIX, psize, tau=1.0)
    assert torch.allclose(lik2(x.detach()), -lik1.data_loss(x.detach()) / 0.021**2)


def test_closures_invariant_to_station_phases_and_gains(obs0, truth, psize):
    tab = vis_table_from_obs(obs0)
    from blackhole.simulate import ideal_visibilities

    ideal = ideal_visibilities(truth, psize, tab.u, tab.v, tab.frame)
    clean = closure_data(_with(tab, ideal, tab.sigma), debias=False)
    for cfg, check in [(Corruption(thermal_noise=False, gains=False, phases=True), "cphase"),
                       (Corruption(thermal_noise=False, gains=True, phases=False), "logcamp")]:
        vis, sig = corrupt(ideal, tab.sigma, tab.time, tab.t1, tab.t2, seed=7, cfg=cfg)
        assert np.abs(vis - ideal).max() > 1e-3 * np.abs(ideal).max()  # the corruption did something
        dirty = closure_data(_with(tab, vis, sig), debias=False)
        diff = getattr(dirty, check) - getattr(clean, check)
        if check == "cphase":
            diff = np.angle(np.exp(1j * diff))
        assert np.abs(diff).max() < 1e-6


def _with(tab, vis, sigma):
    from dataclasses import replace

    return replace(tab, vis=vis, sigma=sigma)


def test_forward_dtype_shape_errors_and_flux_alignment(closure_noisy, truth, psize):
    lik = ClosureLikelihood(closure_noisy, NPIX, NPIX, psize)
    x32 = torch.as_tensor(truth, dtype=torch.float32)[None, :, None].repeat(2, 1, 1, 1, 1)
    out = lik(x32)
    assert out.shape == (2,) and out.dtype == torch.float32
    with pytest.raises(ValueError, match=r"\[B, 64, 1, 32, 32\]"):
        lik(x32[:, :10])
    flux = torch.full((64,), 3.0, dtype=torch.float64)
    flux[5] = float("nan")
    y = align_flux(torch.as_tensor(truth)[None, :, None], flux)
    tot = y.sum(dim=(2, 3, 4))[0]
    assert torch.allclose(tot[torch.arange(64) != 5], torch.tensor(3.0, dtype=torch.float64))
    assert torch.isclose(tot[5], torch.tensor(2.0, dtype=torch.float64))  # NaN flux: frame left as is
    chi_a, chi_b = lik.chisq(torch.as_tensor(truth)[None, :, None]), lik.chisq(y)
    assert torch.allclose(chi_a["cphase"], chi_b["cphase"]) and torch.allclose(chi_a["logcamp"], chi_b["logcamp"])


def test_gradient_finite_with_uneven_frames(obs_noisy, truth, psize):
    """Frames with different baseline counts (padded [T, K] slots) give finite gradients equal to finite differences."""
    d = np.asarray(obs_noisy.data)
    drop = ((d["t1"] == "SPT") | (d["t2"] == "SPT")) & (np.searchsorted(np.unique(d["time"]), d["time"]) % 3 == 0)
    obs = obs_noisy.copy()
    obs.data = d[~drop]
    data = closure_data(vis_table_from_obs(obs))
    assert len(data.cphase) < 960
    lik = ClosureLikelihood(data, NPIX, NPIX, psize, tau=1.0, w_vis=0.5, w_amp=0.5)
    x = torch.as_tensor(truth)[None, :, None].requires_grad_(True)
    (g,) = torch.autograd.grad(lik.data_loss(x).sum(), x)
    assert torch.isfinite(g).all()
    dvec = torch.as_tensor(np.random.default_rng(2).standard_normal(x.shape)) * 1e-4
    with torch.no_grad():
        fd = (lik.data_loss(x + 1e-3 * dvec) - lik.data_loss(x - 1e-3 * dvec)).item() / 2e-3
    assert abs(fd - (g * dvec).sum().item()) < 1e-5 * max(1.0, abs(fd))


def test_whitened_residuals_give_the_closure_chisq(closure_noisy, truth, psize):
    """||residuals||^2 = N_cp chi2_cp + N_lca chi2_logca (ehtim's cphase form 2 (1 - cos d) / sigma^2), and its
    Jacobian (used by the pixel Gauss-Newton step) matches finite differences."""
    lik = ClosureLikelihood(closure_noisy, NPIX, NPIX, psize, flux_beta=0.0)
    x = torch.as_tensor(ring_movie(truth.shape[0], shift=-0.3, diameter=44.0))[None, :, None]
    rho = lik.residuals(x)
    chi = lik.chisq(x)
    n_cp, n_lca = lik.cphase.numel(), lik.logcamp.numel()
    assert rho.shape == (1, n_cp + n_lca)
    assert float((rho**2).sum()) == pytest.approx(float(n_cp * chi["cphase"] + n_lca * chi["logcamp"]), rel=1e-10)
    assert float(-(rho**2).sum() / 2) == pytest.approx(float(lik.data_loss(x)) / -2.0, rel=1e-10)
    d = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * x.max() * 1e-3
    jd = torch.func.jvp(lik.residuals, (x,), (d,))[1]
    fd = (lik.residuals(x + 1e-3 * d) - lik.residuals(x - 1e-3 * d)) / 2e-3
    assert torch.allclose(jd, fd, rtol=1e-4, atol=1e-6 * float(jd.abs().max()))
