"""Repository-wide pytest setup (applies to `pytest --nbval notebooks/` as well as `pytest tests/`).

Notebook kernels started by nbval inherit this process's environment; putting the repository root on
PYTHONPATH makes them import *this checkout's* cmtutor, whatever else is installed. Deliberately
nothing else is set here: in particular not MPLBACKEND, which would stop kernels from showing inline figures.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
os.environ.setdefault("PYTHONHASHSEED", "0")


def pytest_collection_modifyitems(items: list) -> None:
    """Run the browser test (tests/test_browser.py) last: by then the notebooks have cached their models."""
    items.sort(key=lambda item: Path(str(item.fspath)).name == "test_browser.py")
