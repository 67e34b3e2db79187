"""Reading a course notebook: the exercise cells and the function each one's checker is called on.

An exercise is a code cell whose first line is ``# Exercise N.M: <what to write>``; a later code cell calls
``check("N.M", function)`` (authoring rules: :mod:`cmtutor.nbtools.build`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
EXERCISE_RE = re.compile(r"#\s*Exercise\s+(\d+\.\d+)\s*:\s*(.*)")
CHECK_RE = re.compile(r"check\(\s*[\"'](\d+\.\d+)[\"']\s*,\s*([A-Za-z_][A-Za-z_0-9]*)")


def source_of(cell: Any) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


@dataclass(frozen=True)
class ExerciseCell:
    """One exercise of a notebook: its id, the index and source of its cell, the checked function's name."""

    id: str
    index: int
    source: str
    function: str
    title: str


def exercise_sources(nb: Any) -> dict[str, str]:
    """Each exercise id of a notebook and the source of the first code cell that names it (no check cell needed:
    a submission may have lost it)."""
    found: dict[str, str] = {}
    for cell in nb["cells"]:
        src = source_of(cell)
        m = EXERCISE_RE.search(src.split("\n")[0]) if cell["cell_type"] == "code" else None
        if m and m.group(1) not in found:
            found[m.group(1)] = src
    return found


def exercise_cells(nb: Any) -> list[ExerciseCell]:
    """The exercises of a notebook in order; an exercise with no ``check("N.M", f)`` cell after it is an error."""
    out = []
    cells = nb["cells"]
    for i, cell in enumerate(cells):
        src = source_of(cell)
        m = EXERCISE_RE.search(src.split("\n")[0]) if cell["cell_type"] == "code" else None
        if m is None:
            continue
        for nxt in cells[i + 1:]:
            c = CHECK_RE.search(source_of(nxt)) if nxt["cell_type"] == "code" else None
            if c and c.group(1) == m.group(1):
                out.append(ExerciseCell(m.group(1), i, src, c.group(2), m.group(2).strip().rstrip(".")))
                break
        else:
            raise ValueError(f"Exercise {m.group(1)} has no check(\"{m.group(1)}\", ...) cell after it")
    return out
