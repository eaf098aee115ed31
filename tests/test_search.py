"""Appendix B sampling and the search-then-repeat protocol (with a stand-in executor)."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from mvlib.engine.search import log_uniform, results, winner
from mvlib.experiment import profiles
from mvlib.experiment.runs import RunDir
from mvlib.study import protocol, uniview_curves


def test_log_uniform_is_reproducible_sorted_and_in_range():
    a = log_uniform(1e-5, 1e-3, 10, seed=3)
    assert a == log_uniform(1e-5, 1e-3, 10, seed=3) != log_uniform(1e-5, 1e-3, 10, seed=4)
    assert a == sorted(a) and len(a) == 10
    assert all(1e-5 <= v <= 1e-3 for v in a)
    logs = np.log10(log_uniform(1e-5, 1e-3, 2000, seed=0))
    assert abs(np.mean(logs) - (-4)) < 0.05  # uniform in log space, centred on 1e-4


def test_winner_uses_mean_validation_auc_and_skips_diverged():
    t = pd.DataFrame({"lr": [1, 1, 2, 2, 3], "state": ["done", "done", "done", "done", "diverged"],
                      "val_auc": [0.9, 0.5, 0.7, 0.72, math.nan]})
    assert winner(t) == 2  # mean 0.71 beats 0.70; the diverged rate cannot win
    with pytest.raises(ValueError, match="diverged"):
        winner(t.assign(state="diverged"))


class FakeExecutor:
    """Writes a finished status for each config: val AUC peaks at lr 3e-4, varies by seed."""

    def __init__(self):
        self.calls = []

    def run(self, configs, store):
        self.calls.append(len(configs))
        for cfg in configs:
            run = RunDir(cfg, store)
            run.create()
            val = 0.9 - abs(math.log10(cfg.lr) - math.log10(3e-4)) / 10 + 0.001 * cfg.seed
            run.set_status(state="done", best_epoch=1, best_val_auc=val, test_auc=val - 0.05)


def test_search_then_repeat_reuses_the_search_runs(tmp_path):
    prof = dataclasses.replace(profiles.get("smoke"), lr_samples=3)
    groups = {"Joint ResNet": protocol.lr_settings(prof, "joint", "variants"),
              "uni-view CC": protocol.lr_settings(prof, "uni_cc", "uniview")}
    ex = FakeExecutor()
    search, final = protocol.search_then_repeat(prof, groups, ex, tmp_path)
    assert len(search) == len(groups) * prof.lr_samples * prof.search_seeds
    for name in groups:
        part = search[search.group == name]
        best = part.loc[part.val_auc.idxmax(), "lr"]
        assert [r.cfg.lr for r in final[name]] == [best] * prof.seeds
        assert [r.cfg.seed for r in final[name]] == list(range(prof.seeds))
    # Second sweep trains only the seeds the search did not already run.
    assert ex.calls == [len(search), len(groups) * (prof.seeds - prof.search_seeds)]
    again = FakeExecutor()
    protocol.search_then_repeat(prof, groups, again, tmp_path)
    assert again.calls == []  # everything is in the store


def test_results_table_reads_the_run_folders(tmp_path):
    prof = profiles.get("smoke")
    cfg = protocol.config(prof, "joint", 1e-4, 0, "variants")
    FakeExecutor().run([cfg], tmp_path)
    t = results([RunDir(cfg, tmp_path)])
    assert t.loc[0, "state"] == "done" and t.loc[0, "lr"] == 1e-4


def test_uniview_summary_picks_each_views_best_validation_run():
    t = pd.DataFrame({"model": ["uni_cc", "uni_cc", "uni_mlo", "uni_mlo"],
                      "lr": [1e-4, 1e-3, 1e-4, 1e-3], "state": ["done"] * 3 + ["diverged"],
                      "best_epoch": [4, 2, 1, None], "val_auc": [0.8, 0.9, 0.7, None],
                      "test_auc": [0.85, 0.88, 0.72, None]})
    s = uniview_curves.uniview_summary(t)
    assert s.loc["CC", "its test AUC (ours)"] == 0.88
    assert s.loc["CC", "its learning rate"] == "0.001"
    assert s.loc["CC", "mean epoch of best val AUC (ours)"] == 4.0  # (4 + 2) / 2 + 1
    assert s.loc["MLO", "its test AUC (ours)"] == 0.72  # the diverged run is ignored
    assert s.loc["CC", "test AUC (paper)"] == 0.864 and s.loc["MLO", "test AUC (paper)"] == 0.789


def test_winner_falls_back_to_validation_loss_when_no_auc_is_defined():
    t = pd.DataFrame({"lr": [1, 1, 2, 2], "state": ["done"] * 4, "val_auc": [math.nan] * 4,
                      "val_loss": [0.9, 0.7, 0.6, 0.8]})
    assert winner(t) == 2  # mean loss 0.70 beats 0.80


def test_summary_of_no_groups_is_an_empty_table():
    s = protocol.summary({}, {})
    assert s.empty and "AUC (ours)" in s.columns


def test_uniview_summary_falls_back_to_validation_loss_without_auc():
    t = pd.DataFrame({"model": ["uni_cc", "uni_cc", "uni_mlo"], "lr": [1e-4, 1e-3, 1e-4],
                      "state": ["done"] * 3, "best_epoch": [1, 2, 0],
                      "val_auc": [math.nan] * 3, "val_loss": [0.9, 0.7, 0.8],
                      "test_auc": [0.6, 0.65, 0.55]})
    s = uniview_curves.uniview_summary(t)
    assert s.loc["CC", "its test AUC (ours)"] == 0.65  # the lower validation loss
