"""The instructor pack beside grading: the student bundle (the course without solutions) and the syllabus."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from cmtutor.nbtools import BEGIN, NOTEBOOKS
from cmtutor.nbtools.__main__ import main
from cmtutor.nbtools.bundle import PREFIX, course_files, write_bundle
from cmtutor.nbtools.syllabus import Entry, is_current, objectives


def test_student_bundle_has_the_notebooks_and_no_solutions(tmp_path: Path) -> None:
    out = tmp_path / "student.zip"
    assert main(["bundle", str(out)]) == 0
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
        tops = {n.split("/")[1] for n in names}
        assert {"cmtutor", "notebooks", "README.md", "pyproject.toml"} <= tops
        assert not tops & {"solutions", "tests", ".ci"}
        for nb in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
            stored = z.read(f"{PREFIX}/notebooks/{nb.name}")
            assert stored == nb.read_bytes()
            assert BEGIN.encode() not in stored
    before = out.read_bytes()
    assert main(["bundle", str(out)]) == 2  # never over an existing file without --force
    assert out.read_bytes() == before


def test_bundle_refuses_a_notebook_that_still_holds_a_solution(tmp_path: Path) -> None:
    """Without git (a copied folder) the files are found by walking it; a leaked solution block stops the zip."""
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "solutions").mkdir()
    (tmp_path / "README.md").write_text("course")
    (tmp_path / "solutions" / "01_x.ipynb").write_text(BEGIN)
    (tmp_path / "notebooks" / "01_x.ipynb").write_text("{}")
    assert sorted(map(str, course_files(tmp_path))) == ["README.md", "notebooks/01_x.ipynb"]
    (tmp_path / "notebooks" / "01_x.ipynb").write_text(BEGIN)
    with pytest.raises(Exception, match="solution block"):
        write_bundle(tmp_path / "out.zip", root=tmp_path)
    assert not (tmp_path / "out.zip").exists()


def test_syllabus_is_current_and_reads_the_objectives() -> None:
    assert is_current(), "run `python -m cmtutor.nbtools syllabus`"
    md = "# T\n\n**Learning objectives**\n\n* one;\n* two that\n  wraps.\n\nRuns fast."
    assert objectives(md) == ["one", "two that wraps"]
    e = Entry("01_x", "T", [], words=1000, figures=3, exercises=[("1.1", "a", 1), ("1.2", "b", 2)])
    assert e.points == 3 and e.minutes == 5 * -(-(10 + 6 + 60) // 5)  # 76 min, rounded up to 80
