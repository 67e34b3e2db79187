"""The instructors' grading command on real course notebooks: an untouched student notebook scores 0, the
solution full marks, and each broken exercise costs only its own points (a fresh kernel per submission)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from cmtutor.exercises import STATUSES
from cmtutor.nbtools import NOTEBOOKS, ROOT, SOLUTIONS, exercise_cells
from cmtutor.nbtools.__main__ import main

CD = "02_consistency_models.ipynb"
CT = "03_consistency_training.ipynb"


def _replace_exercises(src: Path, dest: Path, new: dict[str, str | None]) -> None:
    """A copy of ``src`` with the cells of the given exercises replaced (None deletes the cell)."""
    nb = nbformat.read(src, as_version=4)
    cells = {e.id: e for e in exercise_cells(nb)}
    drop = []
    for ex_id, code in new.items():
        cell = nb.cells[cells[ex_id].index]
        if code is None:
            drop.append(cells[ex_id].index)
        else:
            cell.source = f"# Exercise {ex_id}: changed by the test\n{code}"
    nb.cells = [c for i, c in enumerate(nb.cells) if i not in drop]
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest)


def _grade(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cmtutor.nbtools", "grade", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)


def test_grade_student_solution_and_broken_submissions(tmp_path: Path) -> None:
    missing_21 = tmp_path / "alice" / CD
    _replace_exercises(SOLUTIONS / CD, missing_21, {"2.1": None})
    broken_03 = tmp_path / "bob" / CT
    _replace_exercises(SOLUTIONS / CT, broken_03, {
        "3.1": "def ict_num_scales(k, total_steps, s0=10, s1=1280:\n    return s0\n",  # a syntax error
        "3.2": "import torch\n\ndef lognormal_pair_probs(sigmas, p_mean=-1.1, p_std=2.0):\n"
               "    return torch.full((len(sigmas) - 1,), 1.0 / (len(sigmas) - 1))\n",  # uniform: wrong
        "3.3": "def ict_loss(model, target_net, x, z, sigma_lo, sigma_hi, c):\n    while True:\n        pass\n",
    })
    proc = _grade(str(NOTEBOOKS / CD), str(SOLUTIONS / CD), str(missing_21), str(broken_03), "--json",
                  "--timeout", "8")
    assert proc.returncode == 0, proc.stderr[-2000:]
    student, solution, alice, bob = json.loads(proc.stdout)
    assert set(student) == {"notebook", "total", "max", "exercises"}
    assert set(student["exercises"][0]) >= {"id", "points", "max", "status"}

    assert (student["total"], student["max"]) == (0, 4)  # 2.1 (the CD loss) is worth 3 points, 2.2 one
    assert [e["status"] for e in student["exercises"]] == ["not done", "not done"]
    assert (solution["total"], solution["max"]) == (4, 4)
    assert [e["status"] for e in alice["exercises"]] == ["missing", "correct"] and alice["total"] == 1

    every = [e["status"] for g in (student, solution, alice, bob) for e in g["exercises"]]
    assert set(every) <= set(STATUSES)
    statuses = {e["id"]: e for e in bob["exercises"]}
    assert statuses["3.1"]["status"] == "error" and "SyntaxError" in statuses["3.1"]["message"]
    assert statuses["3.2"]["status"] == "wrong"
    assert statuses["3.3"]["status"] == "timeout"
    assert bob["total"] == 0 and bob["max"] == 5


def test_grade_prints_a_table_and_refuses_what_is_not_a_course_notebook(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["grade", str(NOTEBOOKS / CD)]) == 0
    out = capsys.readouterr().out
    assert "2.1" in out and "0/3" in out and "total" in out and "0/4" in out
    bad = tmp_path / "02_consistency_models.ipynb"
    bad.write_text("{not json")
    other = tmp_path / "notes.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), other)
    for path, why in ((bad, "not a readable notebook"), (tmp_path / "nothing.ipynb", "no such file"),
                      (other, "not a course notebook")):
        assert main(["grade", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and why in err and len(err.splitlines()) == 1
