"""Repository-wide pytest setup (applies to `pytest --nbval notebooks/` as well as `pytest tests/`).

Notebook kernels started by nbval inherit this process's environment; putting the repository root on
PYTHONPATH makes them import *this checkout's* cmtutor, whatever else is installed. ``MPLBACKEND`` is removed
from that environment: a headless server or CI image often sets it to ``Agg``, and a kernel that inherits it
shows no figures, so every cell that draws one would differ from its stored output.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
os.environ.setdefault("PYTHONHASHSEED", "0")
os.environ.pop("MPLBACKEND", None)  # kernels use their inline backend (module docstring)
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under pytest-xdist (`quickstart test` runs 2 workers on 2 cores) each worker, and the notebook kernels and
    # command-line processes it starts, computes on one thread: two workers with two threads each on 2 cores
    # oversubscribe them, and torch's thread pool then wastes far more time waiting than it saves.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")


def _order(item: object) -> int:
    path = Path(str(item.fspath))  # type: ignore[attr-defined]
    if path.suffix == ".ipynb":
        return 0
    return 1 if path.name == "test_browser.py" else 2


def pytest_collection_modifyitems(items: list) -> None:
    """Notebooks first, then the browser test (tests/test_browser.py), then the other tests.

    The browser test re-runs notebooks in JupyterLab: after nbval's run their models are cached. Under
    pytest-xdist (``--dist loadfile --no-loadscope-reorder``) files are handed out in this order: the long
    notebooks and the browser test start early, and the many short test modules fill both workers at the end.
    A stable sort, so the order within each group (and within each file) is kept.
    """
    items.sort(key=_order)
