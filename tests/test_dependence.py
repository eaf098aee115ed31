"""mvlib.instruments.dependence: label-free readings, their intervals over seeds and breasts
(coverage in simulation), rank correlation with exact p-values."""

import numpy as np
import pandas as pd
import pytest

from mvlib.instruments import dependence

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
    # the covariance counts, split evenly: Var 1 and 4, Cov 1 -> (4 + 1) / (1 + 4 + 2)
    assert dependence.share(1.0, 4.0, 1.0) == pytest.approx(5 / 7)
    z_cc, z_mlo = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 1.0, 4.0, 7.0])
    q = dependence.point(pd.DataFrame({"malignant": [1, 0, 1, 0], "z_cc": z_cc,
                                       "z_mlo": z_mlo}), ("s_mlo",))
    z = z_cc + z_mlo
    assert q["s_mlo"] == pytest.approx(np.cov(z_mlo, z)[0, 1] / np.var(z, ddof=1))


def test_summary_interval_brackets_the_mean_and_needs_two_seeds():
    rng = np.random.default_rng(0)
    runs = [run(rng, 1.0, 2.0) for _ in range(4)]
    s = dependence.summary(runs, n_boot=2000)
    assert s["s_mlo lo"] < s["s_mlo"] < s["s_mlo hi"]
    label = 0.25 * 0.75  # Var and Cov of the label part both parts track
    assert s["s_mlo"] == pytest.approx((4 + 2 * label) / (5 + 4 * label), abs=0.05)
    one = dependence.summary(runs[:1], n_boot=2000)
    assert np.isnan(one["s_mlo lo"]) and np.isnan(one["s_mlo hi"])  # no seed spread to judge


def expected_share(cc_sd, log_mlo_sd, tau, signal=1.0):
    """MLO's share of the logit's variation expected over seeds (log sd_mlo ~ N(mu, tau)) and
    breasts: Var(z_v) = sd_v^2 + L, Cov(z_cc, z_mlo) = L = signal^2 p (1 - p) (both parts
    track the label), Gauss-Hermite over the seeds."""
    x, w = np.polynomial.hermite_e.hermegauss(40)
    label = signal**2 * Y.mean() * (1 - Y.mean())
    v_mlo = np.exp(2 * (log_mlo_sd + tau * x)) + label
    v_cc = cc_sd**2 + label
    return float(np.sum(w * (v_mlo + label) / (v_cc + v_mlo + 2 * label)) / w.sum())


def test_compare_covers_a_readings_true_difference_at_three_seeds():
    """Planted against control as the testbed reads it: three seeds a group, each seed's MLO
    spread drawn afresh, breasts drawn afresh; the interval of the difference of MLO's
    share covers the true one at least 93% of the time."""
    rng = np.random.default_rng(5)
    tau, (mu_a, mu_b) = 0.4, (np.log(2.0), np.log(1.5))
    truth = expected_share(1.0, mu_a, tau) - expected_share(1.0, mu_b, tau)
    hits = []
    for i in range(400):
        a = [run(rng, 1.0, np.exp(mu_a + tau * rng.normal())) for _ in range(3)]
        b = [run(rng, 1.0, np.exp(mu_b + tau * rng.normal())) for _ in range(3)]
        r = dependence.compare(a, b, "s_mlo", n_boot=300, seed=i)
        hits.append(r["lo"] <= truth <= r["hi"])
    assert np.mean(hits) >= 0.93


def test_compare_finds_a_difference_and_not_a_null():
    rng = np.random.default_rng(1)
    more = [run(rng, 1.0, 3.0) for _ in range(3)]
    less = [run(rng, 1.0, 1.0) for _ in range(3)]
    same = [run(rng, 1.0, 3.0) for _ in range(3)]
    r = dependence.compare(more, less, "s_mlo", n_boot=2000)
    assert r["lo"] > 0 and r["diff"] == pytest.approx(r["mean_a"] - r["mean_b"])
    null = dependence.compare(more, same, "s_mlo", n_boot=2000)
    assert null["lo"] < 0 < null["hi"]


def test_compare_pairs_seeds_by_value_when_asked_and_refuses_other_breasts():
    rng = np.random.default_rng(2)
    a = [run(rng, 1.0, 2.0) for _ in range(3)]
    r = dependence.compare(a, a[::-1], "s_mlo", n_boot=500, seeds_a=[0, 1, 2],
                           seeds_b=[2, 1, 0], paired_seeds=True)
    assert r["paired"] and r["diff"] == 0 and r["lo"] == r["hi"] == 0  # matched by seed
    unpaired = dependence.compare(a, a[::-1], "s_mlo", n_boot=500, seeds_a=[0, 1, 2],
                                  seeds_b=[2, 1, 0])
    assert not unpaired["paired"] and unpaired["lo"] < 0 < unpaired["hi"]
    with pytest.raises(ValueError, match="same seed values"):
        dependence.compare(a, a, "s_mlo", seeds_a=[0, 1, 2], seeds_b=[0, 1, 3],
                           paired_seeds=True)
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
    s = dependence.summary([p, p.assign(z_on=p.z_on + 0.1)], n_boot=1000, keys=("cue_logit",))
    assert s["cue_logit lo"] < shift.mean() + 0.05 < s["cue_logit hi"]


def test_rank_correlation():
    x = np.arange(10.0)
    r = dependence.rank_correlation(x, -x ** 3, n_boot=1000)
    assert r["rho"] == pytest.approx(-1) and r["hi"] == pytest.approx(-1) and r["n"] == 10
    rng = np.random.default_rng(4)
    noise = dependence.rank_correlation(rng.normal(size=40), rng.normal(size=40), n_boot=2000)
    assert noise["lo"] < 0 < noise["hi"]
    assert np.isnan(dependence.rank_correlation([1, 2], [3, 4])["rho"])


def test_rank_correlation_p_is_exact_for_a_few_runs():
    """Over n <= 10 runs the p-value counts all n! orders: rho = -1 over 4 runs is 2 of 24
    (t's approximation says 0), over 8 runs 2 of 40320."""
    r = dependence.rank_correlation([1, 2, 3, 4], [0.9, 0.8, 0.7, 0.1])
    assert r["rho"] == -1 and r["p"] == pytest.approx(2 / 24) and np.isnan(r["lo"])
    r = dependence.rank_correlation(np.arange(8.0), -np.arange(8.0))
    assert r["p"] == pytest.approx(2 / 40320)
    ties = dependence.rank_correlation([1, 1, 2, 3, 4], [1, 2, 2, 3, 5])
    from itertools import permutations

    from scipy.stats import spearmanr
    y = np.array([1, 2, 2, 3, 5])
    rho = [spearmanr([1, 1, 2, 3, 4], y[list(o)]).statistic for o in permutations(range(5))]
    assert ties["p"] == pytest.approx(np.mean(np.abs(rho) >= abs(ties["rho"]) - 1e-9))


def test_too_few_runs_get_no_interval():
    r = dependence.rank_correlation([0.1, 0.2, 0.3], [0.9, 0.8, 0.7])
    assert r["rho"] == pytest.approx(-1) and np.isnan(r["lo"]) and np.isnan(r["hi"])
    five = dependence.rank_correlation(np.arange(5.0), np.arange(5.0) ** 2)  # would be [1, 1]
    assert np.isnan(five["lo"]) and five["p"] == pytest.approx(2 / 120)
