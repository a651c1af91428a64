"""The GPU training recipe (``scripts/train_priors.py``) end to end on CPU at a tiny size: data, both stages under
a wall-time budget, float16 shipping, prior-report; a rerun continues instead of starting over."""

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from common import checkpoints

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _recipe():
    spec = importlib.util.spec_from_file_location("train_priors", ROOT / "scripts" / "train_priors.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("domain", ["bh", "mri"])
def test_recipe_trains_ships_and_reports_a_tiny_prior(tmp_path, domain, monkeypatch):
    cfg = yaml.safe_load((ROOT / "configs" / "gpu" / f"prior_{domain}_pixel_gpu.yaml").read_text())
    cfg["data"]["videos"] = str(tmp_path / "data" / "videos.npy")
    cfg["data"]["clip_frames"] = 4 if domain == "bh" else None
    cfg["unet"].update(image_size=16, patch=2, channels=[8, 16], attn_levels=[1], temporal_attn_levels=[0, 1],
                       num_heads=2)
    for stage in ("train_image", "train_video"):
        cfg[stage].update(batch_size=2, steps=3, checkpoint_every=1)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(cfg))
    monkeypatch.chdir(tmp_path)
    argv = ["--domain", domain, "--config", str(config), "--out", str(tmp_path / "run"), "--minutes", "5",
            "--ship", str(tmp_path / "ship"), "--videos", "3", "--frames", "6", "--held-out", "2",
            "--report-steps", "2"]
    assert _recipe().main(argv) == 0
    for stage in ("image", "video"):
        net = checkpoints.load(tmp_path / "ship" / f"{stage}.safetensors")
        assert net.config.temporal == (stage == "video") and net.config.patch == 2
        assert (tmp_path / "ship" / "training" / stage / "log.jsonl").exists()
        # the video stage records the movie length its frame positions saw; shipping keeps it
        expect = {"trained_frames": 6} if stage == "video" else {}
        assert checkpoints.read_info(tmp_path / "ship" / f"{stage}.safetensors") == expect
    if domain == "bh":
        from blackhole.priors import prior_frames

        assert prior_frames(tmp_path / "ship" / "video.safetensors")[0] == 6
    rep = json.loads((tmp_path / "ship" / "report" / "report.json").read_text())
    assert rep["round_trip"] is None and "video_over_image" in rep["temporal_roughness"]
    logged = (tmp_path / "run" / "video" / "log.jsonl").read_text()
    assert _recipe().main(argv) == 0  # finished stages are skipped, not retrained
    assert (tmp_path / "run" / "video" / "log.jsonl").read_text() == logged
