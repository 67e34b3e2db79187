"""Shared test fixtures: small deterministic settings so the suite stays fast on 2 CPU cores."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data root (``CMTUTOR_DATA``) in tmp: caches and downloads never touch ``datasets/``."""
    monkeypatch.setenv("CMTUTOR_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for command-line subprocesses: this interpreter's path, data root in tmp."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["CMTUTOR_DATA"] = str(tmp_path / "data")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


PYTHON = sys.executable
