"""The student bundle: the course as a zip, without the solutions.

    python -m cmtutor.nbtools bundle cmtutor-student.zip

It holds what a student runs (README, install files, the library, ``notebooks/``, ``docs/``, the dataset
READMEs) and leaves out ``solutions/`` (the worked exercise code and the model answers to the questions),
``tests/`` (they read the solutions) and CI files. The library itself still holds a reference for every
exercise (the notebooks run on it); the grader reports an answer that only calls one (docs/instructors.md).
"""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

from cmtutor.errors import UserError
from cmtutor.nbtools.build import ROOT
from cmtutor.nbtools.cells import BEGIN

#: Top-level entries a student does not get.
LEFT_OUT = ("solutions", "tests", ".ci", ".gitignore")
#: The folder the zip unpacks into.
PREFIX = "cmtutor-course"


def course_files(root: Path = ROOT) -> list[Path]:
    """The committed files of the course (``git ls-files``; without git, the files under the top-level entries
    a checkout has, less caches), relative to ``root``."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
        files = [Path(p) for p in out.decode().split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        skip = {".venv", "__pycache__", ".ipynb_checkpoints", ".pytest_cache", "runs", ".git"}
        files = [p.relative_to(root) for p in sorted(root.rglob("*")) if p.is_file()]
        files = [f for f in files if not skip.intersection(f.parts)
                 and (f.parts[0] != "datasets" or f.name.startswith(("README", "CHECKSUMS")))]
    return [f for f in files if f.parts[0] not in LEFT_OUT and (root / f).is_file()]


def write_bundle(out: Path, root: Path = ROOT, force: bool = False) -> list[Path]:
    """Write the student zip to ``out`` (never over an existing file unless ``force``); returns its files."""
    if out.exists() and not force:
        raise UserError(f"{out} exists; choose another name or pass --force to replace it")
    if not out.parent.is_dir():
        raise UserError(f"{out.parent}: no such folder")
    files = course_files(root)
    for f in files:
        if f.suffix == ".ipynb" and BEGIN in (root / f).read_text(encoding="utf-8"):
            raise UserError(f"{f} holds a solution block: run `python -m cmtutor.nbtools build` first")
    tmp = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for f in files:
            z.write(root / f, f"{PREFIX}/{f.as_posix()}")
    tmp.replace(out)  # atomic: a half-written zip never carries the final name
    return files
