"""Sweep progress for a driver outside this process: the executors write it, `make
reproduce` (mvlib.tools.notebooks) shows it while a notebook runs."""

from __future__ import annotations

import os
from pathlib import Path

from mvlib.core.atomic import write_json


def report(done: int, total: int, **states: int) -> None:
    """The current sweep's progress, written to $MVLIB_PROGRESS when that is set."""
    if path := os.environ.get("MVLIB_PROGRESS"):
        write_json(Path(path), {"done": done, "total": total, **states})
