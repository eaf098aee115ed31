"""Where things live. Every path resolves from the repository root, whatever the cwd."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def store() -> Path:
    """Run store for data sets and runs (outside git); MVLIB_STORE overrides `runs/`."""
    return Path(os.environ.get("MVLIB_STORE", REPO / "runs"))


def figures(profile: str) -> Path:
    """Committed figures come from the laptop profile; other profiles write beside their runs."""
    path = REPO / "figures" if profile == "laptop" else store() / profile / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path
