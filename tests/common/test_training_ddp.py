"""A 2-process gloo DDP run of the training loop keeps the replicas identical (ranks see different data)."""

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent("""
    import os, sys, torch
    torch.set_num_threads(1)
    from common import checkpoints
    from common.nets import UNetConfig
    from common.training.config import DataConfig, PriorConfig, StageConfig
    from common.training.data import ArrayVideos
    from common.training.loop import train_stage
    out = sys.argv[1]
    cfg = PriorConfig(data=DataConfig(videos=os.path.join(out, "videos.npy"), zoom=0.2),
                      unet=UNetConfig(in_channels=1, image_size=8, channels=(8, 16), attn_levels=(1,),
                                      temporal_attn_levels=(1,), num_heads=2),
                      train_image=StageConfig(steps=3, batch_size=2, lr=2e-3, checkpoint_every=2, seed=5))
    rank = int(os.environ.get("RANK", "0"))
    ema = train_stage("image", cfg, os.path.join(out, "run"), progress=False)
    checkpoints.save(ema, os.path.join(out, f"ema_rank{rank}.safetensors"))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(out: Path, world: int, tag: str) -> None:
    script = out / "worker.py"
    script.write_text(WORKER)
    port = _free_port()
    procs = []
    for rank in range(world):
        env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
        if world > 1:
            env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                       MASTER_PORT=str(port))
        procs.append(subprocess.Popen([sys.executable, str(script), str(out)], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    for p in procs:
        try:
            log, _ = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        assert p.returncode == 0, f"{tag}: worker failed:\n{log}"


@pytest.mark.slow
def test_two_process_gloo_ddp_keeps_replicas_identical(tmp_path):
    import numpy as np

    g = np.random.default_rng(0)
    videos = g.random((6, 3, 1, 8, 8)).astype(np.float32)
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    for d in (ddp, single):
        d.mkdir()
        np.save(d / "videos.npy", videos)
    _launch(ddp, 2, "ddp")
    r0, r1 = load_file(ddp / "ema_rank0.safetensors"), load_file(ddp / "ema_rank1.safetensors")
    assert r0.keys() == r1.keys() and all(torch.equal(r0[k], r1[k]) for k in r0)
    assert (ddp / "run" / "ema.safetensors").is_file() and (ddp / "run" / "state.safetensors").is_file()
    _launch(single, 1, "single")
    s0 = load_file(single / "ema_rank0.safetensors")
    # rank 1's different batches entered the averaged gradients: the 2-process result differs from 1 process
    assert any(not torch.equal(r0[k], s0[k]) for k in r0)
