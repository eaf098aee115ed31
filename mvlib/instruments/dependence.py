"""Label-free dependence of a two-view decision on each view, and intervals over seeds and cases.

For sum fusion the malignant logit is z = z_cc + z_mlo with z_v = W h_v + b / 2 (Split
ResNet: each uni-view model's logit). Readings of one run on one split's breasts:
  * `s_mlo` = Cov(z_mlo, z) / Var(z) = (Var(z_mlo) + Cov) / Var(z): MLO's share of the
    logit's variation over the breasts, the parts' covariance split evenly between them (no
    labels needed, so it means the same on any split). Split ResNet averages its uni-view
    models' probabilities, so its z_cc + z_mlo is not its logit: its share is of the sum of
    its uni-view logits, which its decision follows only approximately;
  * `dp_mlo` = mean |p_full - p_cc_only|: how far the predicted malignancy probability moves
    when MLO's part is replaced by its training mean (`dp_cc` the mirror);
  * the AUCs full / CC only / MLO only and the utilisation rates u(mlo|cc), u(cc|mlo),
    d_util: each view's contribution to the AUC on that split (Wu et al., ICML 2022);
  * with a counterfactual cue test's columns (`z_on`, `z_off`: the malignant logit with the
    planted marker forced on and off): `cue_logit` = mean(z_on - z_off) and `cue_auc` =
    AUC(z_on) - AUC(z_off).
Intervals over seeds: each run's reading on the whole split, the covariance of the runs'
readings over breast resamples (within each class, the same breasts for every run), and
mvlib.instruments.stats.seed_case_contrast, which adds the seeds' spread with a small-sample t. Pure
numpy: the run folders are read by mvlib.instruments.reliance and mvlib.instruments.cuetest.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata, spearmanr

from mvlib.instruments import stats
from mvlib.instruments.stats import aucs_on_cases, delong

AUC_READINGS = ("full", "cc_only", "mlo_only", "u(mlo|cc)", "u(cc|mlo)", "d_util")
SHARE_READINGS = ("s_mlo", "dp_mlo", "dp_cc")
CUE_READINGS = ("cue_logit", "cue_auc")


def available(pred: pd.DataFrame) -> tuple[str, ...]:
    """The readings `pred` (one run's per-breast columns on one split) has the columns for."""
    out = []
    if {"p_full", "p_cc_only", "p_mlo_only"} <= set(pred):
        out += AUC_READINGS
    if {"z_cc", "z_mlo"} <= set(pred):
        out.append("s_mlo")
    if {"p_full", "p_cc_only", "p_mlo_only"} <= set(pred):
        out += ["dp_mlo", "dp_cc"]
    if {"z_on", "z_off"} <= set(pred):
        out += CUE_READINGS
    return tuple(out)


def share(var_cc: np.ndarray | float, var_mlo: np.ndarray | float,
          cov: np.ndarray | float = 0.0) -> np.ndarray:
    """MLO's share of the variation of z = z_cc + z_mlo: Cov(z_mlo, z) / Var(z) =
    (Var(z_mlo) + Cov) / (Var(z_cc) + Var(z_mlo) + 2 Cov), the covariance split evenly
    between the parts (the two shares sum to 1; parts that work against each other can
    take one below 0 or above 1). NaN where z does not vary."""
    var_cc, var_mlo, cov = (np.asarray(x, float) for x in (var_cc, var_mlo, cov))
    total = var_cc + var_mlo + 2 * cov
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, (var_mlo + cov) / total, np.nan)


@dataclass
class Cases:
    """Bootstrap resamples of one split's breasts: `cases` (n_boot, N) breast indices,
    positives first (as mvlib.instruments.stats lays them out), `pos`, `neg` the class indices and
    `weights` (n_boot, N) how often each breast was drawn. `n_boot` 0: the split itself."""

    cases: np.ndarray
    pos: np.ndarray
    neg: np.ndarray
    weights: np.ndarray

    @classmethod
    def draw(cls, y: np.ndarray, n_boot: int, rng: np.random.Generator) -> Cases:
        y = np.asarray(y).astype(bool)
        pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
        if len(pos) < 2 or len(neg) < 2:
            raise ValueError(f"need at least 2 cases of each class, got {len(pos)} positive "
                             f"and {len(neg)} negative")
        cases = np.concatenate([rng.choice(pos, (n_boot, len(pos))),
                                rng.choice(neg, (n_boot, len(neg)))], axis=1)
        offsets = np.arange(n_boot)[:, None] * len(y)
        w = np.bincount((offsets + cases).ravel(), minlength=n_boot * len(y))
        return cls(cases, pos, neg, w.reshape(n_boot, len(y)).astype(np.float64))


def _mean(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return (w @ x) / w.sum(axis=1)


def run_replicates(pred: pd.DataFrame, c: Cases, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Each reading in `keys` of one run on every resample of `c`: shape (n_boot,)."""
    out: dict[str, np.ndarray] = {}
    w = c.weights
    if "s_mlo" in keys:
        # centred: the moments lose no precision
        z = {v: pred[f"z_{v}"].to_numpy(np.float64) for v in ("cc", "mlo")}
        z = {v: x - x.mean() for v, x in z.items()}
        m = {v: _mean(w, x) for v, x in z.items()}
        var = {v: np.maximum(_mean(w, x**2) - m[v] ** 2, 0.0) for v, x in z.items()}
        cov = _mean(w, z["cc"] * z["mlo"]) - m["cc"] * m["mlo"]
        out["s_mlo"] = share(var["cc"], var["mlo"], cov)
    full = pred["p_full"].to_numpy(np.float64) if "p_full" in pred else None
    for key, other in (("dp_mlo", "p_cc_only"), ("dp_cc", "p_mlo_only")):
        if key in keys:
            out[key] = _mean(w, np.abs(full - pred[other].to_numpy(np.float64)))
    if set(AUC_READINGS) & set(keys):
        s = np.stack([pred[f"p_{n}"].to_numpy(np.float64) for n in AUC_READINGS[:3]])
        a = dict(zip(AUC_READINGS[:3], aucs_on_cases(s, c.cases, c.pos, c.neg), strict=True))
        out.update({k: v for k, v in {**a, **_utilisation(a)}.items() if k in keys})
    if "cue_logit" in keys:
        out["cue_logit"] = _mean(w, (pred.z_on - pred.z_off).to_numpy(np.float64))
    if "cue_auc" in keys:
        s = np.stack([pred.z_on.to_numpy(np.float64), pred.z_off.to_numpy(np.float64)])
        on, off = aucs_on_cases(s, c.cases, c.pos, c.neg)
        out["cue_auc"] = on - off
    return out


def _utilisation(a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):  # AUC_full 0: no rate
        u_mlo = (a["full"] - a["cc_only"]) / a["full"]
        u_cc = (a["full"] - a["mlo_only"]) / a["full"]
        return {"u(mlo|cc)": u_mlo, "u(cc|mlo)": u_cc, "d_util": u_mlo - u_cc}


def point(pred: pd.DataFrame, keys: tuple[str, ...] | None = None) -> dict[str, float]:
    """Each reading of one run on its whole split (NaN where an AUC needs 2 cases a class)."""
    keys = available(pred) if keys is None else keys
    y = pred.malignant.to_numpy()
    out = {}
    if "s_mlo" in keys:
        c = np.cov(pred.z_cc.to_numpy(np.float64), pred.z_mlo.to_numpy(np.float64), ddof=0)
        out["s_mlo"] = float(share(c[0, 0], c[1, 1], c[0, 1]))
    if "dp_mlo" in keys:
        out["dp_mlo"] = float(np.mean(np.abs(pred.p_full - pred.p_cc_only)))
    if "dp_cc" in keys:
        out["dp_cc"] = float(np.mean(np.abs(pred.p_full - pred.p_mlo_only)))
    if set(AUC_READINGS) & set(keys):
        try:
            a = dict(zip(AUC_READINGS[:3], delong(y, *(pred[f"p_{n}"].to_numpy()
                                                        for n in AUC_READINGS[:3]))[0],
                         strict=True))
        except ValueError:
            a = dict.fromkeys(AUC_READINGS[:3], np.nan)
        out.update({k: float(v) for k, v in {**a, **_utilisation(a)}.items() if k in keys})
    if "cue_logit" in keys:
        out["cue_logit"] = float(np.mean(pred.z_on - pred.z_off))
    if "cue_auc" in keys:
        try:
            on, off = delong(y, pred.z_on.to_numpy(), pred.z_off.to_numpy())[0]
            out["cue_auc"] = float(on - off)
        except ValueError:
            out["cue_auc"] = np.nan
    return out


def _check_same_breasts(runs: list[pd.DataFrame]) -> np.ndarray:
    if not runs:
        raise ValueError("no runs")
    y = runs[0].malignant.to_numpy()
    ids = runs[0].breast_id.to_numpy() if "breast_id" in runs[0] else None
    for p in runs[1:]:
        if not np.array_equal(p.malignant.to_numpy(), y) or (
                ids is not None and "breast_id" in p
                and not np.array_equal(p.breast_id.to_numpy(), ids)):
            raise ValueError("the runs were scored on different breasts")
    return y


def _readings(parts: list[tuple[list[pd.DataFrame], str]], n_boot: int, seed: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Each run's reading on the whole split (shape (runs,), groups in order) and their
    covariance over `n_boot` breast resamples (within each class, one draw for every run):
    what `mvlib.instruments.stats.seed_case_contrast` needs besides the seeds' spread. Resamples
    where a reading is undefined (an AUC of 0 under a ratio) are left out."""
    runs = [p for group, _ in parts for p in group]
    if any(not group for group, _ in parts):
        raise ValueError("each group needs at least one run")
    y = _check_same_breasts(runs)
    c = Cases.draw(y, n_boot, np.random.default_rng(seed))
    values, reps = [], []
    for group, key in parts:
        for p in group:
            if key not in available(p):
                raise ValueError(f"reading {key!r} needs columns the runs do not have")
            values.append(point(p, (key,))[key])
            reps.append(run_replicates(p, c, (key,))[key])
    values, reps = np.array(values, dtype=np.float64), np.stack(reps)
    if not np.isfinite(values).all():
        raise ValueError("a reading is undefined for a run on this split")
    reps = reps[:, np.isfinite(reps).all(axis=0)]
    if reps.shape[1] < 2:
        raise ValueError("no finite breast resample")
    return values, np.atleast_2d(np.cov(reps))


def contrast(parts: list[tuple[list[pd.DataFrame], str]], weights: list[float],
             level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> dict:
    """sum_g w_g * (mean over group g's seeds of its reading): `parts` are (runs, reading)
    per group, every run scored on the same breasts; the interval is
    `mvlib.instruments.stats.seed_case_contrast` (seeds independent between groups, the case
    covariance from one breast resampling for all runs). Adds `means`, each group's mean reading."""
    values, cov = _readings(parts, n_boot, seed)
    sizes = [len(group) for group, _ in parts]
    r = stats.seed_case_contrast(values, cov, sizes, weights, level)
    return {**r, "means": [float(m.mean()) for m in np.split(values, np.cumsum(sizes)[:-1])]}


def summary(runs: list[pd.DataFrame], level: float = 0.95, n_boot: int = 2000,
            seed: int = 0, keys: tuple[str, ...] | None = None) -> dict[str, float]:
    """Per reading: the mean over seeds of the runs' point readings (`key`) and its interval
    (`key lo`, `key hi`: `contrast` of one group; NaN with one run, or when a split is too
    small or a run's reading is undefined)."""
    keys = keys or available(runs[0])
    out = {}
    for k in keys:
        points = [point(p, (k,))[k] for p in runs]
        out[k] = float(np.nanmean(points)) if np.isfinite(points).any() else float("nan")
        try:
            r = contrast([(runs, k)], [1.0], level, n_boot, seed)
            out[f"{k} lo"], out[f"{k} hi"] = r["lo"], r["hi"]
        except ValueError:
            out[f"{k} lo"] = out[f"{k} hi"] = float("nan")
    return out


def compare(runs_a: list[pd.DataFrame], runs_b: list[pd.DataFrame], key: str,
            level: float = 0.95, n_boot: int = 2000, seed: int = 0,
            seeds_a: list[int] | None = None, seeds_b: list[int] | None = None,
            paired_seeds: bool = False) -> dict[str, float]:
    """Group A against group B on one reading, both scored on the same breasts: `diff`
    (mean over A's seeds - mean over B's) with `contrast`'s interval, t-test `p`, `se`,
    `df`, `mdd`, the seed and case parts, `mean_a`, `mean_b`, `paired`. Seeds pair (the
    per-seed differences are the readings, B's runs matched to A's by seed value) only when
    `paired_seeds` is True, for runs that share something real (the same initial weights or
    data order); a seed integer shared by two different models pairs nothing. A ValueError
    when the breasts differ or a reading is missing."""
    if not runs_a or not runs_b:
        raise ValueError("each group needs at least one run")
    if paired_seeds:
        if not (seeds_a is not None and seeds_b is not None and len(seeds_a) == len(runs_a)
                and len(seeds_b) == len(runs_b) and sorted(seeds_a) == sorted(seeds_b)
                and len(set(seeds_a)) == len(seeds_a)):
            raise ValueError("paired seeds need the same seed values in both groups")
        runs_b = [runs_b[list(seeds_b).index(s)] for s in seeds_a]
        values, cov = _readings([(runs_a, key), (runs_b, key)], n_boot, seed)
        k = len(runs_a)
        t = np.hstack([np.eye(k), -np.eye(k)])
        r = stats.seed_case_contrast(t @ values, t @ cov @ t.T, [k], [1.0], level)
        means = [float(values[:k].mean()), float(values[k:].mean())]
    else:
        r = contrast([(runs_a, key), (runs_b, key)], [1.0, -1.0], level, n_boot, seed)
        means = r.pop("means")
    return {**r, "mean_a": means[0], "mean_b": means[1], "paired": bool(paired_seeds)}


def rank_correlation(x: np.ndarray, y: np.ndarray, level: float = 0.95, n_boot: int = 10000,
                     seed: int = 0, min_runs: int = 10) -> dict[str, float]:
    """Spearman's rank correlation of paired per-run values and its two-sided `p`: exact (all
    n! orders of y) for n <= 10, where the t approximation is
    poor (rho = -1 over 4 runs: p = 2/24), else scipy's. A percentile interval from
    resampling the runs only from `min_runs` pairs on (NaN below: resamples of a handful of
    runs keep their order, 5 runs in a line give [1, 1]). NaN with fewer than 3 finite
    pairs or no spread."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    nan = {"rho": np.nan, "lo": np.nan, "hi": np.nan, "p": np.nan, "n": int(len(x))}
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return nan
    res = spearmanr(x, y)
    p = float(res.pvalue)
    if len(x) <= 10:
        p = _exact_spearman_p(x, y)
    if len(x) < min_runs:
        return {**nan, "rho": float(res.statistic), "p": p}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), (n_boot, len(x)))
    rho = _spearman(x[idx], y[idx], axis=1)
    rho = rho[np.isfinite(rho)]  # resamples with no spread (all one run) have no rho
    lo, hi = np.quantile(rho, [(1 - level) / 2, (1 + level) / 2])
    return {"rho": float(res.statistic), "lo": float(lo), "hi": float(hi), "p": p,
            "n": int(len(x))}


def _exact_spearman_p(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided permutation p of Spearman's rho over all n! orders of y (midranks kept):
    the share of orders whose |centred rank cross-product| reaches the observed one."""
    rx, ry = rankdata(x) - (len(x) + 1) / 2, rankdata(y) - (len(y) + 1) / 2
    observed = abs(float(rx @ ry))
    orders = itertools.permutations(range(len(x)))
    hits = total = 0
    while chunk := list(itertools.islice(orders, 200_000)):
        s = np.abs(ry[np.array(chunk)] @ rx)
        hits += int((s >= observed - 1e-9).sum())
        total += len(chunk)
    return hits / total


def _spearman(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman's rho along `axis` (midranks), NaN where a side has no spread."""
    ra, rb = rankdata(a, axis=axis), rankdata(b, axis=axis)
    ra = ra - ra.mean(axis=axis, keepdims=True)
    rb = rb - rb.mean(axis=axis, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (ra * rb).sum(axis) / np.sqrt((ra**2).sum(axis) * (rb**2).sum(axis))
