"""The LCA runs' set-up (Appendix A) at each profile."""

import dataclasses

import pytest

from mvlib.data.loader import train_loader
from mvlib.experiment import profiles
from mvlib.experiment.prepare import prepare
from mvlib.study import protocol, training_dynamics


@pytest.mark.parametrize("iterations, k", [(485, 60), (180, 60), (12, 4), (7, 2), (2, 1)])
def test_lca_windows_are_the_papers_60_iterations_or_a_third_of_a_short_epoch(iterations, k):
    # The paper's 970 exams make about 485 iterations at batch 4: 9 windows of up to 60.
    assert training_dynamics.lca_window(iterations) == k


def test_lca_setup_trains_shrunken_epochs_for_the_profiles_regular_epochs():
    prof = profiles.get("smoke")
    setup = training_dynamics.lca_setup(prof)
    data = prepare("synthetic", "smoke", progress=False)
    shrunk = len(train_loader(data, 0, channels=1, fraction=0.1))
    regular = len(train_loader(data, 0, channels=1))
    assert setup["epoch_fraction"] == 0.1
    assert shrunk < regular / 5  # 10% of the positive and of the negative exams
    assert setup["epochs_override"] == 1 * 10  # at least one regular epoch's worth
    # the paper's share of training (6 of 100 epochs), at least one epoch's worth
    for epochs, regular in ((1, 1), (5, 1), (24, 1), (25, 2), (100, 6), (150, 9)):
        p = dataclasses.replace(prof, epochs=epochs)
        assert training_dynamics.lca_setup(p)["epochs_override"] == regular * 10, epochs
    assert setup["val_every"] == 10  # validated once per regular epoch's worth
    assert setup["lca_every"] == training_dynamics.lca_window(shrunk)
    cfg = protocol.config(prof, "joint", 1e-5, 0, "dynamics", **setup)
    assert (cfg.epochs, cfg.epoch_fraction, cfg.lca_every) == (
        setup["epochs_override"], 0.1, setup["lca_every"])


def test_notebook_02s_reading_compares_the_control_with_the_planted_cue_at_1e_4():
    import pandas as pd

    planted, control = training_dynamics.CONDITIONS
    row = {"iterations with |g_MLO| > |g_CC|": 0.6, "median |g_MLO| / |g_CC|": 1.2,
           "MLO share of the reduction": 0.55, "LCA CC": -0.1, "LCA MLO": -0.2,
           "LCA shared": 0.0, "max |error|": 1e-4, "mean Simpson sub-intervals": 2.0,
           "max |error|, RK4 only": 2e-3, "MLO share, RK4 only": 0.5}
    summary = pd.DataFrame([row, {**row, "iterations with |g_MLO| > |g_CC|": 0.3,
                                  "MLO share of the reduction": 0.4}],
                           index=pd.MultiIndex.from_tuples([(planted, 1e-4), (control, 1e-4)]))
    text = training_dynamics.dynamics_markdown(summary, testbed_seeds=3)
    assert f"* **{planted}, lr 0.0001.** MLO's gradient norm exceeds CC's in 60%" in text
    assert "MLO's gradient norm leads in 30% of iterations against 60% with the shortcut; " \
           "MLO's LCA share is 40% against 55%" in text and "with 3 seeds" in text
    assert "The control" not in training_dynamics.dynamics_markdown(summary.iloc[:1], 3)


def test_notebook_01s_reading_says_which_view_peaks_first():
    import pandas as pd

    from mvlib.study import uniview_curves

    runs = pd.DataFrame({"model": ["uni_cc", "uni_mlo", "uni_mlo"], "state": ["done"] * 3,
                         "best_epoch": [4, 1, 4]})
    summary = pd.DataFrame({"mean epoch of best val AUC (ours)": [4.0, 2.5],
                            "its learning rate": ["1e-4", "1e-4"],
                            "best val AUC (ours)": [0.9, 0.8], "its test AUC (ours)": [0.85, 0.7],
                            "test AUC (paper)": [0.864, 0.789]}, index=["CC", "MLO"])
    peaks = uniview_curves.uniview_peaks(runs, epochs=5)
    assert peaks.to_dict() == {"runs": {"CC": 1, "MLO": 2},
                               "at the last epoch": {"CC": 1, "MLO": 1}}
    text = uniview_curves.uniview_markdown(peaks, summary)
    assert "* **MLO:** best validation AUC at epoch 2.5 on average over 2 run(s), 1 of them " \
           "at the last epoch" in text
    assert "MLO at epoch 2.5 on average, CC at 4.0: MLO earlier here" in text
    assert "+0.150 (the paper: +0.075)" in text
