"""Notebook tooling for authors and instructors (``python -m cmtutor.nbtools --help``).

    python -m cmtutor.nbtools build            # regenerate notebooks/ from solutions/, execute both in place
    python -m cmtutor.nbtools build 03 05      # only notebooks whose names start with 03 or 05
    python -m cmtutor.nbtools build --no-execute
    python -m cmtutor.nbtools check            # exit 1 if notebooks/ is out of sync with solutions/
    python -m cmtutor.nbtools grade NB... [--json]   # points per exercise of submitted notebooks

``build`` and the authoring rules: :mod:`cmtutor.nbtools.build`; grading: :mod:`cmtutor.nbtools.grade`.
"""

from cmtutor.nbtools.build import (
    IGNORE_TAG,
    NOTEBOOKS,
    ROOT,
    SOLUTIONS,
    build,
    execute,
    normalise,
    out_of_sync,
    strip_solution_code,
    strip_solution_markdown,
    student_version,
    wants_ignore,
)
from cmtutor.nbtools.cells import (
    BEGIN,
    CHECK_RE,
    END,
    EXERCISE_RE,
    ExerciseCell,
    exercise_cells,
    source_of,
)

__all__ = [
    "BEGIN",
    "CHECK_RE",
    "END",
    "EXERCISE_RE",
    "IGNORE_TAG",
    "NOTEBOOKS",
    "ROOT",
    "SOLUTIONS",
    "ExerciseCell",
    "build",
    "execute",
    "exercise_cells",
    "normalise",
    "out_of_sync",
    "source_of",
    "strip_solution_code",
    "strip_solution_markdown",
    "student_version",
    "wants_ignore",
]
