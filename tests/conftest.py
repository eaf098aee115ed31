"""Shared fixtures: the real NYU sample mammograms (skipped when absent)."""

from pathlib import Path

import pytest

from mvlib.paths import realdata

REAL = realdata() / "nyu_sample"
REAL_STEMS = ("1_L_CC", "1_R_CC", "2_L_CC", "2_R_CC")


@pytest.fixture(scope="session")
def real_dir() -> Path:
    """The folder of the real NYU sample (images, exam list); skips the test when absent."""
    if not REAL.is_dir():
        pytest.skip(f"real sample images not present at {REAL}")
    return REAL


@pytest.fixture(scope="session")
def real_stems() -> tuple[str, ...]:
    """The sample's image stems that the real-image tests use (the CC views of exams 1, 2)."""
    return REAL_STEMS


@pytest.fixture(scope="session")
def real_flips(real_dir) -> dict[str, str]:
    """horizontal_flip of every image stem in the sample's exam list (via the NYU adapter)."""
    from mvlib.data.adapters.nyu import read_exam_list

    exams = read_exam_list(real_dir / "exam_list_before_cropping.pkl")
    return {stem: exam["horizontal_flip"] for exam in exams
            for key in ("L-CC", "R-CC", "L-MLO", "R-MLO") for stem in exam.get(key, [])}
