"""Resumable sampling: one sample at a time equals the batched call for every method, and the sample store keeps,
returns and guards the samples of one run (issue 15)."""

from __future__ import annotations

import json

import pytest
import torch

from common.methods import METHODS
from common.methods.step import daps_samples
from common.recon.errors import DemoError
from common.recon.sample_store import MemoryStore, SampleStore, run_identity, work_folder
from common.sampling import DAPSConfig
from tests.common.test_methods import dense_model, tiny_priors, toy_task

pytestmark = pytest.mark.usefixtures("one_torch_thread")
QUICK_DAPS = DAPSConfig(annealing_steps=2, sigma_max=5.0, ode_steps=2, data_step="linear-gaussian", cg_iters=5,
                        radius_floor=0.01, perturb="both")


def _settings(name: str):
    method = METHODS[name]
    return QUICK_DAPS if method.uses_daps else method.presets("quick", "mri")


@pytest.mark.parametrize("name", list(METHODS))
def test_one_sample_at_a_time_equals_the_batched_call(name: str):
    """``sample(..., 1, seed + k)`` is sample k of ``sample(..., n, seed)`` bit for bit (what the resumable,
    split-across-processes driver relies on), at a quick setting with a latent prior and a linear-Gaussian task."""
    priors, task = tiny_priors(True), toy_task(linear=dense_model()[0])
    method, settings = METHODS[name], _settings(name)
    batched = method.sample(task, priors, settings, 3, 5)
    assert batched.shape[0] == 3
    for k in range(3):
        assert torch.equal(method.sample(task, priors, settings, 1, 5 + k)[0], batched[k]), f"{name} sample {k}"


def test_daps_batch_of_three_matches_single_samples():
    """A DAPS batch of 3 in one sampler call (as on a GPU) gives the samples of 3 single calls up to float32
    rounding: the noise is per sample (seed + k), and so is every step size (the pixel-space radius r_k uses each
    sample's own decoder gain)."""
    priors, task = tiny_priors(True), toy_task(linear=dense_model()[0])
    one = daps_samples(task, priors, priors.video, False, QUICK_DAPS, 3, 5, batch=1)
    three = daps_samples(task, priors, priors.video, False, QUICK_DAPS, 3, 5, batch=3)
    torch.testing.assert_close(three, one, rtol=1e-4, atol=1e-5)


def _identity(seed: int = 0) -> dict:
    priors, task = tiny_priors(True), toy_task(linear=dense_model()[0])
    return run_identity(task, priors, seed, "quick", "STeP", {**QUICK_DAPS.to_dict(), "progress": seed == 0})


def test_store_keeps_samples_and_guards_the_work_folder(tmp_path):
    out = tmp_path / "run"
    assert work_folder(out) == tmp_path / "run.partial"
    store = SampleStore(work_folder(out), {"STeP": _identity(0), "IDM+BCS": _identity(0)})
    store.check(resume=False)  # nothing there yet
    store.create()
    x = torch.randn(1, 3, 1, 16, 16)
    store.put("IDM+BCS", 7, x, 1.5)
    assert store.path("IDM+BCS", 7) == tmp_path / "run.partial" / "IDM_BCS" / "sample_0007.safetensors"
    assert store.has("IDM+BCS", 7) and not store.has("IDM+BCS", 6) and not store.has("STeP", 7)
    got, seconds = store.get("IDM+BCS", 7)
    assert torch.equal(got, x) and seconds == 1.5
    assert not [p for p in store.folder.rglob(".*")]  # no temporary file left
    with pytest.raises(DemoError, match=r"run\.partial holds the samples of an unfinished run: add --resume"):
        store.check(resume=False)
    store.check(resume=True)
    # the same run (the progress flag does not count) resumes; another seed is refused, naming what differs
    SampleStore(store.folder, {"STeP": _identity(1) | {"seed": 0}}).check(resume=True)
    with pytest.raises(DemoError, match=r"holds STeP samples of a different run \(seed differ\)"):
        SampleStore(store.folder, {"STeP": _identity(1)}).check(resume=True)
    ident = json.loads((store.folder / "STeP" / "identity.json").read_text())
    assert ident["method"] == "STeP" and "progress" not in ident["settings"] and ident["priors"]["video"] == "tiny"
    store.remove()
    assert not store.folder.exists()


def test_identity_fingerprints_the_data():
    priors = tiny_priors(True)
    model, _ = dense_model()
    a = run_identity(toy_task(linear=model), priors, 0, "quick", "SVI", {})
    other = toy_task(linear=model)
    other.log_likelihood = lambda x: -2 * x.flatten(1).sum(1)  # other data, same shapes and attributes
    b = run_identity(other, priors, 0, "quick", "SVI", {})
    assert a["likelihood_probe"] != b["likelihood_probe"]
    assert {k for k in a if a[k] != b[k]} == {"likelihood_probe"}


def test_memory_store():
    store = MemoryStore()
    store.put("STeP", 0, torch.ones(1, 2), 0.5)
    assert store.has("STeP", 0) and store.get("STeP", 0)[1] == 0.5 and not store.has("STeP", 1)
