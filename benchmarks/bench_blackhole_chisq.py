"""Closure chi-square + gradient of one 64-frame movie: this package's torch model vs ehtim 1.3.2 (ttype='direct').

Each method runs in its own subprocess so its peak memory (resident memory above the process state after imports and
data loading, sampled every ms) is measured cleanly; times are medians of ``--repeats`` evaluations. Methods:

* ``ours``: ``ClosureLikelihood.chisq`` (closure phases + log closure amplitudes) + autograd gradient, float32 and
  float64 (separable DFT, never the dense matrix);
* ``dense``: the same chi-squares through a dense complex64 [rows, H*W] DFT matrix in torch (the reference
  implementation's formulation), if it fits in ``--dense-limit-gb``;
* ``ehtim``: per frame ``imager_utils.chisqdata`` (setup: Fourier matrices) then ``chisq`` + ``chisqgrad`` for
  'cphase' and 'logcamp', count-weighted over the frames as ``Obsdata.chisq`` does for movies.

Usage: ``PYTHONPATH=. python benchmarks/bench_blackhole_chisq.py --npix 256`` (prints a table and JSON);
``--agreement --npix 32`` prints the agreement with ehtim (closure values, chi-squares for a good and a poor fit).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GRAD_DIR = "."  # set by --grad-dir: where workers leave gradients for the driver to compare


def _current_rss_gb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 1024**3


class PeakRss:
    """Peak resident memory above the level at entry, sampled every millisecond by a thread (Linux /proc)."""

    def __enter__(self):
        self.base = self.peak = _current_rss_gb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _current_rss_gb())
            time.sleep(0.001)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _current_rss_gb())
        self.extra_gb = self.peak - self.base

    def stop(self) -> float:
        self.__exit__(None, None, None)
        return self.extra_gb


def _setup(npix: int, seed: int = 0):
    from blackhole.array import make_observation
    from blackhole.measurements import closure_data, vis_table_from_obs
    from blackhole.simulate import simulate_observation
    from blackhole.synthetic import MovieGeometry, generate_movies

    geom = MovieGeometry(frames=64, npix=npix)
    obs0 = make_observation()
    truth = generate_movies(1, geom, seed=seed)[0][0, :, 0].astype(np.float64)
    obs = simulate_observation(truth, geom.psize_rad, obs0, seed=seed)
    model = generate_movies(1, geom, seed=seed + 1)[0][0, :, 0].astype(np.float64)  # a different movie: poor fit
    return obs, closure_data(vis_table_from_obs(obs)), model, geom.psize_rad


def run_ours(npix: int, repeats: int, dtype: str) -> dict:
    import torch

    from blackhole.likelihood import ClosureLikelihood

    torch.set_num_threads(1)
    obs, data, model, psize = _setup(npix)
    mem = PeakRss().__enter__()
    t0 = time.perf_counter()
    lik = ClosureLikelihood(data, npix, npix, psize)
    setup = time.perf_counter() - t0
    dt = getattr(torch, dtype)
    x = torch.as_tensor(model, dtype=dt)[None, :, None]
    times, chi = [], None
    for _ in range(repeats):
        xr = x.clone().requires_grad_(True)
        t0 = time.perf_counter()
        chi = lik.chisq(xr)
        (chi["cphase"] + chi["logcamp"]).sum().backward()
        times.append(time.perf_counter() - t0)
    grad = xr.grad[0, :, 0].double().numpy()
    np.save(Path(GRAD_DIR) / f"grad_ours_{dtype}.npy", grad)
    return {"method": f"ours_{dtype}", "setup_s": setup, "time_s": float(np.median(times)),
            "peak_extra_gb": mem.stop(), "cphase": chi["cphase"].item(), "logcamp": chi["logcamp"].item()}


def run_dense(npix: int, repeats: int, limit_gb: float) -> dict:
    import torch

    from blackhole.forward import pixel_coordinates, triangle_pulse
    from blackhole.likelihood import chisq_cphase, chisq_logcamp

    torch.set_num_threads(1)
    obs, data, model, psize = _setup(npix)
    tab = data.table
    m = len(tab.u)
    need = m * npix * npix * 8 / 1024**3
    if need > limit_gb:
        return {"method": "dense_complex64", "skipped": f"needs {need:.2f} GB > limit {limit_gb} GB"}
    mem = PeakRss().__enter__()
    t0 = time.perf_counter()
    xs, ys = pixel_coordinates(npix, psize), pixel_coordinates(npix, psize)
    a = torch.empty((m, npix * npix), dtype=torch.complex64)
    for lo in range(0, m, 64):  # rows in blocks to keep float64 temporaries small
        u, v = tab.u[lo:lo + 64], tab.v[lo:lo + 64]
        ph = 2 * np.pi * (v[:, None, None] * ys[None, :, None] + u[:, None, None] * xs[None, None, :])
        pulse = triangle_pulse(u, psize) * triangle_pulse(v, psize)
        a[lo:lo + 64] = torch.as_tensor((pulse[:, None, None] * np.exp(1j * ph)).reshape(len(u), -1))
    frame = torch.as_tensor(tab.frame)
    cs = data.closures
    setup = time.perf_counter() - t0
    x = torch.as_tensor(model, dtype=torch.float32)
    f32 = torch.float32
    times, chi = [], None
    for _ in range(repeats):
        xr = x.clone().requires_grad_(True)
        t0 = time.perf_counter()
        vis = (a * xr.reshape(64, -1)[frame].to(torch.complex64)).sum(-1)
        ph = torch.angle(vis)
        cp = (ph[torch.as_tensor(cs.cp_rows)] * torch.as_tensor(cs.cp_sign, dtype=f32)).sum(-1)
        la = torch.log(vis.abs())[torch.as_tensor(cs.lca_rows)] @ torch.tensor([1.0, 1.0, -1.0, -1.0])
        chi = {"cphase": chisq_cphase(cp, torch.as_tensor(data.cphase, dtype=f32),
                                      torch.as_tensor(data.cphase_sigma, dtype=f32)),
               "logcamp": chisq_logcamp(la, torch.as_tensor(data.logcamp, dtype=f32),
                                        torch.as_tensor(data.logcamp_sigma, dtype=f32))}
        (chi["cphase"] + chi["logcamp"]).backward()
        times.append(time.perf_counter() - t0)
    return {"method": "dense_complex64", "setup_s": setup, "time_s": float(np.median(times)),
            "peak_extra_gb": mem.stop(), "cphase": chi["cphase"].item(), "logcamp": chi["logcamp"].item()}


def run_ehtim(npix: int, repeats: int) -> dict:
    from blackhole.ehtim_compat import TTYPE, ehtim_fixes
    from blackhole.fits_io import to_ehtim_movie

    obs, data, model, psize = _setup(npix)
    mem = PeakRss().__enter__()
    with ehtim_fixes() as eh:
        iu = eh.imaging.imager_utils
        mov = to_ehtim_movie(model, psize, np.unique(obs.data["time"]))
        t0 = time.perf_counter()
        frames = obs.split_obs()
        prepared = []
        for fo in frames:
            im = mov.get_image(fo.data[0]["time"])
            per = {d: iu.chisqdata(fo, im, [], d, pol="I", ttype=TTYPE) for d in ("cphase", "logcamp")}
            prepared.append((im.imvec, per))
        setup = time.perf_counter() - t0
        times, tot, grad = [], None, None
        for _ in range(repeats):
            t0 = time.perf_counter()
            tot, grad = {}, []
            for d in ("cphase", "logcamp"):
                nums = [len(p[d][0]) for _, p in prepared]
                chis = [iu.chisq(v, p[d][2], p[d][0], p[d][1], d, ttype=TTYPE) for v, p in prepared]
                grads = [iu.chisqgrad(v, p[d][2], p[d][0], p[d][1], d, ttype=TTYPE) for v, p in prepared]
                tot[d] = float(np.dot(nums, chis) / np.sum(nums))
                grad.append(np.stack([g * n / np.sum(nums) for g, n in zip(grads, nums, strict=True)]))
            times.append(time.perf_counter() - t0)
    np.save(Path(GRAD_DIR) / "grad_ehtim.npy", (grad[0] + grad[1]).reshape(64, npix, npix))
    return {"method": "ehtim_direct", "setup_s": setup, "time_s": float(np.median(times)),
            "peak_extra_gb": mem.stop(), "cphase": tot["cphase"], "logcamp": tot["logcamp"]}


def run_agreement(npix: int) -> dict:
    """Closure quantities and chi-squares vs ehtim on ehtim-simulated data (thermal noise) of a synthetic movie."""
    import torch

    from blackhole.array import make_observation
    from blackhole.ehtim_compat import TTYPE, ehtim_fixes
    from blackhole.fits_io import to_ehtim_movie
    from blackhole.forward import ClosureForward
    from blackhole.likelihood import ClosureLikelihood
    from blackhole.measurements import closure_data, vis_table_from_obs
    from blackhole.synthetic import MovieGeometry, generate_movies

    geom = MovieGeometry(frames=64, npix=npix)
    obs0 = make_observation()
    times = np.unique(obs0.data["time"])
    truth, poor = (generate_movies(1, geom, seed=s)[0][0, :, 0].astype(np.float64) for s in (0, 1))
    mov = to_ehtim_movie(truth, geom.psize_rad, times)
    with ehtim_fixes():
        obs = mov.observe_same(obs0, ttype=TTYPE, add_th_noise=True, ampcal=True, phasecal=True, seed=4)
        clean = mov.observe_same_nonoise(obs0, ttype=TTYPE)
        ref = {"measured": (obs.c_phases(count="min", mode="all", ang_unit="deg"),
                            obs.c_amplitudes(count="min", mode="all", ctype="logcamp", debias=True)),
               "model": (clean.c_phases(count="min", mode="all", ang_unit="deg"),
                         clean.c_amplitudes(count="min", mode="all", ctype="logcamp", debias=False))}
    data = closure_data(vis_table_from_obs(obs))
    cs = data.closures
    out = ClosureForward(data, npix, npix, geom.psize_rad)(torch.as_tensor(truth)[None, :, None])
    ours = {"measured": (np.degrees(data.cphase), data.logcamp),
            "model": (np.degrees(out.cphase[0].numpy()), out.logcamp[0].numpy())}

    def key(t, s):
        return (round(float(t), 6), *map(str, s))

    res: dict = {"npix": npix}
    for kind in ("measured", "model"):
        cp = {key(r["time"], (r["t1"], r["t2"], r["t3"])): r["cphase"] for r in ref[kind][0]}
        ca = {key(r["time"], (r["t1"], r["t2"], r["t3"], r["t4"])): r["camp"] for r in ref[kind][1]}
        dcp = np.array([v - cp[key(t, s)] for v, t, s in zip(ours[kind][0], cs.cp_time, cs.cp_stations, strict=True)])
        dca = np.array([v - ca[key(t, s)] for v, t, s in zip(ours[kind][1], cs.lca_time, cs.lca_stations,
                                                              strict=True)])
        res[f"{kind}_cphase_max_abs_diff_deg"] = float(np.abs((dcp + 180) % 360 - 180).max())
        res[f"{kind}_logcamp_max_abs_diff"] = float(np.abs(dca).max())
    lik = ClosureLikelihood(data, npix, npix, geom.psize_rad)
    for name, m in (("truth", truth), ("other_movie", poor)):
        chi = lik.chisq(torch.as_tensor(m)[None, :, None], with_vis=True)
        with ehtim_fixes():
            e = {d: obs.chisq(to_ehtim_movie(m, geom.psize_rad, times), dtype=d, ttype=TTYPE)
                 for d in ("cphase", "logcamp", "vis", "amp")}
        res[f"chisq_{name}"] = {d: {"ehtim": e[d], "rel_diff": abs(chi[d].item() / e[d] - 1)} for d in e}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--npix", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--methods", default="ours_float32,ours_float64,dense,ehtim")
    ap.add_argument("--dense-limit-gb", type=float, default=2.0)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--grad-dir", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--agreement", action="store_true",
                    help="instead of timing: closure quantities and chi-squares vs ehtim (float64), as JSON")
    args = ap.parse_args()
    if args.agreement:
        print(json.dumps(run_agreement(args.npix), indent=1))
        return
    if args.worker:
        global GRAD_DIR
        GRAD_DIR = args.grad_dir
        if args.worker.startswith("ours_"):
            res = run_ours(args.npix, args.repeats, args.worker.split("_")[1])
        elif args.worker == "dense":
            res = run_dense(args.npix, args.repeats, args.dense_limit_gb)
        else:
            res = run_ehtim(args.npix, args.repeats)
        print("RESULT " + json.dumps(res))
        return
    from blackhole.likelihood import dense_matrix_bytes

    results = []
    grad_dir = tempfile.mkdtemp(prefix="bench_bh_")
    for m in args.methods.split(","):
        cmd = [sys.executable, __file__, "--worker", m, "--npix", str(args.npix), "--repeats", str(args.repeats),
               "--dense-limit-gb", str(args.dense_limit_gb), "--grad-dir", grad_dir]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        line = [s for s in out.stdout.splitlines() if s.startswith("RESULT ")]
        if out.returncode != 0 or not line:
            raise RuntimeError(f"benchmark worker {m} failed:\n{out.stderr[-3000:]}")
        results.append(json.loads(line[0][7:]))
    ref = next((r for r in results if r["method"] == "ehtim_direct"), None)
    dense_gb = None
    for r in results:
        if ref and "time_s" in r:
            r["speedup_vs_ehtim"] = ref["time_s"] / r["time_s"]
            r["memory_ratio_vs_ehtim"] = r["peak_extra_gb"] / ref["peak_extra_gb"] if ref["peak_extra_gb"] else None
            r["chisq_rel_diff_vs_ehtim"] = max(abs(r[k] / ref[k] - 1) for k in ("cphase", "logcamp"))
    if ref and (Path(grad_dir) / "grad_ehtim.npy").exists():
        ge = np.load(Path(grad_dir) / "grad_ehtim.npy")
        for r in results:
            p = Path(grad_dir) / f"grad_{r['method']}.npy"
            if p.exists():
                r["grad_rel_diff_vs_ehtim"] = float(np.linalg.norm(np.load(p) - ge) / np.linalg.norm(ge))
    shutil.rmtree(grad_dir)
    n_cp, n_lca, n_vis = 960, 896, 1344
    dense_gb = {"frames_x_baselines_complex128_gb": dense_matrix_bytes(n_vis, args.npix, args.npix) / 1e9,
                "ehtim_closure_matrices_complex128_gb":
                    dense_matrix_bytes(3 * n_cp + 4 * n_lca, args.npix, args.npix) / 1e9}
    print(f"{'method':18s} {'setup s':>8s} {'time s':>8s} {'peak GB':>8s} {'speedup':>8s} {'mem ratio':>9s}")
    for r in results:
        if "time_s" not in r:
            print(f"{r['method']:18s} skipped: {r['skipped']}")
            continue
        print(f"{r['method']:18s} {r['setup_s']:8.3f} {r['time_s']:8.3f} {r['peak_extra_gb']:8.3f} "
              f"{r.get('speedup_vs_ehtim', float('nan')):8.1f} {r.get('memory_ratio_vs_ehtim') or float('nan'):9.4f}")
    print(json.dumps({"npix": args.npix, "results": results, "dense_matrix_memory": dense_gb}, indent=1))


if __name__ == "__main__":
    main()
