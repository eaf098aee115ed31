"""mvlib.stats: DeLong against a brute-force placement computation, symmetry, the interval's
coverage in simulation, and the seed x case bootstrap of compare_recipes."""

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from mvlib import stats


def brute_force(y, *scores):
    """O(mn) placements with ties as 1/2, covariances with explicit m-1 and n-1."""
    y = np.asarray(y, bool)
    s = np.asarray(scores, float)
    m, n = y.sum(), (~y).sum()
    v10 = np.zeros((len(s), m))
    v01 = np.zeros((len(s), n))
    for k, row in enumerate(s):
        pos, neg = row[y], row[~y]
        for i, x in enumerate(pos):
            for j, z in enumerate(neg):
                psi = 1.0 if x > z else 0.5 if x == z else 0.0
                v10[k, i] += psi / n
                v01[k, j] += psi / m
    aucs = v10.mean(axis=1)
    d10, d01 = v10 - aucs[:, None], v01 - aucs[:, None]
    s10 = d10 @ d10.T / (m - 1)
    s01 = d01 @ d01.T / (n - 1)
    return aucs, s10 / m + s01 / n


def tied_scores(seed, n=40, k=3):
    rng = np.random.default_rng(seed)
    y = np.zeros(n, int)
    y[rng.choice(n, 13, replace=False)] = 1
    scores = [np.round(rng.normal(y * (0.5 + i), 1.0), 1) for i in range(k)]  # many ties
    return y, scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_delong_equals_the_brute_force_placements(seed):
    y, scores = tied_scores(seed)
    assert any(len(np.unique(s)) < len(s) for s in scores)  # the example has ties
    aucs, cov = stats.delong(y, *scores)
    ref_aucs, ref_cov = brute_force(y, *scores)
    np.testing.assert_allclose(aucs, ref_aucs, rtol=0, atol=1e-12)
    np.testing.assert_allclose(cov, ref_cov, rtol=0, atol=1e-12)
    assert aucs.shape == (3,) and cov.shape == (3, 3)
    for a, s in zip(aucs, scores, strict=True):
        assert a == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_one_score_vector_gives_a_one_by_one_covariance():
    y, scores = tied_scores(4, k=1)
    aucs, cov = stats.delong(y, scores[0])
    assert cov.shape == (1, 1)
    np.testing.assert_allclose(cov, brute_force(y, scores[0])[1], atol=1e-12)


def test_auc_ci_is_the_delong_interval_clipped_to_0_1():
    y, scores = tied_scores(5)
    auc, lo, hi = stats.auc_ci(y, scores[1])
    a, v = brute_force(y, scores[1])
    half = norm.ppf(0.975) * np.sqrt(v[0, 0])
    assert (auc, lo, hi) == pytest.approx((a[0], a[0] - half, a[0] + half), abs=1e-12)
    perfect = np.arange(20.0)
    labels = (perfect >= 10).astype(int)
    assert stats.auc_ci(labels, perfect) == (1.0, 1.0, 1.0)
    near = perfect.copy()
    near[[9, 10]] = near[[10, 9]]  # one swapped pair: AUC just below 1
    auc, lo, hi = stats.auc_ci(labels, near)
    assert auc < 1 and hi == 1.0 and lo < auc


def test_swapping_the_models_flips_the_difference_and_keeps_p():
    y, (a, b, _) = tied_scores(6)
    ab, ba = stats.delong_test(y, a, b), stats.delong_test(y, b, a)
    assert ab["diff"] == pytest.approx(-ba["diff"], abs=1e-15)
    assert ab["z"] == pytest.approx(-ba["z"], abs=1e-12)
    assert ab["p"] == pytest.approx(ba["p"], abs=1e-12)
    assert (ab["lo"], ab["hi"]) == pytest.approx((-ba["hi"], -ba["lo"]), abs=1e-12)
    aucs, cov = brute_force(y, a, b)
    sd = np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    assert ab["z"] == pytest.approx((aucs[0] - aucs[1]) / sd, abs=1e-10)
    assert ab["p"] == pytest.approx(2 * norm.sf(abs(ab["z"])), abs=1e-12)


def test_identical_scores_give_no_difference_and_p_one():
    y, (a, _, _) = tied_scores(7)
    r = stats.delong_test(y, a, a.copy())
    assert r == {"diff": 0.0, "lo": 0.0, "hi": 0.0, "z": 0.0, "p": 1.0}
    # A monotone transform ranks the cases the same way: the same AUC, no variance.
    r = stats.delong_test(y, a, 3 * a + 1)
    assert r["diff"] == 0 and r["p"] == 1.0


@pytest.mark.parametrize("labels, scores, message", [
    ([0, 0, 0, 0], [[0.1, 0.2, 0.3, 0.4]], "2 cases of each class"),
    ([1, 0, 0, 0], [[0.1, 0.2, 0.3, 0.4]], "1 positive"),
    ([1, 1, 0, 0], [[0.1, np.nan, 0.3, 0.4]], "NaN"),
    ([1, 1, 0, 0], [[0.1, 0.2, 0.3]], "do not match"),
    ([1, 2, 0, 0], [[0.1, 0.2, 0.3, 0.4]], "0 and 1"),
])
def test_bad_input_is_refused_naming_the_problem(labels, scores, message):
    with pytest.raises(ValueError, match=message):
        stats.delong(labels, *scores)


def test_delong_interval_covers_the_true_auc_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    d, m, n = 1.2, 30, 90
    true = norm.cdf(d / np.sqrt(2))  # binormal AUC
    hits = 0
    for _ in range(400):
        y = np.r_[np.ones(m, int), np.zeros(n, int)]
        s = np.r_[rng.normal(d, 1, m), rng.normal(0, 1, n)]
        _, lo, hi = stats.auc_ci(y, s)
        hits += lo <= true <= hi
    assert 0.92 <= hits / 400 <= 0.98


# --- compare_recipes ----------------------------------------------------------------------

def recipe_scores(rng, y, u, mu, tau, seeds):
    """Per-seed scores u + sigma_s * noise, log sigma_s ~ N(mu, tau): a seed effect on top
    of the case effect u that every model shares."""
    sigma = np.exp(mu + tau * rng.normal(size=seeds))
    return [u + s * rng.normal(size=len(y)) for s in sigma]


def recipe_auc(delta, mu, tau):
    """Expected AUC of a recipe over seeds and cases (Gauss-Hermite over log sigma)."""
    x, w = np.polynomial.hermite_e.hermegauss(60)
    sigma = np.exp(mu + tau * x)
    return float(np.sum(w * norm.cdf(delta / np.sqrt(2 * (1 + sigma ** 2)))) / w.sum())


def test_compare_recipes_swaps_symmetrically_and_counts_wins():
    rng = np.random.default_rng(1)
    y = np.r_[np.ones(40, int), np.zeros(80, int)]
    u = rng.normal(y * 1.0, 1.0)
    a = recipe_scores(rng, y, u, -1.0, 0.3, 5)
    b = recipe_scores(rng, y, u, 0.0, 0.3, 5)
    seeds = list(range(5))  # the same seed list: paired by seed
    ab = stats.compare_recipes(y, a, b, n_boot=2000, seed=3, seeds_a=seeds, seeds_b=seeds)
    ba = stats.compare_recipes(y, b, a, n_boot=2000, seed=3, seeds_a=seeds, seeds_b=seeds)
    assert ab["diff"] == pytest.approx(-ba["diff"], abs=1e-12)
    assert (ab["lo"], ab["hi"]) == pytest.approx((-ba["hi"], -ba["lo"]), abs=1e-12)
    assert ab["p"] == pytest.approx(ba["p"])
    assert ab["p_a_better"] == pytest.approx(1 - ba["p_a_better"])
    aucs_a = [roc_auc_score(y, s) for s in a]
    aucs_b = [roc_auc_score(y, s) for s in b]
    assert ab["diff"] == pytest.approx(np.mean(aucs_a) - np.mean(aucs_b), abs=1e-12)
    wins = np.mean([[x > z for z in aucs_b] for x in aucs_a])
    assert ab["p_a_better"] == pytest.approx(wins)
    assert ab["lo"] < ab["diff"] < ab["hi"]
    same = stats.compare_recipes(y, a, a, n_boot=500, seeds_a=seeds, seeds_b=seeds)
    assert same["paired"] and same["diff"] == 0 and same["lo"] == same["hi"] == 0
    assert same["p"] == 1.0 and same["p_a_better"] == 0.5
    unpaired = stats.compare_recipes(y, a, b[:3], n_boot=500)  # different seed lists
    assert unpaired["diff"] == pytest.approx(np.mean(aucs_a) - np.mean(aucs_b[:3]))
    assert not unpaired["paired"]
    with pytest.raises(ValueError, match="do not match"):
        stats.compare_recipes(y, a, [b[0][:-1]])
    with pytest.raises(ValueError, match="at least one run"):
        stats.compare_recipes(y, a, [])


def test_compare_recipes_pairs_seeds_by_value_not_by_position():
    rng = np.random.default_rng(4)
    y = np.r_[np.ones(30, int), np.zeros(60, int)]
    u = rng.normal(y * 1.0, 1.0)
    a = recipe_scores(rng, y, u, -1.0, 0.3, 4)
    # B is A itself, listed in another seed order: paired by value it is the same recipe.
    order = [2, 0, 3, 1]
    same = stats.compare_recipes(y, a, [a[i] for i in order], n_boot=300,
                                 seeds_a=[0, 1, 2, 3], seeds_b=order)
    assert same["paired"] and same["lo"] == same["hi"] == 0
    by_position = stats.compare_recipes(y, a, [a[i] for i in order], n_boot=300,
                                        paired_seeds=False)
    assert by_position["hi"] > by_position["lo"]
    # A run diverged at seed 3 in A and at seed 0 in B: equal lengths, different seeds.
    mixed = stats.compare_recipes(y, a[:3], a[1:], n_boot=300, seeds_a=[0, 1, 2],
                                  seeds_b=[1, 2, 3])
    assert not mixed["paired"]
    with pytest.raises(ValueError, match="same seed values"):
        stats.compare_recipes(y, a[:3], a[1:], seeds_a=[0, 1, 2], seeds_b=[1, 2, 3],
                              paired_seeds=True)
    with pytest.raises(ValueError, match="each run's seed once"):
        stats.compare_recipes(y, a, a, seeds_a=[0, 0, 1, 2], seeds_b=[0, 1, 2, 3])


def test_p_text_says_p_below_one_over_b_for_a_bootstrap_p_of_zero():
    assert stats.p_text(0.0, 10000) == "p < 0.0001"
    assert stats.p_text(0.0312, 10000) == "p = 0.031"
    assert stats.p_text(2e-6) == "p = 2.0e-06"


def test_compare_recipes_interval_covers_the_true_difference():
    """Seeds and test cases drawn afresh each time; the interval should cover the difference
    of the recipes' expected AUCs (over seeds and cases) about 95% of the time."""
    rng = np.random.default_rng(2)
    delta, (mu_a, mu_b), tau, seeds = 1.5, (-0.7, -0.3), 0.5, 5
    true = recipe_auc(delta, mu_a, tau) - recipe_auc(delta, mu_b, tau)
    y = np.r_[np.ones(40, int), np.zeros(120, int)]
    hits, sims = 0, 200
    for i in range(sims):
        u = rng.normal(y * delta, 1.0)
        a = recipe_scores(rng, y, u, mu_a, tau, seeds)
        b = recipe_scores(rng, y, u, mu_b, tau, seeds)
        r = stats.compare_recipes(y, a, b, n_boot=400, seed=i, paired_seeds=False)
        hits += r["lo"] <= true <= r["hi"]
    assert 0.92 <= hits / sims <= 0.98


def test_recipe_ci_brackets_the_mean_and_covers_the_recipes_expected_auc():
    rng = np.random.default_rng(5)
    y = np.r_[np.ones(40, int), np.zeros(120, int)]
    delta, mu, tau = 1.5, -0.5, 0.5
    true = recipe_auc(delta, mu, tau)
    hits = 0
    for i in range(200):
        u = rng.normal(y * delta, 1.0)
        runs = recipe_scores(rng, y, u, mu, tau, 5)
        mean, lo, hi = stats.recipe_ci(y, runs, n_boot=400, seed=i)
        if i == 0:
            assert mean == pytest.approx(np.mean([roc_auc_score(y, r) for r in runs]))
            assert lo < mean < hi
        hits += lo <= true <= hi
    assert 0.92 <= hits / 200 <= 0.98
    with pytest.raises(ValueError, match="at least one run"):
        stats.recipe_ci(y, [])


def test_bootstrap_aucs_resample_cases_within_each_class_alike_for_every_vector():
    y, (a, b, _) = tied_scores(8)
    boot = stats.bootstrap_aucs(y, [a, b], 500, np.random.default_rng(0))
    again = stats.bootstrap_aucs(y, [a, b], 500, np.random.default_rng(0))
    assert boot.shape == (2, 500)
    np.testing.assert_array_equal(boot, again)
    same = stats.bootstrap_aucs(y, [a, a], 50, np.random.default_rng(1))
    np.testing.assert_array_equal(same[0], same[1])  # the same cases for every vector
    aucs = stats.delong(y, a, b)[0]
    np.testing.assert_allclose(boot.mean(axis=1), aucs, atol=0.02)


def test_compare_means_is_welchs_interval_and_covers():
    a, b = np.array([0.7, 0.8, 0.75]), np.array([0.5, 0.55, 0.6])
    r = stats.compare_means(a, b)
    # By hand: Welch's standard error and Welch-Satterthwaite degrees of freedom.
    va, vb = a.var(ddof=1) / 3, b.var(ddof=1) / 3
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)
    from scipy.stats import t
    half = t.ppf(0.975, df) * np.sqrt(va + vb)
    assert r["diff"] == pytest.approx(0.2)
    assert (r["lo"], r["hi"]) == pytest.approx((0.2 - half, 0.2 + half))
    s = stats.compare_means(b, a)
    assert (s["lo"], s["hi"], s["p"]) == pytest.approx((-r["hi"], -r["lo"], r["p"]))
    rng = np.random.default_rng(0)  # coverage: 3 vs 3 normal draws, true difference 0.1
    hits = [(lambda q: q["lo"] <= 0.1 <= q["hi"])(stats.compare_means(
        rng.normal(0.1, 1, 3), rng.normal(0, 2, 3))) for _ in range(2000)]
    assert 0.93 <= np.mean(hits) <= 0.97


def test_compare_means_rejects_what_it_cannot_judge():
    with pytest.raises(ValueError, match="at least 2"):
        stats.compare_means([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="non-finite"):
        stats.compare_means([1.0, np.nan], [1.0, 2.0])
    exact = stats.compare_means([1.0, 1.0], [0.5, 0.5])
    assert (exact["lo"], exact["hi"], exact["p"]) == (0.5, 0.5, 0.0)


@pytest.mark.parametrize("m, n", [(9, 40), (700, 700)])  # counted placements; ranked resamples
def test_bootstrap_aucs_equal_the_midrank_auc_of_each_resample_exactly(m, n):
    rng = np.random.default_rng(3)
    y = np.r_[np.ones(m, int), np.zeros(n, int)]
    scores = [np.round(rng.normal(size=m + n) + y, 1) for _ in range(2)]  # many ties
    boot = stats.bootstrap_aucs(y, scores, 60, np.random.default_rng(4))
    rng = np.random.default_rng(4)  # the same draws, each resample scored on its own
    cases = np.concatenate([rng.choice(np.flatnonzero(y), (60, m)),
                            rng.choice(np.flatnonzero(y == 0), (60, n))], axis=1)
    for k, s in enumerate(scores):
        expect = [roc_auc_score(y[c], s[c]) for c in cases]
        np.testing.assert_allclose(boot[k], expect, rtol=0, atol=1e-12)


def test_compare_effects_is_the_difference_of_two_recipe_differences():
    rng = np.random.default_rng(7)
    y = np.r_[np.ones(40, int), np.zeros(100, int)]
    u = rng.normal(y * 1.0, 1.0)
    # A: the effect takes the case signal away entirely; B: a mild effect
    strong, weak = recipe_scores(rng, y, u, -2.0, 0.3, 3), [rng.normal(size=len(y)) for _ in "abc"]
    mild_on, mild_off = (recipe_scores(rng, y, u, mu, 0.3, 3) for mu in (-1.0, -0.6))
    r = stats.compare_effects(y, (strong, weak), (mild_on, mild_off), n_boot=2000, seed=1)
    auc = {k: np.mean([roc_auc_score(y, s) for s in v]) for k, v in
           (("strong", strong), ("weak", weak), ("on", mild_on), ("off", mild_off))}
    assert r["effect_a"] == pytest.approx(auc["strong"] - auc["weak"], abs=1e-12)
    assert r["effect_b"] == pytest.approx(auc["on"] - auc["off"], abs=1e-12)
    assert r["diff"] == pytest.approx(r["effect_a"] - r["effect_b"], abs=1e-12)
    assert 0 < r["lo"] < r["diff"] < r["hi"]  # A's effect is clearly the larger
    swapped = stats.compare_effects(y, (mild_on, mild_off), (strong, weak), n_boot=2000, seed=1)
    assert swapped["diff"] == pytest.approx(-r["diff"], abs=1e-12) and swapped["hi"] < 0
    same = stats.compare_effects(y, (strong, weak), (strong, weak), n_boot=500)
    assert same["diff"] == 0 and same["lo"] < 0 < same["hi"]  # seeds resampled independently
    with pytest.raises(ValueError, match="at least one run"):
        stats.compare_effects(y, (strong, []), (mild_on, mild_off))


def test_compare_effects_interval_covers_the_true_difference_of_effects():
    rng = np.random.default_rng(11)
    delta, tau, seeds = 1.5, 0.4, 5
    mus = (-0.3, -1.0, -0.6, -0.9)  # A on, A off, B on, B off
    a_on, a_off, b_on, b_off = (recipe_auc(delta, m, tau) for m in mus)
    true = (a_on - a_off) - (b_on - b_off)
    y = np.r_[np.ones(40, int), np.zeros(120, int)]
    hits, sims = 0, 200
    for i in range(sims):
        u = rng.normal(y * delta, 1.0)
        g = [recipe_scores(rng, y, u, m, tau, seeds) for m in mus]
        r = stats.compare_effects(y, (g[0], g[1]), (g[2], g[3]), n_boot=400, seed=i)
        hits += r["lo"] <= true <= r["hi"]
    # Conservative, as multi-bootstraps are (each seed's case noise enters through both the
    # case and the seed resampling), but never narrower than 95%.
    assert 0.93 <= hits / sims <= 0.995


def test_an_interval_cell_shows_the_estimate_its_bounds_or_what_is_missing():
    assert stats.interval_cell(0.81234, 0.7, 0.9049) == "0.812 [0.700, 0.905]"
    assert stats.interval_cell(0.5, float("nan"), float("nan")) == "0.500"
    assert stats.interval_cell(float("nan"), 0.1, 0.2) == "-"


def test_one_sample_interval_matches_students_t_and_covers_the_mean():
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(400):
        x = rng.normal(0.6, 0.1, size=4)
        r = stats.one_sample(x, null=0.5)
        hits += r["lo"] <= 0.1 <= r["hi"]
    assert 0.92 <= hits / 400 <= 0.98
    x = np.array([0.55, 0.61, 0.7])
    r = stats.one_sample(x, null=0.5)
    half = 4.302652729749464 * x.std(ddof=1) / np.sqrt(3)  # t(0.975, 2)
    assert (r["lo"], r["hi"]) == pytest.approx((x.mean() - 0.5 - half, x.mean() - 0.5 + half))
    flat = stats.one_sample(np.array([2.0, 2.0, 2.0]))
    assert flat["lo"] == flat["hi"] == 2.0 and flat["p"] == 0.0
    with pytest.raises(ValueError, match="at least 2"):
        stats.one_sample(np.array([1.0]))
