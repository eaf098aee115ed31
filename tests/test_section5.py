"""Section 5's claims judged across seeds (mvlib.section5) on hand-made readings."""

import numpy as np
import pandas as pd
import pytest

from mvlib import section5


def pairs(diffs):
    cc = np.array(diffs) + 2
    return pd.DataFrame({"lr": 1e-4, "seed": range(len(diffs)), "best epoch CC": cc,
                         "best epoch MLO": 2, "CC - MLO": diffs,
                         "at the last epoch": 0})


def readings(shares, lca):
    return pd.DataFrame({"share |g_MLO| > |g_CC|": shares, "LCA MLO share": lca,
                         "val AUC (best, LCA run)": 0.6}, index=pd.Index(range(len(lca)),
                                                                           name="seed"))


def test_each_claim_holds_is_contradicted_or_undecided_by_its_interval():
    t = section5.claims(pairs([1, 2, 1, 2]), readings([0.9, 0.8, 0.85], [0.3, 0.2, 0.25]))
    assert list(t.verdict) == ["holds", "holds", "contradicted"]
    fig3, fig4a, fig4b = t.index
    assert t.loc[fig3, "diff"] == pytest.approx(1.5)
    assert t.loc[fig4a, "diff"] == pytest.approx(0.35)
    assert t.loc[fig4b, "hi"] < 0 and "t over 3 seeds" in t.loc[fig4b, "why"]
    mixed = section5.claims(pairs([1, -1, 2, -2]), readings([0.4, 0.7, 0.5], [0.5, 0.6, 0.4]))
    assert set(mixed.verdict) == {"inconclusive at this budget"}


def test_a_claim_with_fewer_than_two_seeds_is_not_tested():
    t = section5.claims(pairs([1]), readings([0.9, np.nan], [0.6, np.nan]))
    assert list(t.verdict) == ["not tested"] * 3
    assert "at least 2" in t.verdict.index.map(t.why.get)[0]
