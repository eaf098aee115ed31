"""AUC inference: DeLong intervals and tests, and a seed x case bootstrap for recipes.

* `delong`: the AUCs of k score vectors on the same cases and their covariance (DeLong,
  DeLong & Clarke-Pearson, Biometrics 1988), computed with the midrank algorithm of Sun & Xu
  (IEEE Signal Processing Letters 2014): placements V10 (per positive) and V01 (per
  negative) from midranks, S = cov(V10) / m + cov(V01) / n with m-1 and n-1 denominators.
* `auc_ci`, `delong_test`: the interval of one AUC (as R's pROC: AUC +- z sqrt(S), clipped
  to [0, 1]) and the test of a difference of two correlated AUCs.
* `compare_recipes`: two recipes (model + training set-up) each trained with several seeds
  and scored on the same test cases. Each bootstrap replicate resamples seeds and, stratified
  by label, test cases (the same cases for every model), averages each recipe's per-seed
  AUCs and takes the difference: the "multi-bootstrap" of Sellam et al. (ICLR 2022), so the
  interval carries both the seed-to-seed and the test-set variation.
* `compare_means`: Welch's t interval for per-run readings that are not AUCs (an
  instrument's value per seed).

Ties count 1/2 throughout; a higher score means more likely positive.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm, rankdata, ttest_1samp, ttest_ind


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


def bootstrap_aucs(y: np.ndarray, scores: list[np.ndarray], n_boot: int,
                   rng: np.random.Generator) -> np.ndarray:
    """AUC of every score vector on `n_boot` resamples of the cases drawn from `rng` within
    each class (the same cases for every vector): shape (k, n_boot). What the seed x case
    bootstraps here and in mvlib.reliance resample seeds from."""
    y, s = _checked(y, tuple(scores))
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    cases = np.concatenate([rng.choice(pos, (n_boot, len(pos))),
                            rng.choice(neg, (n_boot, len(neg)))], axis=1)
    return aucs_on_cases(s, cases, pos, neg)


def _recipe_means(y: np.ndarray, s: np.ndarray, sizes: list[int], n_boot: int, seed: int,
                  paired: bool) -> np.ndarray:
    """Bootstrap replicates (shape (len(sizes), n_boot)) of each recipe's mean AUC over its
    seeds; the rows of `s` are the recipes' runs in order (`sizes` of them each). Each
    replicate resamples test cases within each class (the same cases for every run) and each
    recipe's seeds, with one shared draw when `paired`."""
    rng = np.random.default_rng(seed)
    boot = bootstrap_aucs(y, list(s), n_boot, rng)
    cols, out, start = np.arange(n_boot)[:, None], [], 0
    shared = rng.integers(0, sizes[0], (n_boot, sizes[0])) if paired else None
    for k in sizes:
        draw = shared if paired else rng.integers(0, k, (n_boot, k))
        out.append(boot[start:start + k][draw.T, cols.T].mean(axis=0))
        start += k
    return np.array(out)


def recipe_ci(y: np.ndarray, runs: list[np.ndarray], n_boot: int = 10000, seed: int = 0,
              level: float = 0.95) -> tuple[float, float, float]:
    """(mean AUC over the seeds' runs, lower, upper): the percentile interval of the seed x
    case bootstrap, the interval each AUC cell of the tables carries."""
    if not runs:
        raise ValueError("a recipe needs at least one run")
    y, s = _checked(y, tuple(runs))
    means = _recipe_means(y, s, [len(runs)], n_boot, seed, paired=False)[0]
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(delong(y, *s)[0].mean()), float(lo), float(hi)


def compare_recipes(y: np.ndarray, runs_a: list[np.ndarray], runs_b: list[np.ndarray],
                    n_boot: int = 10000, seed: int = 0, level: float = 0.95,
                    seeds_a: list[int] | None = None, seeds_b: list[int] | None = None,
                    paired_seeds: bool | None = None) -> dict:
    """Recipe A against recipe B, each a list of per-seed score vectors on the same cases.

    Returns `diff` (mean AUC of A's seeds - mean of B's; the two means are `mean_a` and
    `mean_b`), the percentile interval `lo`, `hi` of the seed x case bootstrap, its two-sided
    `p` (twice the smaller share of replicates on either side of 0; 0 means p < 1 / n_boot:
    `p_text`), `n_boot`, whether the seeds were `paired`, and `p_a_better`, the probability
    that a seed of A beats a seed of B on this test set (ties 1/2). Seeds are paired by
    value: when `seeds_a` and `seeds_b` (the runs' seeds) hold the same seeds, B's runs are
    matched to A's and resampled with one shared draw; otherwise (no seeds given, different
    seed lists, e.g. a run that diverged in one recipe only, or `paired_seeds=False`) each
    recipe's seeds are resampled independently. Test cases are resampled within each class.
    """
    if not runs_a or not runs_b:
        raise ValueError("each recipe needs at least one run")
    if n_boot < 1:
        raise ValueError(f"n_boot must be positive, got {n_boot}")
    for name, seeds, runs in (("seeds_a", seeds_a, runs_a), ("seeds_b", seeds_b, runs_b)):
        if seeds is not None and (len(seeds) != len(runs) or len(set(seeds)) != len(seeds)):
            raise ValueError(f"{name} must name each run's seed once, got {list(seeds)} for "
                             f"{len(runs)} runs")
    same_seeds = (seeds_a is not None and seeds_b is not None
                  and sorted(seeds_a) == sorted(seeds_b))
    if paired_seeds and not same_seeds:
        raise ValueError("paired seeds need the same seed values in both recipes "
                         "(seeds_a, seeds_b)")
    paired = same_seeds and paired_seeds is not False
    if paired:  # B's runs in the order of A's seeds
        runs_b = [runs_b[list(seeds_b).index(s)] for s in seeds_a]
    y, s = _checked(y, (*runs_a, *runs_b))
    ka = len(runs_a)
    aucs = delong(y, *s)[0]
    a, b = aucs[:ka], aucs[ka:]
    means = _recipe_means(y, s, [ka, len(runs_b)], n_boot, seed, paired)
    diffs = means[0] - means[1]
    alpha = 1 - level
    lo, hi = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    p = min(1.0, 2 * min(np.mean(diffs <= 0), np.mean(diffs >= 0)))
    wins = (a[:, None] > b[None, :]) + 0.5 * (a[:, None] == b[None, :])
    return {"diff": float(a.mean() - b.mean()), "lo": float(lo), "hi": float(hi),
            "p": float(p), "n_boot": n_boot, "paired": paired,
            "p_a_better": float(wins.mean()), "mean_a": float(a.mean()),
            "mean_b": float(b.mean())}


def p_text(p: float, n_boot: int | None = None) -> str:
    """A p-value for prose: a bootstrap p of 0 is 'p < 1/B' (no replicate crossed 0), small
    analytic ones in scientific notation."""
    if p != p:
        return "p = -"
    if n_boot and p < 1 / n_boot:
        return f"p < {1 / n_boot:g}"
    return f"p = {p:.3f}" if p >= 0.001 else f"p = {p:.1e}"


def compare_effects(y: np.ndarray, a: tuple[list[np.ndarray], list[np.ndarray]],
                    b: tuple[list[np.ndarray], list[np.ndarray]], n_boot: int = 10000,
                    seed: int = 0, level: float = 0.95) -> dict:
    """Whether an effect is smaller under recipe A than under recipe B: each of `a` and `b` is
    (runs with the effect, runs without it), per-seed score vectors on the same cases, and
    the effect is the difference of their mean AUCs. Returns `diff` = effect_A - effect_B,
    the seed x case bootstrap interval `lo`, `hi` (test cases resampled once per replicate
    for all four groups, each group's seeds independently) and two-sided `p`; `effect_a`,
    `effect_b` the two effects. (A planted cue's effect under a balancing method against
    under the plain model: notebook 08.)"""
    groups = [*a, *b]
    if any(not g for g in groups):
        raise ValueError("each of the four groups needs at least one run")
    y, s = _checked(y, tuple(x for g in groups for x in g))
    aucs = delong(y, *s)[0]
    sizes = [len(g) for g in groups]
    means = [m.mean() for m in np.split(aucs, np.cumsum(sizes)[:-1])]
    boot = _recipe_means(y, s, sizes, n_boot, seed, paired=False)
    diffs = (boot[0] - boot[1]) - (boot[2] - boot[3])
    lo, hi = np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2])
    p = min(1.0, 2 * min(np.mean(diffs <= 0), np.mean(diffs >= 0)))
    effect_a, effect_b = means[0] - means[1], means[2] - means[3]
    return {"diff": float(effect_a - effect_b), "lo": float(lo), "hi": float(hi),
            "p": float(p), "effect_a": float(effect_a), "effect_b": float(effect_b)}


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
