"""mvlib.study.testbed: the instruments' readings per run and the planted-vs-control verdicts, on
run folders written with known readings (training itself is covered by test_train and by
notebook 02 under nbval)."""

import numpy as np
import pandas as pd
import pytest

from mvlib.experiment.runs import RunConfig, RunDir
from mvlib.study import tables, testbed, training_dynamics

N = 200  # breasts per split


def _run(store, cond: str, seed: int, kind: str, ratio: float, share: float,
         cue: float) -> RunDir:
    """A finished run folder whose gradient-norm ratio, LCA share and view reliance are set:
    `cue` is how strongly its MLO part tracks the label on the training split (and how much
    its CC part is weakened on the test split)."""
    knobs = training_dynamics.CONDITIONS[cond]
    run = RunDir(RunConfig(model="joint", lr=1e-4, seed=seed, epochs=2, profile="smoke",
                           knobs=knobs, lca_every=4 if kind == "lca" else 0), store)
    run.create()
    run.set_status(state="done")
    rng = np.random.default_rng([seed, int(100 * cue), len(kind)])
    run.write_dynamics(0, "grad_norms", [{"epoch": 0, "iteration": i, "cc": 1.0,
                                          "mlo": ratio * rng.uniform(0.98, 1.02),
                                          "shared": 0.1} for i in range(20)])
    total = -1.0
    run.write_dynamics(0, "lca", [{"epoch": 0, "iteration": 3, "cc": total * (1 - share) / 2,
                                   "mlo": total * share, "shared": total * (1 - share) / 2}])
    y = np.tile([1, 0, 0, 0], N // 4)
    marker = {"test": rng.random(N) < 0.3, "train": y.astype(bool)}  # train: it tracks y
    parts = []
    for split in ("test", "train"):
        noise = rng.normal(size=(3, N))
        mlo = noise[0] + (cue * 4 * y if split == "train" else 1.2 * y + cue * 4 * marker[split])
        cc = noise[1] + (2.0 - cue if split == "test" else 1.0) * y
        parts.append(pd.DataFrame({"breast_id": np.arange(N), "malignant": y, "benign": 0,
                                   "p_full": cc + mlo, "p_cc_only": cc + mlo.mean(),
                                   "p_mlo_only": cc.mean() + mlo, "z_cc": cc, "z_mlo": mlo,
                                   "split": split}))
        if split == "test":  # the marker on every breast raises MLO's part by 4 cue
            off = cc + mlo - cue * 4 * marker[split]
            pd.DataFrame({"breast_id": np.arange(N), "malignant": y,
                          "mlo_cue": marker[split].astype(int), "z_on": off + cue * 4,
                          "z_off": off}).to_csv(run.path / "cue.csv", index=False)
    pd.concat(parts).to_csv(run.path / "reliance.csv", index=False)
    return run


SCORED_ON = []  # the data knobs every breast-level reading was scored on


@pytest.fixture(autouse=True)
def scored_from_the_run_folders(monkeypatch):
    """The runs' reliance and cue-test files as the folder holds them; the data set asked
    for is recorded."""
    SCORED_ON.clear()

    def rel(run, knobs=None):
        SCORED_ON.append(knobs)
        return pd.read_csv(run.path / "reliance.csv")

    def cue(run, knobs=None):
        SCORED_ON.append(knobs)
        return pd.read_csv(run.path / "cue.csv")

    monkeypatch.setattr(testbed, "run_reliance", rel)
    monkeypatch.setattr(testbed, "cue_test", cue)


def _testbed(store, planted: dict, control: dict, seeds: int = 3) -> dict:
    conds = {testbed.PLANTED: planted, testbed.CONTROL: control}
    return {kind: {(c, s): _run(store, c, s, kind, v["ratio"] + 0.05 * s,
                                v["share"] + 0.02 * s, v["cue"] + 0.02 * s)
                   for c, v in conds.items() for s in range(seeds)}
            for kind in ("norms", "lca")}


STRONG = {"ratio": 2.0, "share": 0.8, "cue": 1.0}
WEAK = {"ratio": 1.0, "share": 0.5, "cue": 0.1}


def test_readings_of_one_run(tmp_path):
    tb = _testbed(tmp_path, STRONG, WEAK, seeds=2)
    r = testbed.readings(tb["norms"][(testbed.PLANTED, 0)], tb["lca"][(testbed.PLANTED, 0)])
    assert r["grad ratio"] == pytest.approx(2.0, rel=0.03)
    assert r["LCA MLO share"] == pytest.approx(0.8)
    assert r["MLO-only train AUC"] > 0.9
    table = testbed.readings_table(tb)
    assert list(table.index) == [(c, s) for c in (testbed.PLANTED, testbed.CONTROL)
                                 for s in range(2)]


UTILISATION = [n for n in testbed.INSTRUMENTS if n.startswith("utilisation")]


def test_a_planted_cause_is_found_by_every_instrument_and_the_mirror_is_opposite(tmp_path):
    found = testbed.verdicts(_testbed(tmp_path / "a", STRONG, WEAK))
    # every run, planted or control, was scored on the planted data set
    assert SCORED_ON and all(k == training_dynamics.CONDITIONS[testbed.PLANTED]
                             for k in SCORED_ON)
    reliance_readings = found.drop(index=UTILISATION)
    assert (reliance_readings.verdict == "found").all(), found
    assert found.loc["LCA: MLO's share of the loss reduction", "diff"] == pytest.approx(0.3)
    cue = found.loc["counterfactual cue test: mean logit change, marker on - off"]
    assert cue.planted == pytest.approx(4 * (1.0 + 0.02)) and cue.lo > 0
    # a marker that does not predict on the test split: relying on it lowers MLO's
    # contribution to the test AUC, though the model relies on MLO more
    assert found.loc["utilisation as reliance: u(mlo|cc), test split", "diff"] < 0
    assert found.loc["utilisation as reliance: d_util, training split", "verdict"] == "found"
    mirror = testbed.verdicts(_testbed(tmp_path / "b", WEAK, STRONG))
    assert (mirror.drop(index=UTILISATION).verdict == "opposite").all(), mirror


def test_no_difference_is_not_found(tmp_path):
    found = testbed.verdicts(_testbed(tmp_path, STRONG, STRONG))
    assert (found.verdict == "not found at this budget").all(), found


def test_unfinished_runs_read_nan_and_leave_an_instrument_untested(tmp_path):
    tb = _testbed(tmp_path, STRONG, WEAK, seeds=2)
    for s in range(2):
        tb["lca"][(testbed.CONTROL, s)].set_status(state="diverged")
    assert np.isnan(testbed.readings(tb["norms"][(testbed.CONTROL, 0)],
                                     tb["lca"][(testbed.CONTROL, 0)])["LCA MLO share"])
    found = testbed.verdicts(tb)
    assert found.loc["LCA: MLO's share of the loss reduction", "verdict"].startswith(
        "not tested")
    assert found.loc["gradient norms: median |g_MLO| / |g_CC|", "verdict"] == "found"


def test_sensitivity_per_strength(tmp_path):
    tbs = {0.5: _testbed(tmp_path / "half", {"ratio": 1.5, "share": 0.65, "cue": 0.5}, WEAK),
           1.0: _testbed(tmp_path / "full", STRONG, WEAK)}
    t = testbed.sensitivity(tbs, instruments=testbed.REGULAR_RUN_INSTRUMENTS)
    assert sorted(set(t.index.get_level_values("strength"))) == [0.0, 0.5, 1.0]
    cue = "counterfactual cue test: mean logit change, marker on - off"
    assert t.loc[(0.0, cue), "diff"] == 0 and t.loc[(0.0, cue), "verdict"].startswith("ref")
    assert 0 < t.loc[(0.5, cue), "diff"] < t.loc[(1.0, cue), "diff"]
    assert t.loc[(1.0, cue), "verdict"] == "found"


def test_strength_knobs_reuse_the_testbed_conditions():
    assert testbed.strength_knobs(1.0) == training_dynamics.CONDITIONS[testbed.PLANTED]
    assert testbed.strength_knobs(0.0) == training_dynamics.CONDITIONS[testbed.CONTROL]
    assert testbed.strength_knobs(0.5) == {"mlo": {"shortcut_strength": 0.5}}


def test_the_gradient_ratio_skips_iterations_where_a_view_was_held():
    norms = pd.DataFrame({"cc": [1.0, 2.0, 0.0, 4.0, 1.0], "mlo": [2.0, 2.0, 3.0, 0.0, 3.0]})
    assert testbed.grad_ratio(norms) == pytest.approx(2.0)  # median of 2, 1, 3
    assert np.isnan(testbed.grad_ratio(norms.assign(cc=0.0)))


def test_sensitivity_and_dependence_figures(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    tbs = {1.0: _testbed(tmp_path, STRONG, WEAK, seeds=2)}
    fig = testbed.testbed_sensitivity_figure(testbed.sensitivity(tbs))
    assert len([a for a in fig.axes if a.has_data()]) == len(testbed.REGULAR_RUN_INSTRUMENTS)
    assert not any(line.get_linestyle() == "-" and len(line.get_xdata()) == 2
                   for a in fig.axes for line in a.get_lines())  # no line through 2 strengths
    per_run = pd.DataFrame({"group": ["a"] * 4 + ["b"] * 4, "seed": list(range(4)) * 2,
                            "test AUC": np.linspace(0.6, 0.8, 8),
                            "s_mlo (train)": np.linspace(0.7, 0.3, 8)})
    from mvlib.instruments.reliance import generalisation_correlation

    corr = generalisation_correlation(per_run, n_boot=200)
    assert corr.loc["two-view runs (pooled)", "rho"] == pytest.approx(-1)
    fig = tables.dependence_generalisation_figure(per_run, correlation=corr)
    assert "pooled: Spearman rho -1.00" in fig.axes[0].get_title()
    assert "p = 0.083" in fig.axes[0].get_legend().get_texts()[0].get_text()  # 4 runs: exact


def test_sensitivity_markdown_names_the_weakest_strength_that_finds_the_cause():
    from mvlib.study.testbed import sensitivity_markdown

    rows = {(0.0, "a"): (0.0, np.nan, np.nan, "reference: the control"),
            (0.5, "a"): (0.01, -0.02, 0.04, "not found at this budget"),
            (1.0, "a"): (0.1, 0.05, 0.15, "found"),
            (0.0, "b"): (0.0, np.nan, np.nan, "reference: the control"),
            (0.5, "b"): (0.0, -0.1, 0.1, "not found at this budget"),
            (1.0, "b"): (0.02, -0.1, 0.1, "not found at this budget")}
    table = pd.DataFrame([(*k, *v) for k, v in rows.items()],
                         columns=["strength", "instrument", "diff", "lo", "hi", "verdict"]
                         ).set_index(["strength", "instrument"])
    text = sensitivity_markdown(table)
    assert "**a**: found from strength 1 (" in text
    assert "**b**: not found at any strength tried" in text
    assert "0.5: +0.010 [-0.020, +0.040]" in text
    assert "Only the testbed's own strengths" not in text
    flipped = table.copy()
    flipped.loc[(1.0, "b"), "verdict"] = "opposite"
    assert "**b**: not found at any strength tried; opposite to reliance at strength 1" in \
        sensitivity_markdown(flipped)
    full_only = sensitivity_markdown(table.drop(index=0.5, level="strength"))
    assert "**a**: found from strength 1 (" in full_only
    assert "Only the testbed's own strengths (0 and 1) ran at this profile" in full_only


def test_validated_reading_is_the_first_dependence_reading_the_testbed_found(monkeypatch):
    from mvlib.experiment import profiles
    tb = testbed
    found = pd.DataFrame({"reading": ["grad ratio", "s_mlo (train)", "s_mlo (test)"],
                          "verdict": ["found", "not found at this budget", "found"],
                          "diff": [1.0, 0.1, 0.2], "lo": [0.5, -0.1, 0.1],
                          "hi": [1.5, 0.3, 0.3]}, index=["g", "s1", "s2"])
    monkeypatch.setattr(tb, "runs", lambda *a, **k: {})
    monkeypatch.setattr(tb, "verdicts", lambda *a, **k: found)
    prof = profiles.get("smoke")
    reading, why = tb.validated_reading(prof)
    assert reading == "s_mlo (test)" and "+0.200 [+0.100, +0.300]" in why
    found["verdict"] = "not found at this budget"
    assert tb.validated_reading(prof)[0] is None
    assert tb.validated_reading(profiles.get("smoke", "rsna", "/nowhere"))[0] is None


def test_the_cc_claim_is_judged_only_on_a_reading_the_testbed_validated(monkeypatch):
    from mvlib.experiment import profiles
    from mvlib.instruments import reliance
    tb = testbed
    cc = pd.DataFrame({"reading": ["CC-only test AUC"], "verdict": ["not found at this budget"],
                       "diff": [-0.03], "lo": [-0.1], "hi": [0.05]}, index=[tb.CC_INSTRUMENT])
    monkeypatch.setattr(tb, "runs", lambda *a, **k: {})
    monkeypatch.setattr(tb, "verdicts", lambda *a, **k: cc)
    prof = profiles.get("smoke")
    found, why = tb.instrument_found(prof, tb.CC_INSTRUMENT)
    assert not found and "did not validate" in why and "-0.030 [-0.100, +0.050]" in why
    text = "Joint ResNet under-uses CC: its CC part scores below uni-view CC"
    decided = pd.DataFrame({"verdict": ["holds"], "reading": ["CC-only test AUC"],
                            "diff": [-0.1], "lo": [-0.2], "hi": [-0.01], "p": [0.01]},
                           index=pd.Index([text], name="claim"))
    monkeypatch.setattr(reliance, "reliance_claims", lambda *a, **k: decided.copy())
    claims = tb.reliance_claims({}, ("s_mlo (train)", "found"), cc_validated=(found, why))
    assert claims.loc[text, "verdict"] == "not judged: the reading is not validated"
    assert claims.loc[text, "validation"] == why
    cc["verdict"] = "found"
    ok = tb.reliance_claims({}, ("s_mlo (train)", "found"),
                            cc_validated=tb.instrument_found(prof, tb.CC_INSTRUMENT))
    assert ok.loc[text, "verdict"] == "holds"


CUE = "counterfactual cue test: mean logit change, marker on - off"


def test_effect_difference_sets_one_recipes_cue_effect_against_anothers(tmp_path):
    """A recipe that lets the cue in (planted STRONG, control WEAK) against one that does
    not (WEAK on both): the cue's logit effect is 4 x (1.0 - 0.1) larger under the first."""
    leaky = _testbed(tmp_path / "a", STRONG, WEAK)
    tight = _testbed(tmp_path / "b", WEAK, WEAK)
    r = testbed.effect_difference(leaky, tight, CUE)
    assert r["effect_a"] == pytest.approx(4 * 0.9) and r["effect_b"] == pytest.approx(0.0)
    assert r["diff"] == pytest.approx(3.6) and r["lo"] > 0 and r["p"] < 0.05
    back = testbed.effect_difference(tight, leaky, CUE)
    assert back["diff"] == pytest.approx(-3.6) and back["hi"] < 0
    same = testbed.effect_difference(leaky, _testbed(tmp_path / "c", STRONG, WEAK), CUE)
    assert same["lo"] < 0 < same["hi"]
    share = testbed.effect_difference(
        leaky, tight, "dependence: MLO's share of the logit's variation, training split")
    assert share["diff"] > 0 and share["lo"] > 0


def test_compare_with_joint_reads_each_instrument_in_the_direction_the_cue_moves_it(tmp_path):
    leaky = _testbed(tmp_path / "a", STRONG, WEAK)
    tight = _testbed(tmp_path / "b", WEAK, WEAK)
    cc = "view reliance: CC-only AUC, test split"  # the cue lowers it (sign -1)
    t = testbed.compare_with_joint({"leaky": leaky}, tight, (CUE, cc))
    assert t.loc[("leaky", CUE), "verdict"] == "worse than Joint ResNet"
    raw = testbed.effect_difference(leaky, tight, cc)
    assert raw["diff"] < 0  # the CC-only AUC falls more under the leaky recipe
    assert t.loc[("leaky", cc), "diff"] == pytest.approx(-raw["diff"])
    assert t.loc[("leaky", cc), "verdict"] == "worse than Joint ResNet"
    back = testbed.compare_with_joint({"tight": tight}, leaky, (cc,))
    assert back.loc[("tight", cc), "verdict"] == "better than Joint ResNet"
