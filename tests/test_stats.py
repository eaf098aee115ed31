"""mvlib.instruments.stats: DeLong against a brute-force placement computation, symmetry, and the
coverage of every interval in simulation with a known truth: recipes of 3, 4, 5 and 10 seeds
on the laptop profile's test split (and the old seed x case bootstrap failing that check)."""

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from mvlib.instruments import stats


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


# --- recipes: a few seeds on shared test cases ----------------------------------------------

M, N = 41, 279  # the laptop profile's test split: 320 breasts, 13% malignant
Y = np.r_[np.ones(M, int), np.zeros(N, int)]
SD_CASE = 0.5  # a case's difficulty, shared by every run: the runs' case errors correlate


def draw_recipes(rng, mus, tau, k, noise=1.0):
    """One test set and, per recipe, k seeds' scores (mu + b_seed) * y + d_case + noise,
    b_seed ~ N(0, tau): the seed effect moves the whole run, the case effect every run."""
    d = rng.normal(0, SD_CASE, len(Y))
    return [[(mu + rng.normal(0, tau)) * Y + d + rng.normal(0, noise, len(Y))
             for _ in range(k)] for mu in mus]


def expected_auc(mu, tau, noise=1.0):
    """A recipe's AUC expected over seeds and test sets: P(score+ > score-) with
    score+ - score- ~ N(mu + b, 2 (SD_CASE^2 + noise^2)), b ~ N(0, tau^2)."""
    return float(norm.cdf(mu / np.sqrt(2 * (SD_CASE**2 + noise**2) + tau**2)))


def old_seed_case_bootstrap(y, runs_a, runs_b, rng, n_boot=400):
    """The interval compare_recipes had before (a seed x case percentile bootstrap,
    "multi-bootstrap", Sellam et al. 2022): kept here to show the coverage test sees it fail."""
    y = y.astype(bool)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    cases = np.concatenate([rng.choice(pos, (n_boot, len(pos))),
                            rng.choice(neg, (n_boot, len(neg)))], axis=1)
    diffs = 0
    for sign, runs in ((1, runs_a), (-1, runs_b)):
        boot = stats.aucs_on_cases(np.stack(runs), cases, pos, neg)  # (k, n_boot)
        draw = rng.integers(0, len(runs), (n_boot, len(runs)))
        diffs = diffs + sign * boot[draw.T, np.arange(n_boot)[None, :]].mean(axis=0)
    return np.quantile(diffs, [0.025, 0.975])


SPREAD = {"large": 0.6, "small": 0.05}  # tau: seeds' AUC sd ~0.11 (most of the variance) / ~0.01
RECIPES = {"equal": (1.2, 1.2), "unequal": (1.2, 1.8)}


@pytest.mark.parametrize("k", [3, 4, 5, 10])
@pytest.mark.parametrize("spread", list(SPREAD))
@pytest.mark.parametrize("recipes", list(RECIPES))
def test_compare_recipes_covers_at_a_few_seeds(k, spread, recipes):
    """95% means at least 93% (the nominal level less 2.4 Monte Carlo standard errors at 700
    replications) with test sets and seeds drawn afresh, at 3, 4, 5 and 10 seeds."""
    rng = np.random.default_rng(k * 100 + len(spread) + len(recipes))
    tau, mus = SPREAD[spread], RECIPES[recipes]
    truth = expected_auc(mus[0], tau) - expected_auc(mus[1], tau)
    hits = [(lambda r: r["lo"] <= truth <= r["hi"])(
        stats.compare_recipes(Y, *draw_recipes(rng, mus, tau, k))) for _ in range(700)]
    assert np.mean(hits) >= 0.93


def test_the_coverage_check_fails_the_seed_case_bootstrap_at_three_seeds():
    """The bootstrap over three seeds draws from 10 seed sets and shrinks their variance by
    2/3: with a large seed spread it covers far less than 95%, and the check above sees it."""
    rng = np.random.default_rng(0)
    tau, mus = SPREAD["large"], RECIPES["equal"]
    hits = []
    for _ in range(300):
        lo, hi = old_seed_case_bootstrap(Y, *draw_recipes(rng, mus, tau, 3), rng)
        hits.append(lo <= 0 <= hi)
    assert np.mean(hits) < 0.93


@pytest.mark.parametrize("k", [3, 4])
@pytest.mark.parametrize("tau", [0.3, 0.05])  # seeds' AUC sd ~0.05 (Joint ResNet's) / ~0.01
def test_recipe_ci_covers_the_recipes_expected_auc(k, tau, mu=1.2):
    """One recipe's interval at an expected AUC of 0.77. Its limits, measured with this
    simulation: three seeds' per-seed AUCs are skewed, so at AUC 0.94 (tau 0.3) or at the
    comparisons' large spread (AUC sd ~0.11) it covers 92-93%, not 95%."""
    rng = np.random.default_rng(k + int(100 * tau) + int(mu))
    truth = expected_auc(mu, tau)
    hits = []
    for i in range(1000):
        runs = draw_recipes(rng, (mu,), tau, k)[0]
        mean, lo, hi = stats.recipe_ci(Y, runs)
        if i == 0:
            assert mean == pytest.approx(np.mean([roc_auc_score(Y, r) for r in runs]))
            assert 0 < lo < mean < hi < 1
        hits.append(lo <= truth <= hi)
    assert np.mean(hits) >= 0.93
    with pytest.raises(ValueError, match="at least one run"):
        stats.recipe_ci(Y, [])
    assert np.isnan(stats.recipe_ci(Y, runs[:1])[1])  # one seed: no interval


@pytest.mark.parametrize("spread", list(SPREAD))
def test_compare_effects_covers_at_three_seeds(spread):
    rng = np.random.default_rng(len(spread))
    tau, mus = SPREAD[spread], (1.8, 1.0, 1.4, 1.2)  # A with, A without, B with, B without
    e = [expected_auc(m, tau) for m in mus]
    truth = (e[0] - e[1]) - (e[2] - e[3])
    hits = []
    for _ in range(500):
        g = draw_recipes(rng, mus, tau, 3)
        r = stats.compare_effects(Y, (g[0], g[1]), (g[2], g[3]))
        hits.append(r["lo"] <= truth <= r["hi"])
    assert np.mean(hits) >= 0.93


def test_seeds_that_barely_differ_give_the_test_cases_interval():
    """When the runs are nearly the same model (no seed effect, small run-to-run noise) the
    interval is about that of the test cases alone (DeLong's, of the seeds' mean AUC), not
    the width a t with 2 degrees of freedom would give it, and it still covers."""
    rng = np.random.default_rng(3)
    mus, noise = (0.6, 0.9), 0.1  # AUCs 0.80 and 0.89, far enough from 1 for DeLong
    truth = expected_auc(mus[0], 0, noise) - expected_auc(mus[1], 0, noise)
    ratios, hits = [], []
    for _ in range(400):
        a, b = draw_recipes(rng, mus, 0.0, 3, noise)
        r = stats.compare_recipes(Y, a, b)
        aucs, cov = stats.delong(Y, *a, *b)
        u = np.r_[np.full(3, 1 / 3), np.full(3, -1 / 3)]
        ratios.append((r["hi"] - r["lo"]) / (2 * 1.959964 * np.sqrt(u @ cov @ u)))
        hits.append(r["lo"] <= truth <= r["hi"])
    assert np.mean(ratios) < 1.15 and np.mean(hits) >= 0.93


def test_seed_case_contrast_by_hand():
    """Two recipes of three seeds with a known case covariance: the variance components,
    Satterthwaite's degrees of freedom and the t interval written out."""
    x = np.array([0.80, 0.86, 0.74, 0.70, 0.71, 0.69])
    c = np.full((6, 6), 1e-4) + np.eye(6) * 3e-4  # case variance 4e-4, covariance 1e-4
    r = stats.seed_case_contrast(x, c, [3, 3], [1.0, -1.0])
    within = 4e-4 - 1e-4  # the part of a seed's sample variance the case errors explain
    s2a, s2b = x[:3].var(ddof=1), x[3:].var(ddof=1)
    assert s2a > within > s2b  # A's seeds differ beyond case noise, B's do not
    var_seed = (s2a - within) / 3
    u = np.r_[np.full(3, 1 / 3), np.full(3, -1 / 3)]
    var_case = u @ c @ u
    df = (var_seed + var_case) ** 2 / ((s2a / 3) ** 2 / 2 + (s2b / 3) ** 2 / 2)
    from scipy.stats import t
    se = np.sqrt(var_seed + var_case)
    assert r["diff"] == pytest.approx(0.8 - 0.7)
    assert (r["var_seed"], r["var_case"], r["df"]) == pytest.approx((var_seed, var_case, df))
    assert (r["lo"], r["hi"]) == pytest.approx((0.1 - t.ppf(0.975, df) * se,
                                                0.1 + t.ppf(0.975, df) * se))
    assert r["p"] == pytest.approx(2 * t.sf(0.1 / se, df))
    assert r["mdd"] == pytest.approx((t.ppf(0.975, df) + t.ppf(0.8, df)) * se)
    assert r["seed_share"] == pytest.approx(var_seed / (var_seed + var_case))
    exact = stats.seed_case_contrast(np.array([0.3] * 3 + [0.1 + 0.2] * 3), np.zeros((6, 6)),
                                     [3, 3], [1.0, -1.0])
    assert exact["diff"] == 0 and exact["p"] == 1.0  # no spread: rounding is no difference
    one = stats.seed_case_contrast(x[:4], c[:4, :4], [3, 1], [1.0, -1.0])
    assert np.isnan(one["lo"]) and np.isnan(one["hi"])  # one seed: no seed variance to judge
    with pytest.raises(ValueError, match="do not fit"):
        stats.seed_case_contrast(x, c, [3, 2], [1.0, -1.0])
    with pytest.raises(ValueError, match="do not fit"):
        stats.seed_case_contrast(x, c, [6, 0], [1.0, -1.0])


def test_a_normal_quantile_would_not_cover_at_three_seeds():
    """The coverage check has power: the same variance with z instead of t (what ignoring
    that three seeds estimate their spread badly amounts to) covers under 93%."""
    rng = np.random.default_rng(8)
    tau, mus = SPREAD["large"], RECIPES["equal"]
    hits = []
    for _ in range(700):
        r = stats.compare_recipes(Y, *draw_recipes(rng, mus, tau, 3))
        half = 1.959964 * r["se"]
        hits.append(abs(r["diff"]) <= half)
    assert np.mean(hits) < 0.93


def test_compare_recipes_swaps_symmetrically_and_counts_wins():
    rng = np.random.default_rng(1)
    a, b = draw_recipes(rng, (1.2, 1.8), 0.3, 5)
    seeds = list(range(5))
    ab = stats.compare_recipes(Y, a, b, seeds_a=seeds, seeds_b=seeds)
    ba = stats.compare_recipes(Y, b, a, seeds_a=seeds, seeds_b=seeds)
    assert ab["diff"] == pytest.approx(-ba["diff"], abs=1e-12)
    assert (ab["lo"], ab["hi"]) == pytest.approx((-ba["hi"], -ba["lo"]), abs=1e-12)
    assert ab["p"] == pytest.approx(ba["p"])
    assert ab["p_a_better"] == pytest.approx(1 - ba["p_a_better"])
    aucs_a = [roc_auc_score(Y, s) for s in a]
    aucs_b = [roc_auc_score(Y, s) for s in b]
    assert ab["diff"] == pytest.approx(np.mean(aucs_a) - np.mean(aucs_b), abs=1e-12)
    wins = np.mean([[x > z for z in aucs_b] for x in aucs_a])
    assert ab["p_a_better"] == pytest.approx(wins)
    assert ab["lo"] < ab["diff"] < ab["hi"] and not ab["paired"]
    assert ab["seed_corr"] == pytest.approx(np.corrcoef(aucs_a, aucs_b)[0, 1])
    with pytest.raises(ValueError, match="do not match"):
        stats.compare_recipes(Y, a, [b[0][:-1]])
    with pytest.raises(ValueError, match="at least one run"):
        stats.compare_recipes(Y, a, [])


def test_compare_recipes_pairs_only_when_asked_and_by_seed_value():
    rng = np.random.default_rng(4)
    a = draw_recipes(rng, (1.2,), 0.5, 4)[0]
    order = [2, 0, 3, 1]  # B is A itself, listed in another seed order
    b = [a[i] for i in order]
    same = stats.compare_recipes(Y, a, b, seeds_a=[0, 1, 2, 3], seeds_b=order,
                                 paired_seeds=True)
    assert same["paired"] and same["lo"] == same["hi"] == 0 and same["p"] == 1.0
    assert same["seed_corr"] == pytest.approx(1.0)  # matched by value, not by position
    unpaired = stats.compare_recipes(Y, a, b, seeds_a=[0, 1, 2, 3], seeds_b=order)
    assert not unpaired["paired"] and unpaired["lo"] < 0 < unpaired["hi"]
    with pytest.raises(ValueError, match="same seed values"):
        stats.compare_recipes(Y, a[:3], a[1:], seeds_a=[0, 1, 2], seeds_b=[1, 2, 3],
                              paired_seeds=True)
    with pytest.raises(ValueError, match="each run's seed once"):
        stats.compare_recipes(Y, a, a, seeds_a=[0, 0, 1, 2], seeds_b=[0, 1, 2, 3])


def test_p_text_says_p_below_one_over_b_for_a_bootstrap_p_of_zero():
    assert stats.p_text(0.0, 10000) == "p < 0.0001"
    assert stats.p_text(0.0312, 10000) == "p = 0.031"
    assert stats.p_text(2e-6) == "p = 2.0e-06"


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
def test_aucs_on_cases_equal_the_midrank_auc_of_each_resample_exactly(m, n):
    rng = np.random.default_rng(3)
    y = np.r_[np.ones(m, int), np.zeros(n, int)]
    scores = [np.round(rng.normal(size=m + n) + y, 1) for _ in range(2)]  # many ties
    pos, neg = np.flatnonzero(y), np.flatnonzero(y == 0)
    cases = np.concatenate([rng.choice(pos, (60, m)), rng.choice(neg, (60, n))], axis=1)
    boot = stats.aucs_on_cases(np.stack(scores), cases, pos, neg)
    for k, s in enumerate(scores):
        expect = [roc_auc_score(y[c], s[c]) for c in cases]
        np.testing.assert_allclose(boot[k], expect, rtol=0, atol=1e-12)


def test_compare_effects_is_the_difference_of_two_recipe_differences():
    rng = np.random.default_rng(7)
    strong, weak, on, off = draw_recipes(rng, (2.5, 0.0, 1.3, 1.1), 0.2, 3)
    r = stats.compare_effects(Y, (strong, weak), (on, off))
    auc = {k: np.mean([roc_auc_score(Y, s) for s in v]) for k, v in
           (("strong", strong), ("weak", weak), ("on", on), ("off", off))}
    assert r["effect_a"] == pytest.approx(auc["strong"] - auc["weak"], abs=1e-12)
    assert r["effect_b"] == pytest.approx(auc["on"] - auc["off"], abs=1e-12)
    assert r["diff"] == pytest.approx(r["effect_a"] - r["effect_b"], abs=1e-12)
    assert 0 < r["lo"] < r["diff"] < r["hi"]  # A's effect is clearly the larger
    swapped = stats.compare_effects(Y, (on, off), (strong, weak))
    assert swapped["diff"] == pytest.approx(-r["diff"], abs=1e-12) and swapped["hi"] < 0
    same = stats.compare_effects(Y, (strong, weak), (strong, weak))
    assert same["diff"] == pytest.approx(0, abs=1e-12) and same["lo"] < 0 < same["hi"]
    with pytest.raises(ValueError, match="at least one run"):
        stats.compare_effects(Y, (strong, []), (on, off))


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
