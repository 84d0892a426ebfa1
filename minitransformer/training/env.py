"""The two switches the environment sets, read in one place.

- `QUICK=1` (set by `make nbtest` and CI): every command and notebook runs a small fraction of its budget, on
  the `-quick` checkpoints, and writes its tables to the git-ignored `data/results/`.
- `CI` (set by CI) or `QUICK=1`: no progress bars, so logs stay short.
"""

from __future__ import annotations

import os


def is_quick(quick: bool | None = None) -> bool:
    """`quick` when given, else the environment: QUICK=1 means quick."""
    return os.environ.get("QUICK") == "1" if quick is None else bool(quick)


def show_progress(progress: bool | None = None) -> bool:
    """`progress` when given, else on unless QUICK=1 or CI is set."""
    if progress is not None:
        return bool(progress)
    return not (is_quick() or os.environ.get("CI"))
