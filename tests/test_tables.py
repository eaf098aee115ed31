"""Notebook 07's verdicts: intervals of the difference between two groups of runs."""

import json

import numpy as np
import pandas as pd
import pytest

from mvlib.study import claims, protocol, tables
from mvlib.study.claims import Claim, verdict


def store_with(tmp_path, groups: dict[str, list[np.ndarray]], y: np.ndarray):
    """Fake run folders holding test predictions, and a Table 1 whose rows list them."""
    rows = {}
    for name, runs in groups.items():
        refs = []
        for i, score in enumerate(runs):
            ref = f"t/{name.replace(' ', '_')}-{i}"
            (tmp_path / ref).mkdir(parents=True)
            pd.DataFrame({"breast_id": np.arange(len(y)), "malignant": y,
                          "p_malignant": score}).to_csv(tmp_path / ref / "predictions.csv",
                                                        index=False)
            (tmp_path / ref / "config.json").write_text(json.dumps({"seed": i}))
            refs.append(ref)
        rows[name] = {"runs": ";".join(refs)}
    return {"Table 1": pd.DataFrame(rows).T, "Table 2": pd.DataFrame(rows).T}


def seeds(rng, y, separation, n=5, noise=1.0):
    u = rng.normal(0, 1, len(y))  # what every model sees of a breast
    return [separation * y + u + noise * rng.normal(0, 1, len(y)) for _ in range(n)]


BEATS = Claim("Shared ResNet beats Joint ResNet", ("Table 1", "Shared ResNet"),
              ("Table 1", "Joint ResNet"), "03")
NO_GAIN = Claim("Split Learning Rates do not improve Joint ResNet",
                ("Table 2", "+ Split Learning Rates"), ("Table 2", "Joint ResNet"), "04",
                beats=False)
Y = np.r_[np.ones(60, int), np.zeros(140, int)]


@pytest.mark.parametrize("shared, expected", [
    (3.0, "holds"), (0.5, "contradicted"), (1.5, "inconclusive at this budget")])
def test_a_beats_claim_is_judged_by_the_interval_of_the_difference(tmp_path, shared, expected):
    rng = np.random.default_rng(0)
    t = store_with(tmp_path, {"Shared ResNet": seeds(rng, Y, shared),
                              "Joint ResNet": seeds(rng, Y, 1.5)}, Y)
    v = verdict(BEATS, t, tmp_path)
    assert v["verdict"] == expected, v["why"]
    assert v["paper (A vs B)"] == "0.879 vs 0.872"
    assert v["lo"] <= v["diff"] <= v["hi"] and 0 <= v["p"] <= 1
    assert "95% interval" in v["why"] and "detectable with 80% power" in v["why"]
    assert 0 <= v["seed_share"] <= 1 and v["mdd"] > (v["hi"] - v["lo"]) / 2  # 2.8 se > 2 se


@pytest.mark.parametrize("split_lrs, expected", [
    (0.5, "consistent"), (3.0, "contradicted"), (1.5, "inconclusive at this budget")])
def test_a_no_gain_claim_is_consistent_below_the_margin(tmp_path, split_lrs, expected):
    rng = np.random.default_rng(1)
    t = store_with(tmp_path, {"+ Split Learning Rates": seeds(rng, Y, split_lrs),
                              "Joint ResNet": seeds(rng, Y, 1.5)}, Y)
    assert verdict(NO_GAIN, t, tmp_path)["verdict"] == expected


def test_groups_not_run_or_without_finished_runs_are_not_tested(tmp_path):
    assert verdict(BEATS, {})["verdict"] == "not tested"
    assert verdict(BEATS, {})["why"] == ("no runs in this reproduction: Table 1 / Shared ResNet, "
                                         "Table 1 / Joint ResNet (the notebook that trains them "
                                         "says why)")
    rng = np.random.default_rng(2)
    t = store_with(tmp_path, {"Shared ResNet": [], "Joint ResNet": seeds(rng, Y, 1.0)}, Y)
    assert verdict(BEATS, t, tmp_path)["verdict"] == "not tested"


def test_a_claim_about_a_model_at_chance_is_not_testable(tmp_path):
    """One rule for every claim: a recipe whose test AUC interval reaches 0.5 tests nothing,
    even where its difference from the other recipe would be decided."""
    rng = np.random.default_rng(5)
    t = store_with(tmp_path, {"Shared ResNet": seeds(rng, Y, 0.0, n=3),
                              "Joint ResNet": seeds(rng, Y, 2.0, n=3)}, Y)
    v = verdict(BEATS, t, tmp_path)
    assert v["verdict"] == "not testable at this budget"
    assert v["why"].startswith("Shared ResNet: test AUC") and "includes 0.5" in v["why"]


def test_a_test_split_without_both_classes_leaves_the_claim_not_tested(tmp_path):
    """A small real test split can hold no malignant breast: no AUC, no verdict, no crash."""
    y = np.zeros(6, dtype=int)
    rng = np.random.default_rng(6)
    t = store_with(tmp_path, {"Shared ResNet": [rng.normal(size=6) for _ in range(3)],
                              "Joint ResNet": [rng.normal(size=6) for _ in range(3)]}, y)
    v = verdict(BEATS, t, tmp_path)
    assert v["verdict"] == "not tested" and "0 positive" in v["why"]


def test_weight_volatility_compares_the_windows_of_each_measure():
    t4 = pd.DataFrame({"measure": ["loss", "loss", "auc", "auc"],
                       "window": ["[0, 100]", "[90, 100]"] * 2,
                       "w_joint": [0.3, 0.3, 0.2, 0.6], "w_cc": [0.3, 0.4, 0.4, 0.2],
                       "w_mlo": [0.4, 0.3, 0.4, 0.2], "from": [0, 90, 0, 90],
                       "to": [100, 100, 100, 100], "note": ""}).set_index(["measure", "window"])
    v = claims.weight_volatility(t4)
    assert v["verdict"] == "descriptive: as the paper" and v["ours (A vs B)"] == "0.400 vs 0.100"
    swapped = t4.rename(index={"loss": "auc", "auc": "loss"}, level=0)
    assert claims.weight_volatility(swapped)["verdict"] == "descriptive: unlike the paper"
    # A one-epoch late window, or weights that a guard set, cannot show volatility.
    short = t4.assign(**{"from": [0, 4, 0, 4], "to": [5] * 4})
    v = claims.weight_volatility(short)
    assert v["verdict"] == "not testable at this budget" and "spans 1 epoch" in v["why"]
    noisy = t4.copy()
    noisy.loc[("auc", "[90, 100]"), "note"] = "at noise level: cc's G +0.03 [-0.01, +0.07]"
    v = claims.weight_volatility(noisy)
    assert v["verdict"] == "not testable at this budget" and "auc over [90, 100]" in v["why"]
    undefined = t4.copy()
    undefined.loc[("loss", "[0, 100]"), ["w_joint", "w_cc", "w_mlo"]] = np.nan
    v = claims.weight_volatility(undefined)
    assert v["verdict"] == "not testable at this budget" and "loss over [0, 100]" in v["why"]


GB = Claim("Gradient Blending does not improve Joint ResNet",
           ("Table 2", "+ Gradient Blending"), ("Table 2", "Joint ResNet"), "05", beats=False)


def test_gradient_blending_without_usable_weights_is_not_testable(tmp_path):
    rng = np.random.default_rng(3)
    t = store_with(tmp_path, {"Joint ResNet": seeds(rng, Y, 1.5, n=3)}, Y)
    t4 = pd.DataFrame({"measure": ["loss", "auc"], "window": ["[0, 100]"] * 2,
                       "w_joint": [np.nan, 0.2], "w_cc": [np.nan, 0.3], "w_mlo": [np.nan, 0.5],
                       "note": ["undefined: joint has G = -0.1 <= 0",
                                "at noise level: mlo's G +0.2 [-0.1, +0.5] reaches 0"]}
                      ).set_index(["measure", "window"])
    v = verdict(GB, {**t, "Table 4": t4}, tmp_path)
    assert v["verdict"] == "not testable at this budget"
    assert "joint has G = -0.1" in v["why"] and "mlo's G +0.2" in v["why"]
    judged = claims.claim_verdicts({"Table 2": t["Table 2"], "Table 4": t4}, "Table 2", tmp_path)
    assert judged.loc[GB.text, "verdict"] == "not testable at this budget"
    # with a usable estimate but no runs yet, the claim is simply not tested
    t4.loc[("auc", "[0, 100]"), "note"] = ""
    assert verdict(GB, {**t, "Table 4": t4}, tmp_path)["verdict"] == "not tested"


def table5_store(tmp_path, separations, n=3, seed=4):
    rng = np.random.default_rng(seed)
    t = store_with(tmp_path, {k: seeds(rng, Y, s, n=n) for k, s in separations.items()}, Y)
    t5 = t["Table 1"].assign(note="")
    return {"Table 5": t5}


SETS = ("equal weights", "loss", "loss, swapped", "AUC", "AUC, swapped")


@pytest.mark.parametrize("seps, same, best", [
    ((1.5, 1.5, 1.5, 1.5, 1.5), "inconclusive at this budget", "inconclusive at this budget"),
    ((3.0, 1.0, 1.0, 1.0, 1.0), "contradicted", "holds"),
    ((1.0, 1.0, 1.0, 3.0, 1.0), "contradicted", "contradicted"),
])
def test_table5_statements_are_judged_against_equal_weights(tmp_path, seps, same, best):
    t = table5_store(tmp_path, dict(zip(SETS, seps, strict=True)))
    first, second = claims.table5_claims(t, tmp_path)
    assert first["claim"] == "Table 5: the weightings do not differ significantly"
    assert (first["verdict"], second["verdict"]) == (same, best), (first["why"], second["why"])
    assert "Bonferroni over 4 sets" in first["why"] and "98.8% interval" in first["why"]
    assert first["paper (A vs B)"] == "0.870 vs 0.853/0.858/0.868/0.868"
    if best == "contradicted":
        assert "(AUC)" in second["ours (A vs B)"]  # the set that beat equal weights


def test_table5_statements_need_models_above_chance_and_several_seeds(tmp_path):
    t = table5_store(tmp_path, dict(zip(SETS, (1.5, 1.5, 0.0, 1.5, 1.5), strict=True)))
    assert {r["verdict"] for r in claims.table5_claims(t, tmp_path)} == {
        "not testable at this budget"}
    one = table5_store(tmp_path / "one", dict(zip(SETS, (1.5,) * 5, strict=True)), n=1)
    assert {r["verdict"] for r in claims.table5_claims(one, tmp_path / "one")} == {"not tested"}
    assert {r["verdict"] for r in claims.table5_claims({}, tmp_path)} == {"not tested"}


def test_an_empty_table_renders_as_a_note():
    from mvlib.study import plots
    fig = plots.render_table(pd.DataFrame(columns=["AUC (ours)"]), "Table 3")
    assert "no rows" in fig.axes[0].texts[0].get_text()


def test_summary_markdown_states_each_groups_numbers_beside_the_papers():
    t = pd.DataFrame({"AUC (ours)": ["0.912 [0.870, 0.950]", "-"], "std (ours)": ["0.031", "-"],
                      "3x ensemble (ours)": ["0.930 [0.880, 0.980]", "-"],
                      "runs done": ["3/3", "0/3"], "AUC (paper)": ["0.872 ± 0.005", "-"],
                      "3x ensemble (paper)": [0.887, None]},
                     index=pd.Index(["Joint ResNet", "+ Pretraining (whole model)"],
                                    name="group"))
    per_seed = pd.DataFrame({"state": ["done", "done", "diverged"],
                             "test_auc": [0.9, 0.95, float("nan")]},
                            index=pd.MultiIndex.from_tuples([("Joint ResNet", None)] * 3,
                                                            names=["group", None]))
    text = tables.summary_markdown(t, per_seed).splitlines()
    assert text[0] == ("* **Joint ResNet**: ours 0.912 [0.870, 0.950] (mean over seeds, 95% "
                       "interval; std 0.031; 3x ensemble 0.930 [0.880, 0.980]; 3/3 runs done); "
                       "per seed 0.900, 0.950, diverged; the paper 0.872 ± 0.005 "
                       "(3x ensemble 0.887).")
    assert text[1] == "* **+ Pretraining (whole model)**: ours not run; the paper none."


def test_verdicts_markdown_groups_the_claims_by_verdict():
    v = pd.DataFrame({"ours (A vs B)": ["0.9 vs 0.8", "0.8 vs 0.9", "0.85 vs 0.86"],
                      "verdict": ["holds", "contradicted", "holds"], "p": [0.01, 0.02, 0.03],
                      "why": ["w1", "w2", "w3"]}, index=pd.Index(["a", "b", "c"], name="claim"))
    text = claims.verdicts_markdown(v).splitlines()
    assert text[0].startswith("Of the 3 claims: 2 holds, 1 contradicted. 3 are tested at once")
    assert "about 0.2 of them" in text[0]  # 0.05 x 3
    assert text[1] == "* **holds:** a (0.9 vs 0.8; w1); c (0.85 vs 0.86; w3)."
    assert text[2] == "* **contradicted:** b (0.8 vs 0.9; w2)."


class _Run:
    """What protocol.summary reads of a run."""

    def __init__(self, ref, pred, state="done"):
        self.ref, self.pred, self.state = ref, pred, state
        self.cfg = type("Cfg", (), {"lr": 1e-4})()

    def status(self):
        return {"state": self.state}

    @property
    def done(self):
        return self.state == "done"

    def predictions(self):
        return self.pred


def test_summary_cells_carry_seed_by_case_and_delong_intervals():
    from mvlib.instruments import stats
    rng = np.random.default_rng(3)
    scores = seeds(rng, Y, 1.5, n=3)
    runs = [_Run(f"t/r{i}", pd.DataFrame({"breast_id": np.arange(len(Y)), "malignant": Y,
                                          "benign": 0, "p_malignant": s, "p_benign": 0.5}))
            for i, s in enumerate(scores)]
    runs.append(_Run("t/bad", None, state="diverged"))
    t = protocol.summary({"Joint ResNet": runs, "nothing": [runs[-1]]},
                            {"Joint ResNet": (0.872, 0.005, 0.887)})
    r = t.loc["Joint ResNet"]
    mean, lo, hi = stats.recipe_ci(Y, scores)
    assert (r.auc_mean, r.auc_lo, r.auc_hi) == pytest.approx((mean, lo, hi))
    e, elo, ehi = stats.auc_ci(Y, np.mean(scores, axis=0))
    assert (r.ensemble, r.ensemble_lo, r.ensemble_hi) == pytest.approx((e, elo, ehi))
    assert r["AUC (ours)"] == f"{mean:.3f} [{lo:.3f}, {hi:.3f}]"
    assert r["runs done"] == "3/4" and r.runs == "t/r0;t/r1;t/r2"
    assert t.loc["nothing", "AUC (ours)"] == "-" and t.loc["nothing", "runs"] == ""
    assert not set(protocol.NUMERIC) & set(protocol.shown(t).columns)
    one = protocol.summary({"uni-view CC": runs[:1]}, {}).loc["uni-view CC"]
    a, alo, ahi = stats.auc_ci(Y, scores[0])  # one seed: the test cases' interval, labelled
    assert (one.auc_lo, one.auc_hi) == pytest.approx((alo, ahi))
    assert one["AUC (ours)"].endswith("(1 seed: test cases only)")


def test_width_table_splits_each_comparisons_variance_and_says_where_budget_pays(tmp_path):
    rng = np.random.default_rng(4)
    spread = [1.5 + d for d in (-0.8, 0.0, 0.8, -0.4)]  # seeds that differ a lot
    t = store_with(tmp_path, {"Shared ResNet": [s * Y + rng.normal(0, 1, len(Y)) for s in
                                                spread],
                              "Joint ResNet": seeds(rng, Y, 1.5, n=4)}, Y)
    v = pd.DataFrame([verdict(BEATS, t, tmp_path)]).set_index("claim")
    w = tables.width_table(v)
    assert w.loc[BEATS.text, "seeds' share"] + w.loc[BEATS.text, "test cases' share"] == 1
    assert w.loc[BEATS.text, "seeds' share"] > 0.5
    text = tables.width_markdown(w)
    assert "more seeds, not more test cases" in text and "correlate from" in text
    assert tables.width_markdown(w.iloc[:0]).startswith("No comparison")


def test_chance_markdown_reads_the_interval_against_one_half():
    t = pd.DataFrame({"auc_mean": [0.62, 0.52, 0.4, float("nan")],
                      "auc_lo": [0.55, 0.45, 0.33, float("nan")],
                      "auc_hi": [0.69, 0.59, 0.47, float("nan")]},
                     index=["a", "b", "c", "d"])
    lines = tables.chance_markdown(t).splitlines()
    assert lines[0].endswith("above chance.") and "[0.550, 0.690]" in lines[0]
    assert "not distinguishable from chance" in lines[1]
    assert lines[2].endswith("below chance.")
    assert "no interval" in lines[3]


def test_stability_names_what_happened_to_each_verdict_between_two_runs():
    first = pd.DataFrame({"verdict": ["holds", "holds", "contradicted", "found",
                                      "inconclusive at this budget", "not tested: x"]},
                         index=list("abcdef"))
    second = pd.DataFrame({"verdict": ["holds", "inconclusive at this budget", "holds",
                                       "not found at this budget", "contradicted",
                                       "descriptive: y"]}, index=list("abcdef"))
    out = claims.stability(first, second)
    assert out.change.tolist() == ["kept", "to undecided", "reversed", "to undecided",
                                   "from undecided", "changed"]
    assert claims.stability(first, second.iloc[:2]).index.tolist() == ["a", "b"]


def test_stability_report_reads_both_runs_figures(tmp_path, monkeypatch):
    from mvlib.core import paths
    monkeypatch.setenv("MVLIB_STORE", str(tmp_path))
    for tag, status in (("laptop-a", "holds"), ("laptop-b", "inconclusive at this budget")):
        folder = paths.figures(tag)
        folder.mkdir(parents=True, exist_ok=True)  # paths.figures may have made it
        pd.DataFrame({"claim": ["x beats y"], "verdict": [status]}).to_csv(
            folder / "verdicts.csv", index=False)
    text = claims.stability_report("laptop-a", "laptop-b")
    assert "verdicts (1 to undecided)" in text and "x beats y" in text
    assert "testbed: not compared" in text


def test_reliance_claims_markdown_shows_the_reading_and_its_validation():
    from mvlib.study.tables import reliance_claims_markdown

    claims = pd.DataFrame({"verdict": ["holds", "not judged: no validated reading"],
                           "reading": ["CC-only test AUC", "s_mlo (train)"],
                           "diff": [-0.05, 0.1], "lo": [-0.09, -0.02], "hi": [-0.01, 0.2],
                           "p": [2e-6, 0.2], "validation": ["", "nothing found the cue"]},
                          index=["under-uses CC", "reduces reliance"])
    text = reliance_claims_markdown(claims)
    assert "* **under-uses CC:** holds (difference -0.050" in text and "p = 2.0e-06" in text
    assert "not judged: no validated reading" in text and "nothing found the cue" in text


def test_hypothesis_markdown_reads_table6_the_correlation_and_split_learning_rates():
    from types import SimpleNamespace

    from mvlib.study.tables import hypothesis_markdown

    t6 = pd.DataFrame({"s_mlo (train)": [0.8, 0.4, 0.85], "s_mlo (train) lo": [0.7, 0.3, 0.6],
                       "s_mlo (train) hi": [0.9, 0.5, 0.95],
                       "mlo_only (train)": [0.9, 0.85, 0.75]},
                      index=["Joint ResNet", "Shared ResNet", "+ Split Learning Rates"])
    corr = pd.DataFrame({"rho": [-0.5], "lo": [-0.8], "hi": [-0.1], "n": [20]},
                        index=["two-view runs (pooled)"])
    slr = SimpleNamespace(cfg=SimpleNamespace(group_lr={"cc": 8e-5, "mlo": 2.5e-6,
                                                        "shared": 1e-5}))
    text = hypothesis_markdown(t6, corr, {"+ Split Learning Rates": [slr]},
                               ("s_mlo (train)", "found"))
    assert "0.800 [0.700, 0.900]" in text
    assert "below Joint ResNet's: Shared ResNet; above it: none" in text
    assert "negative, as the hypothesis predicts" in text
    assert "32 times as slowly" in text and "ranks 1 of 3" in text


def test_a_notebook_judges_the_claims_of_its_own_table_with_both_groups_present(tmp_path):
    rng = np.random.default_rng(3)
    t = store_with(tmp_path, {"uni-view CC": seeds(rng, Y, 3.0, n=3),
                              "uni-view MLO": seeds(rng, Y, 1.2, n=3),
                              "Joint ResNet": seeds(rng, Y, 1.5, n=3)}, Y)
    judged = claims.claim_verdicts({"Table 1": t["Table 1"]}, "Table 1", tmp_path)
    # Split and Shared ResNet have no row: their claims wait for the notebook that has them.
    assert list(judged.index) == ["uni-view CC beats uni-view MLO",
                                  "Joint ResNet beats uni-view CC"]
    assert judged.loc["uni-view CC beats uni-view MLO", "verdict"] == "holds"
    assert claims.claim_verdicts({"Table 1": t["Table 1"]}, "Table 3", tmp_path).empty


def test_on_synthetic_data_a_paper_claim_gets_a_direction_not_a_verdict(tmp_path):
    """The planted cue decides which recipe wins on the synthetic data: a comparison there says
    which way A - B went, never holds or contradicted against the paper's NYU number."""
    rng = np.random.default_rng(0)
    t = store_with(tmp_path, {"Shared ResNet": seeds(rng, Y, 3.0),
                              "Joint ResNet": seeds(rng, Y, 1.5),
                              "+ Split Learning Rates": seeds(rng, Y, 0.5)}, Y)
    for cfg in tmp_path.glob("t/*/config.json"):
        cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "dataset": "synthetic"}))
    shared = verdict(BEATS, t, tmp_path)
    assert shared["verdict"] == "Shared ResNet > Joint ResNet on synthetic data"
    assert "5 vs 5 seeds" in shared["why"]  # the runs counted, not the names' letters
    assert verdict(NO_GAIN, t, tmp_path)["verdict"] == \
        "+ Split Learning Rates no better than Joint ResNet on synthetic data"
    assert claims.synthetic_outcome("contradicted", "A", "B") == "A < B on synthetic data"
    assert claims.synthetic_outcome("contradicted", "A", "B", beats=False) == \
        "A > B on synthetic data"
    assert claims.synthetic_outcome("inconclusive at this budget", "A", "B") == \
        "inconclusive at this budget"
    first = pd.DataFrame({"verdict": ["A > B on synthetic data", "A no better than B on "
                                      "synthetic data"]}, index=["x", "y"])
    second = pd.DataFrame({"verdict": ["A < B on synthetic data", "A > B on synthetic data"]},
                          index=["x", "y"])
    assert claims.stability(first, second).change.tolist() == ["reversed", "reversed"]
