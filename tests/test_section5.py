"""Section 5's claims judged across seeds (mvlib.study.section5) on hand-made readings."""

import numpy as np
import pandas as pd
import pytest

from mvlib.study import section5


def pairs(diffs, cc_last=False, mlo_last=False):
    cc = np.array(diffs) + 2
    return pd.DataFrame({"lr": 1e-4, "seed": range(len(diffs)), "best epoch CC": cc,
                         "best epoch MLO": 2, "CC - MLO": diffs,
                         "at the last epoch": np.asarray(cc_last, int) + np.asarray(mlo_last, int),
                         "CC at the last epoch": cc_last, "MLO at the last epoch": mlo_last})


def readings(shares, lca, train_auc=(0.9, 0.85, 0.95)):
    """Per-seed readings; by default LCA runs that learned their training data."""
    auc = [train_auc[i % len(train_auc)] for i in range(len(lca))]
    return pd.DataFrame({"share |g_MLO| > |g_CC|": shares, "LCA MLO share": lca,
                         "val AUC (best, LCA run)": 0.6, section5.TRAIN_AUC: auc},
                        index=pd.Index(range(len(lca)), name="seed"))


def test_each_claim_holds_is_contradicted_or_undecided_by_its_interval():
    t = section5.claims(pairs([1, 2] * 4), readings([0.9, 0.8, 0.85], [0.3, 0.2, 0.25]))
    assert list(t.verdict) == ["holds", "holds", "contradicted"]
    fig3, fig4a, fig4b = t.index
    assert t.loc[fig3, "diff"] == pytest.approx(0.5)  # CC later in 8 of 8 pairs
    assert "exact sign test over 8 pairs" in t.loc[fig3, "why"]
    assert t.loc[fig4a, "diff"] == pytest.approx(0.35)
    assert t.loc[fig4b, "hi"] < 0 and "t over 3 seeds" in t.loc[fig4b, "why"]
    mixed = section5.claims(pairs([1, -1, 2, -2]), readings([0.4, 0.7, 0.5], [0.5, 0.6, 0.4]))
    assert set(mixed.verdict) == {"inconclusive at this budget"}


def test_a_claim_with_fewer_than_two_seeds_is_not_tested():
    t = section5.claims(pairs([1]), readings([0.9, np.nan], [0.6, np.nan]))
    assert list(t.verdict) == ["not testable at this budget"] * 3
    assert "+0.400 from one seed, no spread across seeds" in t.why.iloc[1]
    assert t.index[1].endswith("(Fig. 4a, lr 1e-4)")
    none = section5.claims(pairs([1]), readings([np.nan, np.nan], [np.nan, np.nan]))
    assert list(none.verdict)[1:] == ["not tested", "not tested"]


def test_figure4_is_judged_at_the_papers_rate_beside_1e4_and_appendix_a_across_three():
    by_lr = {1e-5: readings([0.9], [0.7]), 1e-4: readings([0.9, 0.8, 0.85], [0.7, 0.8, 0.75]),
             1e-3: readings([0.9], [0.6])}
    t = section5.dynamics_claims(by_lr)
    assert list(t.index) == [
        "|dL/d theta_MLO| > |dL/d theta_CC| for most iterations (Fig. 4a, lr 1e-5, the "
        "paper's)",
        "MLO contributes over 50% of the loss reduction early in training (Fig. 4b, lr 1e-5, "
        "the paper's)",
        "|dL/d theta_MLO| > |dL/d theta_CC| for most iterations (Fig. 4a, lr 1e-4)",
        "MLO contributes over 50% of the loss reduction early in training (Fig. 4b, lr 1e-4)",
        "MLO's columns dominate the loss reduction at all three learning rates (Appendix A)"]
    assert list(t.verdict) == ["not testable at this budget"] * 2 + ["holds", "holds",
                               "not testable at this budget"]  # one seed at 1e-5 and 1e-3
    assert t.iloc[1]["ours (A vs B)"] == "MLO share 0.700"
    assert "fewer than two seeds at lr 1e-5, 1e-3" in t.verdict.index.map(t.why.get)[-1]
    three = {lr: readings([0.9, 0.8, 0.85], lca) for lr, lca in
             ((1e-5, [0.7, 0.8, 0.75]), (1e-4, [0.7, 0.8, 0.75]), (1e-3, [0.7, 0.8, 0.75]))}
    assert section5.appendix_a_claim(three).iloc[0].verdict == "holds"
    three[1e-3] = readings([0.9, 0.8, 0.85], [0.3, 0.2, 0.25])
    a = section5.appendix_a_claim(three).iloc[0]
    assert a.verdict == "contradicted" and "(the row's interval: lr 1e-3)" in a.why
    three[1e-3] = readings([0.9, 0.8, 0.85], [0.3, 0.8, 0.5])
    assert section5.appendix_a_claim(three).iloc[0].verdict == "inconclusive at this budget"


def test_figure_claims_on_synthetic_data_are_directions():
    from mvlib.experiment import profiles
    t = section5.dynamics_claims({1e-4: readings([0.9, 0.8, 0.85], [0.3, 0.2, 0.25])})
    synthetic = section5.as_data(t, profiles.get("laptop"))
    assert list(synthetic.verdict) == ["above the threshold on synthetic data",
                                       "below the threshold on synthetic data"]
    assert list(section5.as_data(t, profiles.get("paper", "rsna", "/data")).verdict) == [
        "holds", "contradicted"]


def test_figure3_reads_the_sign_a_censored_peak_still_gives():
    """A run that peaks at its last epoch may peak later: its epoch is not a reading, but
    against an uncensored partner the sign of CC - MLO is known."""
    diffs = [0, 0, 1, 1, 1, 1, 1, 1, -1]
    cc_last = np.array([True, True, False, False, False, False, False, False, False])
    mlo_last = np.array([False, True, False, False, False, False, False, False, False])
    signs = section5.censored_signs(pairs(diffs, cc_last, mlo_last))
    assert signs.iloc[0] == 1 and np.isnan(signs.iloc[1]) and signs.iloc[-1] == -1
    row = section5.fig3_claim(pairs(diffs, cc_last, mlo_last)).iloc[0]
    assert row["ours (A vs B)"] == "CC later in 7 of 8 pairs"
    assert "the sign is unknown in 1 pair(s)" in row.why and "3 of 18 runs" in row.why
    everything_censored = pairs([0, 0, 0], True, True)
    assert section5.fig3_claim(everything_censored).iloc[0].verdict == \
        "not testable at this budget"


CUE = "counterfactual cue test: mean logit change, marker on - off"


def found(diff, lo, hi, share=(0.2, 0.1, 0.3, "found")):
    return pd.DataFrame({"reading": ["cue logit change", "s_mlo (train)"],
                         "planted": [3.0, 0.6], "control": [3.0 - diff, 0.6 - share[0]],
                         "diff": [diff, share[0]], "lo": [lo, share[1]], "hi": [hi, share[2]],
                         "p": [0.01, 0.02], "verdict": ["found", share[3]]},
                        index=[CUE, "dependence: MLO's share, training split"])


def test_the_dependence_claim_is_judged_by_the_cue_test_planted_against_control():
    validated = ("s_mlo (train)", "the testbed found it")
    t = section5.dependence_claim(validated, found(2.0, 1.0, 3.0))
    assert t.index[0] == section5.TESTBED_DEPENDENCE_CLAIM  # the testbed's, not NYU's
    holds = t.iloc[0]
    assert holds.verdict == "found" and holds["lo"] == pytest.approx(1.0)
    assert "s_mlo (train), planted - control: +0.200 [+0.100, +0.300] (found)" in holds.why
    opposite = found(-2.0, -3.0, -1.0)
    opposite.loc[CUE, "verdict"] = "opposite"
    assert section5.dependence_claim(validated, opposite).iloc[0].verdict == "opposite"
    real = section5.dependence_claim((None, "no testbed on real data"), None)
    assert real.index[0] == section5.DEPENDENCE_CLAIM
    assert real.iloc[0].verdict == "not judged" and real.iloc[0].why == "no testbed on real data"


def test_lca_runs_that_had_not_learned_their_training_data_test_nothing():
    """A share of the loss reduction of a model at chance allocates noise: the LCA claim and
    Appendix A's say so instead of judging the share; the gradient-norm claim is unaffected."""
    chance = readings([0.9, 0.8, 0.85], [0.7, 0.8, 0.75], train_auc=(0.45, 0.6, 0.5))
    t = section5.fig4_claims(chance, lr=1e-5)
    assert list(t.verdict) == ["holds", "not testable at this budget"]
    assert "had not learned their training data" in t.why.iloc[1]
    assert "last training AUC 0.45-0.60 (minus one half +0.017 [" in t.why.iloc[1]
    assert "best validation AUC 0.60-0.60" in t.why.iloc[1]
    assert np.isnan(t.iloc[1]["lo"])
    learned = section5.fig4_claims(readings([0.9, 0.8, 0.85], [0.7, 0.8, 0.75]), lr=1e-5)
    assert list(learned.verdict) == ["holds", "holds"]
    three = {lr: readings([0.9, 0.8, 0.85], [0.7, 0.8, 0.75]) for lr in (1e-5, 1e-4, 1e-3)}
    three[1e-5] = chance
    a = section5.appendix_a_claim(three).iloc[0]
    assert a.verdict == "not testable at this budget"
    assert "at lr 1e-5 the LCA runs had not learned" in a.why and "1e-4" not in a.why.split(
        "(MLO's")[0]


def test_one_lca_run_is_not_testable_for_want_of_seeds_not_of_learning():
    """With one seed the reason is the missing spread, even when that run learned."""
    one = readings([0.9, np.nan], [0.7, np.nan], train_auc=(0.95,))
    t = section5.fig4_claims(one, lr=1e-5)
    assert t.iloc[1].verdict == "not testable at this budget"
    assert "from one seed, no spread across seeds" in t.iloc[1].why
    assert "had not learned" not in t.iloc[1].why
