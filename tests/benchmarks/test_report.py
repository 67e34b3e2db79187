"""The results page and the README's glance table are generated from the committed results files, and current."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cmtutor.benchmarks import report, toy2d
from cmtutor.benchmarks.studies import RESULTS_DIR


def test_committed_results_page_and_readme_are_current() -> None:
    assert report.main(["--check"]) == 0, "run `python -m cmtutor.benchmarks.report` and commit docs/results.md"


def _toy2d_file(folder: Path) -> None:
    rows = [toy2d.Row(d, m, 100.0, r1, None if m == "diffusion" else r1 - 0.1, 0.05, 0.05, seed=s,
                      hardware="test machine", date="2026-01-01", parallel="1 job(s)")
            for d in ("moons", "rings.npy") for m, r1 in (("diffusion", 1.05), ("ict", 1.7)) for s in (0, 1)
            if (d, m, s) != ("rings.npy", "diffusion", 1)]  # one set measured on fewer seeds
    doc = toy2d.results_document(toy2d.merge_rows([], rows), ["python -m cmtutor.benchmarks.toy2d"])
    (folder / "toy2d.json").write_text(json.dumps(doc))


def test_a_new_results_file_changes_the_page_and_the_glance(tmp_path: Path) -> None:
    for f in RESULTS_DIR.glob("*.json"):
        shutil.copy(f, tmp_path)
    (tmp_path / "toy2d.json").unlink(missing_ok=True)
    assert "Not measured yet: `python -m cmtutor.benchmarks.toy2d" in report.render(tmp_path)
    _toy2d_file(tmp_path)
    page = report.render(tmp_path)
    assert "| moons | ict | 2 | 1.70 (1.70–1.70) | 1.60 (1.60–1.60) | 100 | FAIL |" in page
    glance = report.glance(tmp_path)
    assert "| diffusion | 2 / 2 | 1–2 | 1.05 – 1.05 | – |" in glance and "| ict | 0 / 2 | 2 |" in glance
    assert "Not measured yet at the current defaults: cd, ct, gc, ot" in glance
    readme = f"intro\n{report.BEGIN}\nold table\n{report.END}\noutro\n"
    assert report.with_glance(readme, tmp_path) == f"intro\n{report.BEGIN}\n{glance}\n{report.END}\noutro\n"


def test_a_readme_without_the_block_is_an_error() -> None:
    with pytest.raises(ValueError, match="results:begin"):
        report.with_glance("no block here")


def test_the_glance_says_how_far_each_image_teacher_is_from_its_floor(tmp_path: Path) -> None:
    res = json.loads((RESULTS_DIR / "images_digits.json").read_text())
    teacher = [s["diffusion"]["fd_40step"] for s in res["seeds"].values()]
    res["floor"] = sum(teacher) / len(teacher) / 4  # a teacher 4× its floor
    (tmp_path / "images_digits.json").write_text(json.dumps(res))
    assert f"| digits | {res['budget']['steps']} steps, {len(teacher)} seeds | 4.0 |" in report.glance(tmp_path)
