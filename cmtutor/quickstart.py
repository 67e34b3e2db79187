"""Set up the course's environment and open it, or run every test: the README's two commands.

    python3 -m cmtutor.quickstart course   # set up ./.venv if needed, open JupyterLab on notebook 00
    python3 -m cmtutor.quickstart test     # set up ./.venv if needed, run the whole test suite

Standard library only: this module runs with a bare Python 3.10+ before anything is installed (the
package's ``__init__`` imports nothing). The environment is a virtual environment in ``.venv`` at the
repository root; it is (re)installed whenever ``pyproject.toml`` changed since the last install, so
both commands are cheap after the first run. Set ``CMTUTOR_VENV`` to use another location.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRST_NOTEBOOK = "notebooks/00_course_map.ipynb"
#: Worker processes of the test suite (pytest-xdist). The suite is mostly single-threaded (notebook kernels,
#: command-line subprocesses, small models; each worker's torch gets one thread, see the root conftest.py),
#: so two workers use both cores of the 2-core machine the course is sized for.
TEST_WORKERS = 2
#: The full test command, run inside the environment from the repository root. ``--dist loadfile`` keeps each
#: file (a notebook's cells, a module's tests) on one worker, in order; ``--no-loadscope-reorder`` hands the
#: files out in the order of the root conftest.py: notebooks first, then the browser test, then the rest.
TEST_COMMAND = ["-m", "pytest", "--nbval", "--durations=20", "-n", str(TEST_WORKERS), "--dist", "loadfile",
                "--no-loadscope-reorder", "tests", "notebooks"]


def venv_dir() -> Path:
    return Path(os.environ.get("CMTUTOR_VENV", ROOT / ".venv"))


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _stamp_value() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def ensure_environment() -> Path:
    """Create ``.venv`` and install cmtutor with its test extra unless already up to date."""
    if sys.version_info < (3, 10):
        sys.exit(f"cmtutor needs Python 3.10 or newer; this is {sys.version.split()[0]}")
    venv = venv_dir()
    py = venv_python(venv)
    if not py.exists():
        print(f"[cmtutor] creating a virtual environment in {venv}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    stamp = venv / ".cmtutor-installed"
    if not stamp.exists() or stamp.read_text().strip() != _stamp_value():
        print("[cmtutor] installing cmtutor and its dependencies (first run: a few minutes, PyTorch is large)",
              flush=True)
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "-e", f"{ROOT}[test]"], check=True, cwd=ROOT)
        stamp.write_text(_stamp_value() + "\n")
    return py


def run_tests(extra: list[str]) -> int:
    py = ensure_environment()
    cmd = [str(py), *TEST_COMMAND, *extra]
    print("[cmtutor] " + " ".join(["python", *TEST_COMMAND, *extra]), flush=True)
    return subprocess.call(cmd, cwd=ROOT)


def lab_command(py: Path, extra: list[str], is_root: bool) -> list[str]:
    """JupyterLab on the first notebook; as root (a Docker container, typically) with ``--allow-root``, without
    which JupyterLab refuses to start."""
    root = ["--allow-root"] if is_root and "--allow-root" not in extra else []
    return [str(py), "-m", "jupyterlab", FIRST_NOTEBOOK, *root, *extra]


def open_course(extra: list[str]) -> int:
    py = ensure_environment()
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if is_root:
        print("[cmtutor] running as root (a container?): starting JupyterLab with --allow-root", flush=True)
    print("[cmtutor] starting JupyterLab on " + FIRST_NOTEBOOK + " (Ctrl+C to stop)", flush=True)
    return subprocess.call(lab_command(py, extra, is_root), cwd=ROOT)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("course", "test"):
        print(__doc__.strip().split("\n\n")[1])
        return 2
    return open_course(args[1:]) if args[0] == "course" else run_tests(args[1:])


if __name__ == "__main__":
    raise SystemExit(main())
