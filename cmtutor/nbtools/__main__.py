"""``python -m cmtutor.nbtools``: build, check, grade (see :mod:`cmtutor.nbtools`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cmtutor.errors import UserError
from cmtutor.nbtools import syllabus
from cmtutor.nbtools.build import build, out_of_sync
from cmtutor.nbtools.bundle import write_bundle
from cmtutor.nbtools.grade import as_json, grade_notebook, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cmtutor.nbtools",
                                     description="notebook tooling for authors and instructors")
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="regenerate student notebooks and execute notebooks in place")
    b.add_argument("names", nargs="*", help="notebook name prefixes, e.g. 01 03 (default: all)")
    b.add_argument("--no-execute", action="store_true")
    sub.add_parser("check", help="exit 1 if notebooks/ is out of sync with solutions/")
    g = sub.add_parser("grade", help="points per exercise of submitted notebooks, each run in a fresh kernel")
    g.add_argument("notebooks", nargs="+", type=Path, help="submitted notebooks (NN_topic.ipynb)")
    g.add_argument("--json", action="store_true", help="one JSON list on stdout, an entry per notebook")
    g.add_argument("--timeout", type=int, default=120, help="seconds each cell may run (default 120)")
    z = sub.add_parser("bundle", help="write the student zip: the course without solutions/ and tests/")
    z.add_argument("out", type=Path, help="the zip to write, e.g. cmtutor-student.zip")
    z.add_argument("--force", action="store_true", help="replace an existing file")
    s = sub.add_parser("syllabus", help="regenerate docs/syllabus.md (objectives, exercises, study times)")
    s.add_argument("--check", action="store_true", help="exit 1 if docs/syllabus.md is stale")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.cmd == "build":
        build(args.names, run=not args.no_execute)
        return 0
    if args.cmd == "grade":
        grades = [grade_notebook(p, timeout=args.timeout) for p in args.notebooks]
        print(as_json(grades) if args.json else table(grades))
        return 0
    if args.cmd == "bundle":
        files = write_bundle(args.out, force=args.force)
        print(f"wrote {args.out}: {len(files)} files, without solutions/ and tests/")
        return 0
    if args.cmd == "syllabus":
        if args.check:
            ok = syllabus.is_current()
            print("docs/syllabus.md is current" if ok else "docs/syllabus.md is stale: run "
                  "`python -m cmtutor.nbtools syllabus`")
            return 0 if ok else 1
        print(f"wrote {syllabus.write().relative_to(syllabus.ROOT)}")
        return 0
    problems = out_of_sync()
    for p in problems:
        print(p, file=sys.stderr)
    print("notebooks/ is in sync with solutions/" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
