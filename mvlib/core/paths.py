"""Where things live. Every path resolves from the repository root, whatever the cwd."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def store() -> Path:
    """Run store for data sets and runs (outside git); MVLIB_STORE overrides `runs/`
    (a relative MVLIB_STORE is taken from the repository root, as every path here)."""
    return (REPO / os.environ.get("MVLIB_STORE", "runs")).resolve()


def realdata() -> Path:
    """Real mammograms for tests: `shared/realdata` beside the repository (MVLIB_REALDATA
    overrides). Never copied into the project."""
    return Path(os.environ.get("MVLIB_REALDATA", REPO.parent / "shared" / "realdata"))


def figures(tag: str) -> Path:
    """Committed figures come from the laptop profile on the synthetic data (tag `laptop`);
    other profiles and data sets (tags like `paper`, `laptop-rsna-1a2b3c`) write beside
    their runs."""
    path = REPO / "figures" if tag == "laptop" else store() / tag / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path


# The verdict files in a figures folder (one claim or instrument per row) that a re-run's
# summary counts and `python -m mvlib stability` compares between re-runs.
VERDICT_FILES = ("verdicts", "reliance_claims", "testbed", "table7_claims", "interaction",
                 "interaction_table7")
