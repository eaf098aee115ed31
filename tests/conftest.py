"""Shared fixtures: the real NYU sample mammograms (skipped when absent)."""

from pathlib import Path

import pytest

from mvlib.core.paths import realdata

REAL = realdata() / "nyu_sample"
REAL_STEMS = ("1_L_CC", "1_R_CC", "2_L_CC", "2_R_CC")


@pytest.fixture(scope="session")
def real_dir() -> Path:
    """The folder of the real NYU sample (images, exam list); skips the test when absent."""
    if not REAL.is_dir():
        pytest.skip(f"real sample images not present at {REAL}")
    return REAL


@pytest.fixture(scope="session")
def patch_weights(tmp_path_factory) -> Path:
    """A weights file of the heatmaps' patch classifier with random weights (seed 0), in the
    published file's format (a state_dict), for tests that cannot have the real ones."""
    import torch

    from mvlib.models.patch_densenet import patch_classifier

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "random_patch_model.p"
    torch.save(patch_classifier().state_dict(), path)
    return path


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


# The longest test files, started first so that the other worker takes the rest meanwhile
# (`make test` runs three workers with --dist loadfile --no-loadscope-reorder; xdist's default
# order, most tests first, started the longest single test last).
LONGEST_FIRST = ("test_slurm_time_limit.py", "test_slurm.py", "test_paper_size.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within each file, and of the others, is kept
