"""Shared fixtures: the real NYU sample mammograms (skipped when absent)."""

import pytest

from mvlib.paths import realdata

REAL = realdata() / "nyu_sample"
REAL_STEMS = ("1_L_CC", "1_R_CC", "2_L_CC", "2_R_CC")


@pytest.fixture(scope="session")
def real_flips() -> dict[str, str]:
    """horizontal_flip of every image stem in the sample's exam list (via the NYU adapter)."""
    if not REAL.is_dir():
        pytest.skip(f"real sample images not present at {REAL}")
    from mvlib.data.adapters.nyu import read_exam_list

    exams = read_exam_list(REAL / "exam_list_before_cropping.pkl")
    return {stem: exam["horizontal_flip"] for exam in exams
            for key in ("L-CC", "R-CC", "L-MLO", "R-MLO") for stem in exam.get(key, [])}
