"""The LCA runs' set-up (Appendix A) at each profile."""

import dataclasses

import pytest

from mvlib import experiments, profiles
from mvlib.data.loader import train_loader
from mvlib.data.prepare import prepare


@pytest.mark.parametrize("iterations, k", [(485, 60), (180, 60), (12, 4), (7, 2), (2, 1)])
def test_lca_windows_are_the_papers_60_iterations_or_a_third_of_a_short_epoch(iterations, k):
    # The paper's 970 exams make about 485 iterations at batch 4: 9 windows of up to 60.
    assert experiments.lca_window(iterations) == k


def test_lca_setup_trains_shrunken_epochs_for_the_profiles_regular_epochs():
    prof = profiles.get("smoke")
    setup = experiments.lca_setup(prof)
    data = prepare("synthetic", "smoke", progress=False)
    shrunk = len(train_loader(data, 0, channels=1, fraction=0.1))
    regular = len(train_loader(data, 0, channels=1))
    assert setup["epoch_fraction"] == 0.1
    assert shrunk < regular / 5  # 10% of the positive and of the negative exams
    assert setup["epochs_override"] == 1 * 10  # at least one regular epoch's worth
    # the paper's share of training (6 of 100 epochs), at least one epoch's worth
    for epochs, regular in ((1, 1), (5, 1), (24, 1), (25, 2), (100, 6), (150, 9)):
        p = dataclasses.replace(prof, epochs=epochs)
        assert experiments.lca_setup(p)["epochs_override"] == regular * 10, epochs
    assert setup["val_every"] == 10  # validated once per regular epoch's worth
    assert setup["lca_every"] == experiments.lca_window(shrunk)
    cfg = experiments.config(prof, "joint", 1e-5, 0, "dynamics", **setup)
    assert (cfg.epochs, cfg.epoch_fraction, cfg.lca_every) == (
        setup["epochs_override"], 0.1, setup["lca_every"])
