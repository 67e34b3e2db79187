"""Repository-wide pytest setup (applies to `pytest --nbval notebooks/` as well as `pytest tests/`).

Notebook kernels started by nbval inherit this process's environment; putting the repository root on
PYTHONPATH makes them import *this checkout's* cmtutor, whatever else is installed. Matplotlib draws
off-screen, and PyTorch uses at most 2 threads so timings match the course's reference machine.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
os.environ.setdefault("PYTHONHASHSEED", "0")
