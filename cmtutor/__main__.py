"""``python -m cmtutor``: the command line (see :mod:`cmtutor.cli`)."""

from cmtutor.cli import main

raise SystemExit(main())
