"""AUC inference: DeLong intervals and tests, and intervals for recipes trained with a few seeds.

* `delong`: the AUCs of k score vectors on the same cases and their covariance (DeLong,
  DeLong & Clarke-Pearson, Biometrics 1988), computed with the midrank algorithm of Sun & Xu
  (IEEE Signal Processing Letters 2014): placements V10 (per positive) and V01 (per
  negative) from midranks, S = cov(V10) / m + cov(V01) / n with m-1 and n-1 denominators.
* `auc_ci`, `delong_test`: the interval of one AUC (as R's pROC: AUC +- z sqrt(S), clipped
  to [0, 1]) and the test of a difference of two correlated AUCs.
* `seed_case_contrast`: a recipe (model + training set-up) trained with several seeds and
  scored on shared test cases varies from seed to seed and from test set to test set. The
  seed part is estimated from 3-4 seeds, so the interval is Student's t with Satterthwaite's
  degrees of freedom over a variance-components estimate; its coverage at 3, 4, 5 and 10
  seeds is a tested property (tests/test_stats.py). `recipe_ci`, `compare_recipes` and
  `compare_effects` are its AUC cases; mvlib.instruments.dependence uses it for every other per-run
  reading, with a case bootstrap for the case covariance.
* `compare_means`: Welch's t interval for per-run readings that are not measured on shared
  cases (an instrument's value per seed); `one_sample` the one-group t.

Ties count 1/2 throughout; a higher score means more likely positive.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm, rankdata, ttest_1samp, ttest_ind
from scipy.stats import t as t_dist


def _checked(y: np.ndarray, scores: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Labels as booleans and scores as a (k, N) float64 array, or a ValueError that says
    what is wrong with them."""
    y = np.asarray(y)
    if y.ndim != 1 or not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be a 1-D array of 0 and 1")
    if not scores:
        raise ValueError("no score vector given")
    arrays = [np.asarray(x, dtype=np.float64) for x in scores]
    if bad := sorted({x.shape for x in arrays if x.shape != y.shape}):
        raise ValueError(f"score shapes {bad} do not match the labels' {y.shape}")
    s = np.stack(arrays)
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinite values")
    m = int(y.sum())
    if m < 2 or len(y) - m < 2:
        raise ValueError(f"need at least 2 cases of each class, got {m} positive and "
                         f"{len(y) - m} negative")
    return y.astype(bool), s


def delong(y: np.ndarray, *scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs (shape (k,)) of k score vectors on the same cases and their DeLong covariance
    (shape (k, k))."""
    y, s = _checked(y, scores)
    pos, neg = s[:, y], s[:, ~y]
    m, n = pos.shape[1], neg.shape[1]
    tz = rankdata(np.concatenate([pos, neg], axis=1), axis=1)  # midranks, float64
    tx, ty = rankdata(pos, axis=1), rankdata(neg, axis=1)
    v10 = (tz[:, :m] - tx) / n  # per positive: the share of negatives it outranks
    v01 = 1.0 - (tz[:, m:] - ty) / m  # per negative: the share of positives above it
    aucs = v10.mean(axis=1)
    cov = np.atleast_2d(np.cov(v10, ddof=1)) / m + np.atleast_2d(np.cov(v01, ddof=1)) / n
    return aucs, cov


def _z(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return float(norm.ppf(0.5 + level / 2))


def auc_ci(y: np.ndarray, score: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(AUC, lower, upper): the DeLong interval on the AUC scale, clipped to [0, 1]."""
    aucs, cov = delong(y, score)
    half = _z(level) * float(np.sqrt(cov[0, 0]))
    a = float(aucs[0])
    return a, max(0.0, a - half), min(1.0, a + half)


def delong_test(y: np.ndarray, a: np.ndarray, b: np.ndarray, level: float = 0.95) -> dict:
    """AUC_a - AUC_b on the same cases: `diff`, its interval `lo`, `hi`, the statistic `z`
    and the two-sided `p`. Identical scores give diff 0, z 0 and p 1."""
    aucs, cov = delong(y, a, b)
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    if var <= 1e-15 * max(1.0, float(cov[0, 0] + cov[1, 1])):  # the same ranking of cases
        return {"diff": diff, "lo": diff, "hi": diff, "z": 0.0 if diff == 0 else
                float(np.sign(diff) * np.inf), "p": 1.0 if diff == 0 else 0.0}
    sd = np.sqrt(var)
    z = diff / sd
    half = _z(level) * sd
    return {"diff": diff, "lo": diff - half, "hi": diff + half, "z": float(z),
            "p": float(2 * norm.sf(abs(z)))}


def aucs_on_cases(s: np.ndarray, cases: np.ndarray, pos: np.ndarray, neg: np.ndarray
                  ) -> np.ndarray:
    """AUC of every score vector (rows of `s`) on every resample of cases (rows of `cases`,
    its first len(pos) columns positives; `pos`, `neg`: the case indices of each class):
    shape (k, B). Small test sets count how often each case was drawn and weight the
    placement matrix psi(positive i, negative j) (1 above, 1/2 tied) with those counts,
    AUC = c_pos' psi c_neg / (m n): the same exact sum of halves as the midrank formula,
    without a sort per resample. Large ones rank each resample."""
    m0, n0, nb = len(pos), len(neg), len(cases)
    m, n = m0, cases.shape[1] - m0
    out = np.empty((len(s), nb))
    if m0 * n0 > 256 * (m0 + n0):
        for i, row in enumerate(s):
            ranks = rankdata(row[cases], axis=1)  # midranks within each resample
            out[i] = (ranks[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)
        return out
    where = np.empty(m0 + n0, dtype=np.int64)
    where[pos], where[neg] = np.arange(m0), np.arange(n0)
    offsets = np.arange(nb)[:, None]
    c_pos = np.bincount((offsets * m0 + where[cases[:, :m]]).ravel(),
                        minlength=nb * m0).reshape(nb, m0).astype(np.float64)
    c_neg = np.bincount((offsets * n0 + where[cases[:, m:]]).ravel(),
                        minlength=nb * n0).reshape(nb, n0).astype(np.float64)
    for i, row in enumerate(s):
        a, b = row[pos][:, None], row[neg][None, :]
        psi = (a > b) + 0.5 * (a == b)
        out[i] = ((c_pos @ psi) * c_neg).sum(axis=1) / (m * n)
    return out


def seed_case_contrast(values: np.ndarray, case_cov: np.ndarray, sizes: list[int],
                       weights: list[float], level: float = 0.95) -> dict:
    """A linear contrast sum_g w_g mean(group g's per-run readings) of groups of runs (one
    per seed, `sizes` of them each, in order in `values`) measured on the same test cases,
    with an interval that carries both the seed-to-seed and the test-case variation and
    keeps its level at three or four seeds.

    `case_cov` is the covariance of the runs' readings over resamples of the test cases
    (DeLong's for AUCs). Each reading is x = mu_g + b (the seed's effect, variance tau_g^2)
    + e (the test cases' error, covariance `case_cov`), so the contrast's variance is
        V = sum_g w_g^2 tau_g^2 / k_g  +  u' C u     (u_r = w_g / k_g),
    the seed part and the test cases' part. tau_g^2 is estimated by the method of moments of
    a one-way random-effects model (Searle, Casella & McCulloch, "Variance Components",
    1992, ch. 3): the seeds' sample variance less the part of it the case errors explain,
    s_g^2 - (mean case variance - mean case covariance between the group's runs), floored
    at 0. The interval is Student's t with Satterthwaite's degrees of freedom (Satterthwaite,
    Biometrics Bulletin 1946) for V as a sum of the seeds' sample variances (k_g - 1 degrees
    of freedom each) and the case part, from hundreds of cases, taken as known; never below
    the fewest seeds' k_g - 1. At
    three seeds whose spread dominates this is t with about 2 degrees of freedom (quantile
    4.3, not 1.96): a bootstrap over three seeds cannot see that and undercovers.

    Returns `diff` (the contrast), `se`, `df`, `lo`, `hi`, two-sided `p` (the same t), `mdd`
    (the smallest true difference this design detects with 80% power in a two-sided 5%-level
    test: (t_{1-a/2} + t_{0.8}) se), `var_seed`, `var_case` and `seed_share` (the seed part's
    share of V). The interval is NaN where a group with a nonzero weight has one run (its
    seed variance cannot be estimated)."""
    x = np.asarray(values, np.float64)
    c = np.asarray(case_cov, np.float64)
    if (len(sizes) != len(weights) or sum(sizes) != len(x) or min(sizes, default=0) < 1
            or c.shape != (len(x), len(x))):
        raise ValueError(f"{len(x)} readings, a {c.shape} covariance, sizes {list(sizes)} and "
                         f"weights {list(weights)} do not fit together")
    if not (np.isfinite(x).all() and np.isfinite(c).all()):
        raise ValueError("readings or their case covariance are not finite")
    _z(level)
    u = np.concatenate([np.full(k, w / k) for k, w in zip(sizes, weights, strict=True)])
    means = [float(m.mean()) for m in np.split(x, np.cumsum(sizes)[:-1])]
    est = float(sum(w * m for w, m in zip(weights, means, strict=True)))  # 0 for equal groups
    var_case = max(float(u @ c @ u), 0.0)
    var_seed, df_denominator, estimable, df_floor = 0.0, 0.0, True, np.inf
    start = 0
    for k, w in zip(sizes, weights, strict=True):
        part, cg = x[start:start + k], c[start:start + k, start:start + k]
        start += k
        if w == 0:
            continue
        if k < 2:
            estimable = False
            continue
        within = np.trace(cg) / k - (cg.sum() - np.trace(cg)) / (k * (k - 1))
        s2 = float(part.var(ddof=1))
        var_seed += w * w * max(s2 - within, 0.0) / k  # the seed effect beyond the cases'
        df_denominator += (w * w * s2 / k) ** 2 / (k - 1)
        df_floor = min(df_floor, k - 1)
    v = var_seed + var_case
    out = {"diff": est, "se": float(np.sqrt(v)), "var_seed": var_seed, "var_case": var_case,
           "seed_share": var_seed / v if v > 0 else float("nan")}
    if not estimable:
        return {**out, "df": float("nan"), "lo": float("nan"), "hi": float("nan"),
                "p": float("nan"), "mdd": float("nan")}
    # Never fewer degrees of freedom than the fewest seeds give: where the case parts cancel
    # (the same runs on both sides) V can be far below the seed terms' sum.
    df = max(v * v / df_denominator, df_floor) if df_denominator > 0 else float("inf")
    se = out["se"]
    q = float(t_dist.ppf(0.5 + level / 2, df))
    mdd = (float(t_dist.ppf(0.975, df)) + float(t_dist.ppf(0.8, df))) * se
    if se == 0:  # no spread at all: the difference is exact (up to rounding)
        est = 0.0 if abs(est) <= 1e-12 else est
        out["diff"] = est
        p = 1.0 if est == 0 else 0.0
    else:
        p = float(2 * t_dist.sf(abs(est) / se, df))
    return {**out, "df": float(df), "lo": est - q * se, "hi": est + q * se, "p": p,
            "mdd": float(mdd)}


def recipe_ci(y: np.ndarray, runs: list[np.ndarray], level: float = 0.95
              ) -> tuple[float, float, float]:
    """(mean AUC over the seeds' runs, lower, upper): the interval each AUC cell of the
    tables carries, `seed_case_contrast` of one recipe with DeLong's case covariance, formed
    on the logit scale (delta method around the mean AUC, bounds mapped back): near AUC 1
    with a few dozen positives a Wald interval on the AUC scale undercovers (in simulation
    90% at AUC 0.94 with 41 positives, the logit form 93%, and 92% for three seeds
    spread like Joint ResNet's around that AUC; Pepe, "The Statistical
    Evaluation of Medical Tests", 2003, sec. 5.2; Qin & Hotilovac, Stat Methods Med Res
    2008). The bounds stay inside (0, 1). One run has no seed variance to estimate: NaN
    bounds."""
    if not runs:
        raise ValueError("a recipe needs at least one run")
    aucs, cov = delong(y, *runs)
    r = seed_case_contrast(aucs, cov, [len(runs)], [1.0], level)
    a, se = r["diff"], r["se"]
    if r["lo"] != r["lo"]:
        return a, r["lo"], r["hi"]
    if not 0 < a < 1:  # every run at 0 or at 1
        return a, max(0.0, r["lo"]), min(1.0, r["hi"])
    half = float(t_dist.ppf(0.5 + level / 2, r["df"])) * se / (a * (1 - a))
    g = float(np.log(a / (1 - a)))
    return a, float(1 / (1 + np.exp(-(g - half)))), float(1 / (1 + np.exp(-(g + half))))


def at_chance(y: np.ndarray, runs: list[np.ndarray], level: float = 0.95) -> str | None:
    """Why a recipe tests nothing, or None: its test AUC interval (`recipe_ci`; DeLong's for
    one run) reaches down to 0.5, so the model is not distinguishable from chance and any
    claim that compares it says nothing about the method."""
    if len(runs) == 1:
        a, lo, hi = auc_ci(y, runs[0], level)
    else:
        a, lo, hi = recipe_ci(y, runs, level)
    if lo <= 0.5:
        return (f"test AUC {a:.3f} [{lo:.3f}, {hi:.3f}] includes 0.5: a model at chance "
                "tests nothing")
    return None


def compare_recipes(y: np.ndarray, runs_a: list[np.ndarray], runs_b: list[np.ndarray],
                    level: float = 0.95, seeds_a: list[int] | None = None,
                    seeds_b: list[int] | None = None, paired_seeds: bool = False) -> dict:
    """Recipe A against recipe B, each a list of per-seed score vectors on the same cases:
    `seed_case_contrast` of mean AUC(A) - mean AUC(B) with DeLong's covariance of all the
    runs' AUCs (so the test cases' part counts their shared cases once).

    Seeds pair only when `paired_seeds` is True, for runs that share something real (the
    same initial weights or data order): then the per-seed differences are the readings.
    A seed integer shared by two different models pairs nothing, so by default the recipes'
    seeds are independent. Where both recipes ran the same seed values, `seed_corr` is the
    correlation of their per-seed AUCs matched by seed (NaN otherwise): what pairing would
    have used. Also returned: `mean_a`, `mean_b`, the run counts `n_a` and `n_b`, `paired`
    and `p_a_better`, the probability that a seed of A beats a seed of B on this test set
    (ties 1/2)."""
    if not runs_a or not runs_b:
        raise ValueError("each recipe needs at least one run")
    for name, seeds, runs in (("seeds_a", seeds_a, runs_a), ("seeds_b", seeds_b, runs_b)):
        if seeds is not None and (len(seeds) != len(runs) or len(set(seeds)) != len(seeds)):
            raise ValueError(f"{name} must name each run's seed once, got {list(seeds)} for "
                             f"{len(runs)} runs")
    same_seeds = (seeds_a is not None and seeds_b is not None
                  and sorted(seeds_a) == sorted(seeds_b))
    if paired_seeds and not same_seeds:
        raise ValueError("paired seeds need the same seed values in both recipes "
                         "(seeds_a, seeds_b)")
    if same_seeds:  # B's runs in the order of A's seeds
        runs_b = [runs_b[list(seeds_b).index(s)] for s in seeds_a]
    ka = len(runs_a)
    aucs, cov = delong(y, *runs_a, *runs_b)
    a, b = aucs[:ka], aucs[ka:]
    if paired_seeds:
        t = np.hstack([np.eye(ka), -np.eye(ka)])  # per-seed differences
        r = seed_case_contrast(t @ aucs, t @ cov @ t.T, [ka], [1.0], level)
    else:
        r = seed_case_contrast(aucs, cov, [ka, len(runs_b)], [1.0, -1.0], level)
    corr = float("nan")
    if same_seeds and ka > 2 and a.std() > 0 and b.std() > 0:
        corr = float(np.corrcoef(a, b)[0, 1])
    wins = (a[:, None] > b[None, :]) + 0.5 * (a[:, None] == b[None, :])
    return {**r, "paired": bool(paired_seeds), "seed_corr": corr,
            "p_a_better": float(wins.mean()), "mean_a": float(a.mean()),
            "mean_b": float(b.mean()), "n_a": ka, "n_b": len(runs_b)}


def p_text(p: float, n_boot: int | None = None) -> str:
    """A p-value for prose: a bootstrap or permutation p of 0 is 'p < 1/B' (no replicate
    crossed 0), small analytic ones in scientific notation."""
    if p != p:
        return "p = -"
    if n_boot and p < 1 / n_boot:
        return f"p < {1 / n_boot:g}"
    return f"p = {p:.3f}" if p >= 0.001 else f"p = {p:.1e}"


def compare_effects(y: np.ndarray, a: tuple[list[np.ndarray], list[np.ndarray]],
                    b: tuple[list[np.ndarray], list[np.ndarray]], level: float = 0.95) -> dict:
    """Whether an effect is smaller under recipe A than under recipe B: each of `a` and `b` is
    (runs with the effect, runs without it), per-seed score vectors on the same cases, and
    the effect is the difference of their mean AUCs. Returns `seed_case_contrast` of
    effect_A - effect_B (four groups, seeds independent, DeLong's covariance of all runs)
    and `effect_a`, `effect_b`. (A planted cue's effect under a balancing method against
    under the plain model: notebook 08.)"""
    groups = [*a, *b]
    if any(not g for g in groups):
        raise ValueError("each of the four groups needs at least one run")
    aucs, cov = delong(y, *(x for g in groups for x in g))
    sizes = [len(g) for g in groups]
    means = [m.mean() for m in np.split(aucs, np.cumsum(sizes)[:-1])]
    r = seed_case_contrast(aucs, cov, sizes, [1.0, -1.0, -1.0, 1.0], level)
    return {**r, "effect_a": float(means[0] - means[1]), "effect_b": float(means[2] - means[3])}


def compare_means(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> dict:
    """Two groups of per-run numbers (one value per seed, e.g. an instrument's reading):
    Welch's t interval of mean(a) - mean(b) (unequal variances; Welch, Biometrika 1947) with
    `diff`, `lo`, `hi`, `p` (two-sided), `mean_a`, `mean_b`. For quantities that are not AUCs
    on shared cases, where `compare_recipes` does not apply."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    for name, x in (("a", a), ("b", b)):
        if x.ndim != 1 or len(x) < 2:
            raise ValueError(f"group {name} needs at least 2 values, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError(f"group {name} has non-finite values")
    diff = float(a.mean() - b.mean())
    if a.var() == 0 and b.var() == 0:  # no spread at all: the difference is exact
        return {"diff": diff, "lo": diff, "hi": diff, "p": 1.0 if diff == 0 else 0.0,
                "mean_a": float(a.mean()), "mean_b": float(b.mean())}
    res = ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(level)
    return {"diff": diff, "lo": float(ci.low), "hi": float(ci.high), "p": float(res.pvalue),
            "mean_a": float(a.mean()), "mean_b": float(b.mean())}


def one_sample(x: np.ndarray, null: float = 0.0, level: float = 0.95) -> dict:
    """Per-run readings (one per seed, or per paired seeds' difference) against a fixed value:
    Student's t interval of mean(x) - `null` with `diff`, `lo`, `hi`, two-sided `p`, `mean`
    and `n`. Readings without spread give an exact difference (p 1 at the null, else 0)."""
    x = np.asarray(x, float)
    if x.ndim != 1 or len(x) < 2:
        raise ValueError(f"need at least 2 readings, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("readings contain NaN or infinite values")
    diff = float(x.mean() - null)
    if x.var() == 0:
        return {"diff": diff, "lo": diff, "hi": diff, "p": 1.0 if diff == 0 else 0.0,
                "mean": float(x.mean()), "n": len(x)}
    res = ttest_1samp(x, null)
    ci = res.confidence_interval(level)
    return {"diff": diff, "lo": float(ci.low) - null, "hi": float(ci.high) - null,
            "p": float(res.pvalue), "mean": float(x.mean()), "n": len(x)}


def interval_cell(value: float, lo: float, hi: float) -> str:
    """An estimate and its 95% interval as one table cell: '0.812 [0.701, 0.904]'; '-' when
    there is no estimate, the bare value when there is no interval."""
    if value != value:
        return "-"
    return f"{value:.3f}" + ("" if lo != lo else f" [{lo:.3f}, {hi:.3f}]")
