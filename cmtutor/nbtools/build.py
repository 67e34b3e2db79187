"""Build the student notebooks from ``solutions/``, execute notebooks in place, check they are in sync.

Authoring rules (``solutions/`` is the source of truth):

* An exercise is a code cell whose first line names it, ``# Exercise N.M: <what to write>``. The code the
  student writes sits between a ``### BEGIN SOLUTION`` line and a ``### END SOLUTION`` line; in the
  student notebook that block becomes ``raise NotImplementedError("Exercise N.M: ...")`` at the same
  indentation. Exercise cells are self-contained (they import what they use), so tests can run them alone.
* The next cell calls ``cmtutor.exercises.check("N.M", function)``, which prints ``Exercise N.M: correct``,
  ``Exercise N.M: not done yet`` or what differs.
* A markdown answer can be hidden the same way; it becomes ``*Your answer here.*``.
* A cell whose output depends on the machine starts with the comment ``# nbval-ignore-output: <why>``;
  ``build`` gives every such cell the ``nbval-ignore-output`` metadata tag, which is what nbval reads.
"""

from __future__ import annotations

import copy
import os
import re
import time
from pathlib import Path
from typing import Any

from cmtutor.nbtools.cells import BEGIN, END, EXERCISE_RE, source_of

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = ROOT / "solutions"
NOTEBOOKS = ROOT / "notebooks"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def strip_solution_code(source: str) -> str:
    """Replace each BEGIN/END SOLUTION block of a code cell with ``raise NotImplementedError(...)``."""
    lines = source.split("\n")
    m = next((EXERCISE_RE.search(ln) for ln in lines if EXERCISE_RE.search(ln)), None)
    if m is None:
        raise ValueError(f"a solution block must sit in a cell that names its exercise "
                         f"('# Exercise N.M: ...'):\n{source[:200]}")
    ex_id, what = m.group(1), m.group(2).strip().rstrip(".")
    out: list[str] = []
    inside = False
    for ln in lines:
        stripped = ln.strip()
        if stripped.startswith(BEGIN):
            if inside:
                raise ValueError(f"Exercise {ex_id}: nested {BEGIN}")
            inside = True
            indent = ln[: len(ln) - len(ln.lstrip())]
            out.append(f'{indent}raise NotImplementedError("Exercise {ex_id}: {what}")')
        elif stripped.startswith(END):
            if not inside:
                raise ValueError(f"Exercise {ex_id}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(ln)
    if inside:
        raise ValueError(f"Exercise {ex_id}: {BEGIN} without {END}")
    return "\n".join(out)


def strip_solution_markdown(source: str) -> str:
    pattern = re.compile(rf"{re.escape(BEGIN)}.*?{re.escape(END)}", re.S)
    return pattern.sub("*Your answer here.*", source)


IGNORE_TAG = "nbval-ignore-output"


def wants_ignore(source: str) -> bool:
    """True if a code cell's first line is the ``# nbval-ignore-output: <why>`` comment."""
    first = source.lstrip().split("\n", 1)[0].strip().lower()
    return first.startswith("#") and first.lstrip("#").strip().startswith(IGNORE_TAG)


def normalise(nb: Any) -> Any:
    """Kernelspec ``python3``, no per-cell timing metadata, sources as plain strings, and the
    ``nbval-ignore-output`` tag on exactly the cells that say why they need it."""
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("ExecuteTime", None)
        cell["source"] = source_of(cell)
        if cell.cell_type == "code" and wants_ignore(cell["source"]):
            tags = cell.metadata.setdefault("tags", [])
            if IGNORE_TAG not in tags:
                tags.append(IGNORE_TAG)
    return nb


def student_version(nb: Any) -> Any:
    """The student notebook of a solution notebook: solution blocks removed, outputs kept as they are."""
    out = copy.deepcopy(nb)
    for cell in out.cells:
        src = source_of(cell)
        if BEGIN not in src:
            continue
        if cell.cell_type == "code":
            cell["source"] = strip_solution_code(src)
            cell["outputs"] = []
            cell["execution_count"] = None
        else:
            cell["source"] = strip_solution_markdown(src)
    return normalise(out)


def _keep_outputs(new: Any, old: Any) -> None:
    """Copy outputs from ``old`` into the cells of ``new`` whose type and source did not change."""
    for i, cell in enumerate(new.cells):
        if cell.cell_type != "code" or i >= len(old.cells):
            continue
        prev = old.cells[i]
        if prev.cell_type == "code" and source_of(prev) == source_of(cell):
            cell["outputs"] = prev.get("outputs", [])
            cell["execution_count"] = prev.get("execution_count")


def _select(names: list[str]) -> list[Path]:
    paths = sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb"))
    if names:
        paths = [p for p in paths if any(p.name.startswith(n) for n in names)]
    return paths


def kernels_see_this_checkout() -> None:
    """Put this checkout first on the PYTHONPATH that kernels started from here inherit."""
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)


def execute(path: Path, timeout: int = 1200) -> float:
    """Execute a notebook in place (cwd = its folder, this environment's kernel); returns seconds."""
    import nbformat
    from nbclient import NotebookClient

    kernels_see_this_checkout()
    nb = nbformat.read(path, as_version=4)
    t0 = time.time()
    # Widget state is not stored: explorers are live only with a running kernel, and the static figure
    # beside each one is what a reader of the stored notebook sees (it also keeps notebooks small).
    NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(normalise(nb), path)
    return time.time() - t0


def build(names: list[str], run: bool = True) -> None:
    """Regenerate student notebooks (and execute solutions, then students, in place)."""
    import nbformat

    NOTEBOOKS.mkdir(exist_ok=True)
    for sol in _select(names):
        if run:
            print(f"executing {sol.relative_to(ROOT)} ...", flush=True)
            print(f"  {execute(sol):.1f} s", flush=True)
        nb = normalise(nbformat.read(sol, as_version=4))
        nbformat.write(nb, sol)
        student = NOTEBOOKS / sol.name
        new = student_version(nb)
        if not run and student.exists():
            _keep_outputs(new, nbformat.read(student, as_version=4))
        nbformat.write(new, student)
        if run:
            print(f"executing {student.relative_to(ROOT)} ...", flush=True)
            print(f"  {execute(student):.1f} s", flush=True)


def out_of_sync() -> list[str]:
    """Names of student notebooks whose cells differ from what ``solutions/`` generates (sources only)."""
    import nbformat

    problems = []
    expected = {p.name for p in _select([])}
    actual = {p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")}
    problems += [f"{n}: missing from notebooks/" for n in sorted(expected - actual)]
    problems += [f"{n}: has no solutions/ source" for n in sorted(actual - expected)]
    for name in sorted(expected & actual):
        want = student_version(nbformat.read(SOLUTIONS / name, as_version=4))
        have = nbformat.read(NOTEBOOKS / name, as_version=4)
        w = [(c.cell_type, source_of(c)) for c in want.cells]
        h = [(c.cell_type, source_of(c)) for c in have.cells]
        if w != h:
            idx = next((i for i, (a, b) in enumerate(zip(w, h)) if a != b), min(len(w), len(h)))
            problems.append(f"{name}: cell {idx} differs from the generated student version")
    return problems
