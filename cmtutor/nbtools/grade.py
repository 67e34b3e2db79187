"""Grade submitted notebooks: points per exercise, from each exercise's hidden checks run in a fresh kernel.

    python -m cmtutor.nbtools grade submissions/*.ipynb [--json] [--timeout 120]

Which exercises a submission holds, and the function each one defines, come from the matching notebook in
``solutions/`` (by its ``NN_`` prefix), so a student who deletes or renames a cell loses only that exercise.
Each submission gets a fresh kernel that runs its exercise cells (they are self-contained, by the authoring
rules) and then asks :func:`cmtutor.exercises.grade` for a verdict on each function: inputs the notebook does
not show, gradient flow, and whether the answer only calls cmtutor's own. Each cell has a time limit; a cell
that runs past it is interrupted and its exercise scores 0 (``timeout``). docs/instructors.md has the story.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cmtutor.errors import UserError
from cmtutor.exercises import exercise, grade
from cmtutor.nbtools.build import SOLUTIONS, kernels_see_this_checkout
from cmtutor.nbtools.cells import ExerciseCell, exercise_cells, exercise_sources

#: Marks the verdict line a grading cell prints, so a student's own prints cannot be mistaken for it.
MARK = "CMTUTOR-VERDICT "


@dataclass
class ExerciseGrade:
    id: str
    points: int
    max: int
    status: str
    message: str


@dataclass
class NotebookGrade:
    notebook: str
    total: int = 0
    max: int = 0
    exercises: list[ExerciseGrade] = field(default_factory=list)


def verdict_line(exercise_id: str, fn: Any) -> str:
    """Run in the grading kernel: the grader's verdict on ``fn`` as one marked JSON line."""
    if fn is None or not callable(fn):
        status, message = "missing", "the function this exercise asks for is not defined"
    else:
        v = grade(exercise_id, fn)
        status, message = v.status, v.message
    return MARK + json.dumps({"id": exercise_id, "status": status, "message": message})


def solution_for(path: Path, nb: Any) -> Path:
    """The solutions/ notebook a submission answers: same ``NN_`` prefix, else the one with its exercise ids."""
    prefix = path.name[:3]
    by_name = sorted(SOLUTIONS.glob(f"{prefix}*.ipynb")) if prefix[:2].isdigit() and prefix[2] == "_" else []
    if by_name:
        return by_name[0]
    ids = set(exercise_sources(nb))
    for sol in sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb")):
        if ids and ids == {e.id for e in _solution_exercises(sol)}:
            return sol
    raise UserError(f"{path}: not a course notebook (no NN_ prefix of solutions/ and no matching exercises)")


def _solution_exercises(sol: Path) -> list[ExerciseCell]:
    import nbformat

    return exercise_cells(nbformat.read(sol, as_version=4))


def _cell_error(cell: Any) -> str | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out.get('ename')}: {out.get('evalue')}"
    return None


def _verdicts(cell: Any) -> list[dict[str, str]]:
    found = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            found += [json.loads(ln[len(MARK):]) for ln in out.get("text", "").splitlines() if ln.startswith(MARK)]
    return found


def grade_notebook(path: Path, timeout: int = 120) -> NotebookGrade:
    """Grade one submission in a fresh kernel (see the module docstring)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # not JSON, or not a notebook: the instructor needs the name, not a traceback
        raise UserError(f"{path}: not a readable notebook ({type(exc).__name__}: {exc})") from None
    wanted = _solution_exercises(solution_for(path, nb))
    result = NotebookGrade(str(path), max=sum(exercise(e.id).points for e in wanted))
    theirs = exercise_sources(nb)
    run = nbformat.v4.new_notebook()
    slots: dict[str, tuple[int | None, int]] = {}
    for e in wanted:
        code = None
        if e.id in theirs:
            code = len(run.cells)
            run.cells.append(nbformat.v4.new_code_cell(theirs[e.id]))
        check = len(run.cells)
        run.cells.append(nbformat.v4.new_code_cell(
            "from cmtutor.nbtools.grade import verdict_line\n"
            f"print(verdict_line({e.id!r}, globals().get({e.function!r})))"))
        slots[e.id] = (code, check)
    kernels_see_this_checkout()
    client = NotebookClient(run, timeout=timeout, kernel_name="python3", allow_errors=True,
                            interrupt_on_timeout=True, store_widget_state=False,
                            error_on_timeout={"ename": "Timeout", "evalue": f"ran past {timeout} s",
                                              "traceback": []},
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    died = None
    try:
        client.execute()
    except DeadKernelError as exc:  # a submission that kills its kernel scores what ran before
        died = f"the kernel died ({exc})"
    for e in wanted:
        code, check = slots[e.id]
        cell_err = _cell_error(run.cells[code]) if code is not None else None
        found = _verdicts(run.cells[check])
        check_err = _cell_error(run.cells[check])
        if found:
            status, message = found[0]["status"], found[0]["message"]
            if status == "missing" and cell_err:
                status, message = "error", f"Exercise {e.id}: its cell raised {cell_err}"
        elif code is None:
            status, message = "missing", f"Exercise {e.id}: no cell starting '# Exercise {e.id}:' in the submission"
        elif any(f"{err}".startswith(("Timeout", "KeyboardInterrupt")) for err in (check_err, cell_err)):
            status, message = "timeout", f"Exercise {e.id}: ran past the {timeout} s limit"
        else:
            status, message = "error", f"Exercise {e.id}: {check_err or cell_err or died or 'no verdict'}"
        pts = exercise(e.id).points
        got = pts if status == "correct" else 0
        result.exercises.append(ExerciseGrade(e.id, got, pts, status, message))
        result.total += got
    return result


def table(grades: list[NotebookGrade]) -> str:
    """A plain-text table: one row per exercise, a total per notebook."""
    lines = []
    for g in grades:
        lines += [g.notebook, f"  {'exercise':<8} {'points':>6}  status"]
        for e in g.exercises:
            why = "" if e.status in ("correct", "not done") else f" ({e.message.split(': ', 1)[-1]})"
            lines.append(f"  {e.id:<8} {f'{e.points}/{e.max}':>6}  {e.status}{why}")
        lines.append(f"  {'total':<8} {f'{g.total}/{g.max}':>6}")
    return "\n".join(lines)


def as_json(grades: list[NotebookGrade]) -> str:
    return json.dumps([asdict(g) for g in grades], indent=1, ensure_ascii=False)
