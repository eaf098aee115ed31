"""mvlib.study.mechanism: every recipe on the planted and the control data, and the
interaction that decides whether a recipe counteracts the planted cue (a known answer:
scores drawn with set separations; the training is notebook 07's, under nbval)."""

import numpy as np
import pandas as pd
import pytest

from mvlib.experiment.profiles import PROFILES
from mvlib.experiment.runs import RunConfig
from mvlib.study import mechanism, training_dynamics

Y = np.r_[np.ones(41, int), np.zeros(279, int)]  # the laptop test split's size and prevalence


class FakeRun:
    """What interaction_table reads of a run: its state and test predictions."""

    def __init__(self, scores: np.ndarray, state: str = "done"):
        self.scores, self.state = scores, state

    def status(self):
        return {"state": self.state}

    @property
    def done(self):
        return self.state == "done"

    def predictions(self):
        return pd.DataFrame({"breast_id": np.arange(len(Y))[::-1], "malignant": Y[::-1],
                             "p_malignant": self.scores[::-1]})


def runs(rng, separation: float, n: int = 3) -> list[FakeRun]:
    u = rng.normal(0, 1, len(Y))
    return [FakeRun(separation * Y + u + rng.normal(0, 0.1) * Y + rng.normal(0, 1, len(Y)))
            for _ in range(n)]


# (planted, control) separations: Joint ResNet loses to the cue; Shared ResNet keeps its AUC
# (it counteracts the cue), Split ResNet loses more than Joint (it makes it worse), Modality
# Dropout loses as much (no interaction), uni-view MLO is at chance on the planted data.
SEPARATIONS = {"Joint ResNet": (1.6, 3.2), "Shared ResNet": (3.2, 3.2),
               "Split ResNet": (0.9, 3.2), "+ Modality Dropout": (1.6, 3.2),
               "uni-view MLO": (0.0, 1.0)}


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    planted, control = {}, {}
    for name, (p, c) in SEPARATIONS.items():
        planted[name], control[name] = runs(rng, p), runs(rng, c)
    return mechanism.interaction_table(planted, control)


def test_the_interaction_finds_which_recipe_counteracts_the_cue(table):
    assert table.loc["Shared ResNet", "verdict"] == "counteracts the planted cue"
    assert table.loc["Split ResNet", "verdict"] == "makes it worse"
    assert table.loc["+ Modality Dropout", "verdict"] == "no interaction detected at this budget"
    assert table.loc["uni-view MLO", "verdict"] == "not testable at this budget"
    assert "uni-view MLO on the planted data" in table.loc["uni-view MLO", "why"]
    shared = table.loc["Shared ResNet"]
    assert shared["interaction"] == pytest.approx(shared["effect planted"]
                                                  - shared["effect control"], abs=1e-12)
    assert shared["interaction lo"] > 0 and shared["effect control lo"] < 0 < shared[
        "effect control hi"]  # with no cue it is Joint ResNet's equal
    assert table.loc["Shared ResNet", "seeds (planted, control)"] == "3, 3"


def test_joint_resnets_row_is_the_cues_cost_to_it(table):
    j = table.loc["Joint ResNet"]
    assert j.verdict == "the cue's cost to Joint ResNet (planted - control)"
    assert j["interaction"] == pytest.approx(j["AUC planted"] - j["AUC control"], abs=1e-12)
    assert j["interaction hi"] < 0


def test_the_text_reads_the_table(table):
    text = mechanism.interaction_markdown(table)
    assert "the planted cue lowers Joint ResNet's test AUC" in text
    assert "* **Shared ResNet**: counteracts the planted cue (interaction +" in text
    assert "with no cue it neither gains nor costs detectably" in text
    assert "* **uni-view MLO**: not testable at this budget (" in text


def test_two_views_against_one_with_no_cue_is_read_off_uni_view_cc():
    rng = np.random.default_rng(1)
    seps = {"Joint ResNet": (1.2, 2.4), "uni-view CC": (2.4, 1.6)}
    planted = {k: runs(rng, p) for k, (p, _) in seps.items()}
    control = {k: runs(rng, c) for k, (_, c) in seps.items()}
    text = mechanism.interaction_markdown(mechanism.interaction_table(planted, control))
    assert "On the control, Joint ResNet - uni-view CC = +" in text
    assert ": two views beat one." in text


def test_a_recipe_without_finished_control_runs_is_not_tested():
    rng = np.random.default_rng(2)
    planted = {"Joint ResNet": runs(rng, 1.0), "Shared ResNet": runs(rng, 1.0)}
    control = {"Joint ResNet": runs(rng, 1.0),
               "Shared ResNet": [FakeRun(np.zeros(len(Y)), "diverged")]}
    t = mechanism.interaction_table(planted, control)
    assert t.loc["Shared ResNet", "verdict"] == "not tested"


def test_a_control_config_switches_the_cue_off_and_keeps_the_setting():
    cfg = RunConfig(model="joint", lr=3e-4, seed=2, epochs=7, profile="smoke",
                    group_lr={"cc": 1e-4, "mlo": 1e-5, "shared": 1e-4},
                    knobs={"patients": {"train": 12, "val": 10, "test": 6}})
    c = mechanism.control_config(cfg)
    assert c.knobs == {"patients": {"train": 12, "val": 10, "test": 6},
                       **training_dynamics.CONDITIONS[mechanism.CONTROL]}
    assert (c.lr, c.seed, c.epochs, c.group_lr) == (cfg.lr, cfg.seed, cfg.epochs, cfg.group_lr)
    assert c.experiment == "control" and c.digest() != cfg.digest()
    pre = RunConfig(model="joint", lr=1e-4, epochs=1, init_from={"cc": "a", "mlo": "b"},
                    finetune="output")
    assert mechanism.control_config(pre, {"cc": "a", "mlo": "c"}).init_from == {
        "cc": "a", "mlo": "c"}


def test_the_control_leaves_the_cc_images_as_they_are(tmp_path, monkeypatch):
    monkeypatch.setenv("MVLIB_STORE", str(tmp_path))
    assert mechanism.cc_unchanged(PROFILES["smoke"])


def test_table1s_recipes_need_no_table2_search_and_real_data_has_no_control(monkeypatch):
    calls = []
    monkeypatch.setattr(mechanism.protocol, "table1_final",
                        lambda prof, ex, st, names: calls.append(("t1", names)) or {
                            n: [] for n in names})
    monkeypatch.setattr(mechanism.protocol, "regularizers",
                        lambda *a: calls.append(("t2",)) or (None, {}))
    mechanism.planted_runs(PROFILES["smoke"], mechanism.TABLE1_RECIPES)
    assert calls == [("t1", mechanism.TABLE1_RECIPES)]  # notebook 03 trains no Table 2 run
    calls.clear()
    mechanism.planted_runs(PROFILES["smoke"], ("Joint ResNet", "+ Modality Dropout"))
    assert calls == [("t1", ("Joint ResNet",)), ("t2",)]
    real = PROFILES["smoke"].__class__(**{**PROFILES["smoke"].__dict__, "dataset": "rsna"})
    assert mechanism.interaction(real) is None
    with pytest.raises(ValueError, match="synthetic only"):
        mechanism.control_runs(real)


def test_one_run_on_a_condition_decides_nothing_and_shared_runs_count_once():
    rng = np.random.default_rng(3)
    planted = {"Joint ResNet": runs(rng, 1.2), "Shared ResNet": runs(rng, 2.4, n=1),
               "uni-view CC": runs(rng, 2.0)}
    control = {"Joint ResNet": runs(rng, 2.4), "Shared ResNet": runs(rng, 2.4, n=1),
               "uni-view CC": planted["uni-view CC"]}  # the same runs serve both conditions
    t = mechanism.interaction_table(planted, control)
    assert t.loc["Shared ResNet", "verdict"].startswith("not tested: a condition has one run")
    cc, j = t.loc["uni-view CC"], t.loc["Joint ResNet"]
    assert cc["interaction"] == pytest.approx(-j["interaction"], abs=1e-12)
    assert cc["interaction lo"] == pytest.approx(-j["interaction hi"], abs=1e-12)
    assert "* **Shared ResNet**: not tested" in mechanism.interaction_markdown(t)


def test_the_correlation_is_read_on_each_condition_with_words_from_the_numbers(monkeypatch):
    planted_ids, control_ids = ["p"] * 12, ["c"] * 12
    monkeypatch.setattr(mechanism, "planted_runs", lambda *a, **k: {"Joint ResNet": planted_ids})
    monkeypatch.setattr(mechanism, "control_runs", lambda *a, **k: {"Joint ResNet": control_ids})
    x = np.arange(12.0)

    def per_run(groups):  # planted: AUC falls as s_mlo rises; control: no relation
        runs = groups["Joint ResNet"]
        auc = 0.9 - 0.01 * x if runs[0] == "p" else 0.8 + 0.01 * np.array(
            [3, 9, 1, 7, 5, 11, 0, 8, 2, 10, 4, 6]) * (-1) ** x
        return pd.DataFrame({"s_mlo (train)": x, "test AUC": auc})

    monkeypatch.setattr(mechanism.reliance, "dependence_generalisation", per_run)
    t = mechanism.correlation_by_condition(PROFILES["smoke"])
    assert list(t.index) == ["planted", "control"]
    assert t.loc["planted", "rho"] == pytest.approx(-1.0) and t.loc["planted", "n"] == 12
    assert abs(t.loc["control", "rho"]) < 0.5
    text = mechanism.correlation_markdown(t)
    assert "on the planted data rho = -1.00 over 12 runs" in text and ": negative" in text
    assert "not distinguishable from 0 at this budget" in text
