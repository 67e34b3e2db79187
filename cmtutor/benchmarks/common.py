"""Shared pieces of the benchmark scripts: where a local CIFAR-10 may be, the machine, JSON output."""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cmtutor.data import cifar10
from cmtutor.data.root import data_root
from cmtutor.hardware.accel import cpu_name

#: Folders where a CIFAR-10 copy is commonly kept (checked in order; ``$CMTUTOR_DATA/cifar10`` first).
SEARCH_ROOTS = ("datasets/cifar10", "data", "~/datasets/cifar10", "~/data", "~/.cache", "/data", "/datasets",
                "/mnt", "/scratch", "/tmp", "/root", "/workspace", "/opt")


def say(msg: str) -> None:
    """Progress on stdout, flushed at once (long GPU jobs are watched live)."""
    print(msg, flush=True)


def find_cifar10(max_depth: int = 3) -> dict[str, Any]:
    """Look for a local CIFAR-10 (the python batches or the tarball) in the usual places and verify it.

    Returns a report: the folders searched, every candidate found, and ``path`` of the first one that
    passes the official checksums (None if none does). Never downloads.
    """
    roots = [data_root() / "cifar10", *(Path(os.path.expanduser(r)) for r in SEARCH_ROOTS)]
    found: list[dict[str, Any]] = []
    seen: set[Path] = set()

    def visit(d: Path, depth: int) -> None:
        if depth > max_depth or d in seen or not d.is_dir():
            return
        seen.add(d)
        try:
            entries = list(d.iterdir())
        except OSError:
            return
        names = {e.name for e in entries}
        if cifar10.TARBALL in names or "data_batch_1" in names or cifar10.FOLDER in names:
            found.append({"path": str(d)})
        for e in entries:
            if e.is_dir() and not e.name.startswith(".") and not e.is_symlink():
                visit(e, depth + 1)

    for r in roots:
        visit(r, 0)
    chosen = None
    for cand in found:
        path = Path(cand["path"])
        try:
            if not (path / "data_batch_1").exists() and not (path / cifar10.FOLDER / "data_batch_1").exists():
                # only the archive: verify it and extract into a temporary folder, never beside it
                tarball = path / cifar10.TARBALL
                cand["tarball_md5_ok"] = cifar10.md5sum(tarball) == cifar10.TARBALL_MD5
                if not cand["tarball_md5_ok"]:
                    raise ValueError(f"{tarball}: md5 differs from the official {cifar10.TARBALL_MD5}")
                tmp = Path(tempfile.mkdtemp(prefix="cmtutor-cifar10-"))
                shutil.copy(tarball, tmp / cifar10.TARBALL)
                path = tmp
                cand["extracted_to"] = str(tmp)
            c = cifar10.load_cifar10(path, allow_download=False)
            cand["verified"] = not c.is_standin
            cand["images"] = int(len(c.train))
            if not c.is_standin and chosen is None:
                chosen = str(path)
        except Exception as exc:  # a wrong checksum, a partial copy ...
            cand["verified"] = False
            cand["error"] = str(exc)[:300]
    return {"searched": [str(r) for r in roots], "max_depth": max_depth, "candidates": found, "path": chosen}


def machine() -> dict[str, Any]:
    """The hardware and software a measurement was taken on."""
    info: dict[str, Any] = {"python": sys.version.split()[0], "torch": torch.__version__,
                            "platform": platform.platform(terse=True), "cpu": cpu_name(),
                            "cpu_threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpus"] = torch.cuda.device_count()
        info["cuda"] = torch.version.cuda
        info["gpu_memory_gb"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    return info


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as JSON atomically (so a job killed mid-way leaves the last complete version)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_default) + "\n")
    os.replace(tmp, p)


def _default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    return str(o)
