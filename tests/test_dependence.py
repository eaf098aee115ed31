"""mvlib.dependence: label-free readings, their seed x case bootstrap, rank correlation."""

import numpy as np
import pandas as pd
import pytest

from mvlib import dependence

Y = np.r_[np.ones(40, int), np.zeros(120, int)]


def run(rng, cc_sd: float, mlo_sd: float, signal: float = 1.0) -> pd.DataFrame:
    """One run's predictions: logit parts with the given spreads, both tracking the label."""
    z_cc = rng.normal(signal * Y, cc_sd)
    z_mlo = rng.normal(signal * Y, mlo_sd)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    return pd.DataFrame({"breast_id": np.arange(len(Y)), "malignant": Y,
                         "z_cc": z_cc, "z_mlo": z_mlo, "p_full": sig(z_cc + z_mlo),
                         "p_cc_only": sig(z_cc + z_mlo.mean()),
                         "p_mlo_only": sig(z_cc.mean() + z_mlo)})


def test_point_readings_by_hand():
    p = pd.DataFrame({"malignant": [1, 1, 0, 0], "z_cc": [1.0, -1.0, 1.0, -1.0],
                      "z_mlo": [3.0, 3.0, -3.0, -3.0], "p_full": [0.9, 0.6, 0.4, 0.1],
                      "p_cc_only": [0.5, 0.5, 0.5, 0.5], "p_mlo_only": [0.8, 0.8, 0.2, 0.2]})
    q = dependence.point(p)
    assert q["s_mlo"] == pytest.approx(9 / 10)  # Var 1 and 9
    assert q["dp_mlo"] == pytest.approx(0.25)
    assert q["dp_cc"] == pytest.approx(np.mean([0.1, 0.2, 0.2, 0.1]))
    assert q["full"] == 1.0 and q["cc_only"] == 0.5
    assert np.isnan(dependence.share(0.0, 0.0))


def test_bootstrap_interval_covers_the_point_and_shrinks_with_more_seeds():
    rng = np.random.default_rng(0)
    runs = [run(rng, 1.0, 2.0) for _ in range(4)]
    s = dependence.summary(runs, n_boot=2000)
    assert s["s_mlo lo"] < s["s_mlo"] < s["s_mlo hi"]
    assert s["s_mlo"] == pytest.approx(0.8, abs=0.05)  # Var 1 + label vs 4 + label
    wide = dependence.summary(runs[:1], n_boot=2000)
    assert wide["s_mlo hi"] - wide["s_mlo lo"] > 0  # breasts alone still vary


def test_compare_finds_a_difference_and_not_a_null():
    rng = np.random.default_rng(1)
    more = [run(rng, 1.0, 3.0) for _ in range(3)]
    less = [run(rng, 1.0, 1.0) for _ in range(3)]
    same = [run(rng, 1.0, 3.0) for _ in range(3)]
    r = dependence.compare(more, less, "s_mlo", n_boot=2000)
    assert r["lo"] > 0 and r["diff"] == pytest.approx(r["mean_a"] - r["mean_b"])
    null = dependence.compare(more, same, "s_mlo", n_boot=2000)
    assert null["lo"] < 0 < null["hi"]


def test_compare_pairs_seeds_by_value_and_refuses_other_breasts():
    rng = np.random.default_rng(2)
    a = [run(rng, 1.0, 2.0) for _ in range(3)]
    r = dependence.compare(a, a[::-1], "s_mlo", n_boot=500, seeds_a=[0, 1, 2],
                           seeds_b=[2, 1, 0])
    assert r["paired"] and r["diff"] == 0 and r["lo"] == r["hi"] == 0  # matched by seed
    unpaired = dependence.compare(a, a[::-1], "s_mlo", n_boot=500)
    assert not unpaired["paired"] and unpaired["hi"] > 0
    other = a[0].assign(malignant=a[0].malignant[::-1].to_numpy())
    with pytest.raises(ValueError, match="different breasts"):
        dependence.compare(a, [other], "s_mlo", n_boot=100)
    with pytest.raises(ValueError, match="needs columns"):
        dependence.compare(a, a, "cue_logit", n_boot=100)


def test_cue_readings():
    rng = np.random.default_rng(3)
    p = run(rng, 1.0, 1.0)
    shift = np.where(rng.random(len(Y)) < 0.5, 2.0, 0.0)
    p = p.assign(z_off=p.z_cc + p.z_mlo, z_on=p.z_cc + p.z_mlo + shift)
    q = dependence.point(p)
    assert q["cue_logit"] == pytest.approx(shift.mean())
    assert q["cue_auc"] < 0  # a label-blind shift on some breasts blurs the ranking
    s = dependence.summary([p], n_boot=1000, keys=("cue_logit",))
    assert s["cue_logit lo"] < shift.mean() < s["cue_logit hi"]


def test_rank_correlation():
    x = np.arange(10.0)
    r = dependence.rank_correlation(x, -x ** 3, n_boot=1000)
    assert r["rho"] == pytest.approx(-1) and r["hi"] == pytest.approx(-1) and r["n"] == 10
    rng = np.random.default_rng(4)
    noise = dependence.rank_correlation(rng.normal(size=40), rng.normal(size=40), n_boot=2000)
    assert noise["lo"] < 0 < noise["hi"]
    assert np.isnan(dependence.rank_correlation([1, 2], [3, 4])["rho"])


def test_too_few_runs_get_no_interval():
    r = dependence.rank_correlation([0.1, 0.2, 0.3], [0.9, 0.8, 0.7])
    assert r["rho"] == pytest.approx(-1) and np.isnan(r["lo"]) and np.isnan(r["hi"])
