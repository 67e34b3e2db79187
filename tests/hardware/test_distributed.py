"""DistributedDataParallel through ``torchrun`` with 2 CPU processes (Gloo backend)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import torch

from conftest import PYTHON, ROOT


def test_torchrun_two_processes_train_resume_sample(tmp_path: Path, cli_env: dict[str, str]) -> None:
    cmd = [PYTHON, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
           str(ROOT / "tests" / "hardware" / "ddp_worker.py"), str(tmp_path)]
    proc = subprocess.run(cmd, env=cli_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("ddp-worker ok") == 1  # rank 0 only

    full = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    cut = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert full["step"] == cut["step"] == 4
    assert len(full["rng_ranks"]) == 2  # every rank's RNG states, for exact resume
    assert not torch.equal(full["rng_ranks"][0]["torch"], full["rng_ranks"][1]["torch"])  # ranks draw apart
    for part in ("model", "ema"):
        for k in full[part]:
            assert torch.equal(full[part][k], cut[part][k]), f"{part}.{k} differs after a DDP resume"
    for d in ("full", "cut"):  # rank 0 alone writes the log: one line per logged step
        steps = [json.loads(x)["step"] for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
        assert steps == [2, 4]
        assert all(isinstance(s, int) for s in steps)


def test_gradients_of_jvp_methods_are_synchronised(cli_env: dict[str, str]) -> None:
    """sCM and MeanFlow under 2 Gloo processes: the gradient agrees across ranks (and would not without DDP)."""
    cmd = [PYTHON, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
           str(ROOT / "tests" / "hardware" / "ddp_jvp_worker.py")]
    proc = subprocess.run(cmd, env=cli_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("ddp-jvp-worker ok") == 1
