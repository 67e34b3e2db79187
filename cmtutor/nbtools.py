"""Notebook tooling: generate student notebooks from ``solutions/``, execute notebooks, check sync.

    python -m cmtutor.nbtools build            # regenerate notebooks/ from solutions/, execute both in place
    python -m cmtutor.nbtools build 03 05      # only notebooks whose names start with 03 or 05
    python -m cmtutor.nbtools build --no-execute
    python -m cmtutor.nbtools check            # exit 1 if notebooks/ is out of sync with solutions/

Authoring rules (``solutions/`` is the source of truth):

* An exercise is a code cell whose first line names it, ``# Exercise N.M: <what to write>``. The code the
  student writes sits between a ``### BEGIN SOLUTION`` line and a ``### END SOLUTION`` line; in the
  student notebook that block becomes ``raise NotImplementedError("Exercise N.M: ...")`` at the same
  indentation. Exercise cells are self-contained (they import what they use), so tests can run them alone.
* The next cell calls ``cmtutor.exercises.check("N.M", function)``, which prints ``Exercise N.M: correct``,
  ``Exercise N.M: not done yet`` or what differs.
* A markdown answer can be hidden the same way; it becomes ``*Your answer here.*``.
* Cells whose output depends on the machine carry the tag ``nbval-ignore-output`` and a comment saying why.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
NOTEBOOKS = ROOT / "notebooks"
BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
EXERCISE_RE = re.compile(r"#\s*Exercise\s+(\d+\.\d+)\s*:\s*(.*)")
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


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


def normalise(nb: Any) -> Any:
    """Kernelspec ``python3``, no per-cell timing metadata, sources as plain strings."""
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("ExecuteTime", None)
        cell["source"] = _source(cell)
    return nb


def student_version(nb: Any) -> Any:
    """The student notebook of a solution notebook: solution blocks removed, outputs kept as they are."""
    out = copy.deepcopy(nb)
    for cell in out.cells:
        src = _source(cell)
        if BEGIN not in src:
            continue
        if cell.cell_type == "code":
            cell["source"] = strip_solution_code(src)
            cell["outputs"] = []
            cell["execution_count"] = None
        else:
            cell["source"] = strip_solution_markdown(src)
    return normalise(out)


def _select(names: list[str]) -> list[Path]:
    paths = sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb"))
    if names:
        paths = [p for p in paths if any(p.name.startswith(n) for n in names)]
    return paths


def execute(path: Path, timeout: int = 1200) -> float:
    """Execute a notebook in place (cwd = its folder, this environment's kernel); returns seconds."""
    import nbformat
    from nbclient import NotebookClient

    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
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
        nbformat.write(student_version(nb), student)
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
        w = [(c.cell_type, _source(c)) for c in want.cells]
        h = [(c.cell_type, _source(c)) for c in have.cells]
        if w != h:
            idx = next((i for i, (a, b) in enumerate(zip(w, h)) if a != b), min(len(w), len(h)))
            problems.append(f"{name}: cell {idx} differs from the generated student version")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cmtutor.nbtools", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="regenerate student notebooks and execute notebooks in place")
    b.add_argument("names", nargs="*", help="notebook name prefixes, e.g. 01 03 (default: all)")
    b.add_argument("--no-execute", action="store_true")
    sub.add_parser("check", help="exit 1 if notebooks/ is out of sync with solutions/")
    args = parser.parse_args(argv)
    if args.cmd == "build":
        build(args.names, run=not args.no_execute)
        return 0
    problems = out_of_sync()
    for p in problems:
        print(p, file=sys.stderr)
    print("notebooks/ is in sync with solutions/" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
