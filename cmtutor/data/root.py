"""Where data and caches live: ``datasets/`` in the checkout, or ``$CMTUTOR_DATA``."""

from __future__ import annotations

import os
from pathlib import Path


def data_root() -> Path:
    """Where data lives: ``$CMTUTOR_DATA`` if set, else ``datasets/`` in the repository checkout."""
    env = os.environ.get("CMTUTOR_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "datasets"


def cache_dir() -> Path:
    """``<data root>/cache/`` (created if needed): cached models and feature statistics, git-ignored."""
    d = data_root() / "cache"
    d.mkdir(parents=True, exist_ok=True)
    return d


def relative_to_root(text: str) -> str:
    """Replace the absolute data root in a message by ``<data root>`` (no machine paths in outputs)."""
    return text.replace(str(data_root()), "<data root>")
