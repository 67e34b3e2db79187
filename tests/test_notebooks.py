"""Notebook tooling: student notebooks in sync with solutions/, executed, and exercises that check out.

nbval itself (``pytest --nbval notebooks/``) re-runs the student notebooks; these tests add what nbval
cannot see: the solutions' exercise code passes its checker, the student versions say "not done yet",
and the generated student notebooks equal the committed ones.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import nbformat
import pytest

from cmtutor.exercises import check
from cmtutor.nbtools import (
    NOTEBOOKS,
    SOLUTIONS,
    exercise_cells,
    out_of_sync,
    strip_solution_code,
    strip_solution_markdown,
    student_version,
    wants_ignore,
)

SOLUTION_NBS = sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb"))
ALL_NBS = SOLUTION_NBS + sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def test_strip_solution_code() -> None:
    src = ("# Exercise 9.1: write f\ndef f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n"
           "    ### END SOLUTION\n")
    out = strip_solution_code(src)
    assert 'raise NotImplementedError("Exercise 9.1: write f")' in out
    assert "return x + y" not in out and "y = 1" in out
    assert out.splitlines()[3].startswith("    raise")  # same indentation as the BEGIN line
    with pytest.raises(ValueError):
        strip_solution_code("def f():\n    ### BEGIN SOLUTION\n    pass\n    ### END SOLUTION\n")  # no id
    with pytest.raises(ValueError):
        strip_solution_code("# Exercise 9.2: g\n### BEGIN SOLUTION\npass\n")  # unterminated
    assert strip_solution_markdown("Q?\n### BEGIN SOLUTION\nA.\n### END SOLUTION") == "Q?\n*Your answer here.*"


def test_student_notebooks_in_sync_with_solutions() -> None:
    problems = out_of_sync()
    assert not problems, "run `python -m cmtutor.nbtools build`:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", ALL_NBS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebook_is_executed_and_normalised(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert code, "a notebook without code"
    unexecuted = [i for i, c in enumerate(code) if c.execution_count is None]
    assert not unexecuted, f"code cells {unexecuted} are not executed"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"stored error output: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")  # a title
    for i, c in enumerate(code):
        tagged = "nbval-ignore-output" in c.metadata.get("tags", [])
        assert tagged == wants_ignore(c.source), (
            f"code cell {i}: the nbval-ignore-output tag and a first-line '# nbval-ignore-output: <why>' comment "
            "go together (run `python -m cmtutor.nbtools build --no-execute`)")


def _exercise_cells(nb: nbformat.NotebookNode) -> list[tuple[str, str, str]]:
    """(exercise id, exercise cell source, name of the checked function) for each exercise."""
    return [(e.id, e.source, e.function) for e in exercise_cells(nb)]


def _run_exercise(source: str, name: str, ex_id: str) -> str:
    ns: dict[str, object] = {}
    exec(compile(source, f"<exercise {ex_id}>", "exec"), ns)  # exercise cells are self-contained
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        check(ex_id, ns[name])  # type: ignore[arg-type]
    return buf.getvalue().strip()


@pytest.mark.parametrize("path", SOLUTION_NBS, ids=lambda p: p.name)
def test_exercises_solutions_are_correct_and_students_are_open(path: Path) -> None:
    sol = nbformat.read(path, as_version=4)
    exercises = _exercise_cells(sol)
    assert len(exercises) >= 2 or path.name.startswith(("00", "08")), "at least two exercises per notebook"
    student = student_version(sol)
    student_ex = {e[0]: e for e in _exercise_cells(student)}
    for ex_id, source, name in exercises:
        assert _run_exercise(source, name, ex_id) == f"Exercise {ex_id}: correct"
        assert "not done yet" in _run_exercise(student_ex[ex_id][1], name, ex_id)


def test_notebooks_pass_on_a_headless_server_that_sets_mplbackend(tmp_path: Path) -> None:
    """With ``MPLBACKEND=Agg`` in the environment (common on servers and CI images) the kernels still show
    their figures, so nbval's comparison holds: the root conftest.py removes the variable for them."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "MPLBACKEND": "Agg", "CMTUTOR_DATA": str(tmp_path / "data")}
    env.pop("PYTEST_XDIST_WORKER", None)
    root = SOLUTIONS.parent
    proc = subprocess.run([sys.executable, "-m", "pytest", "--nbval", "-q", "-p", "no:cacheprovider",
                           str(NOTEBOOKS / "00_course_map.ipynb")], cwd=root, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "passed" in proc.stdout and "failed" not in proc.stdout
