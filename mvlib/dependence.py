"""Label-free dependence of a two-view decision on each view, and its seed x case bootstrap.

For sum fusion the malignant logit is z = z_cc + z_mlo with z_v = W h_v + b / 2 (Split
ResNet: each uni-view model's logit). Readings of one run on one split's breasts:
  * `s_mlo` = Var(z_mlo) / (Var(z_cc) + Var(z_mlo)): MLO's share of the logit's variation
    over the breasts (no labels needed, so it means the same on any split);
  * `dp_mlo` = mean |p_full - p_cc_only|: how far the predicted malignancy probability moves
    when MLO's part is replaced by its training mean (`dp_cc` the mirror);
  * the AUCs full / CC only / MLO only and the utilisation rates u(mlo|cc), u(cc|mlo),
    d_util: each view's contribution to the AUC on that split (Wu et al., ICML 2022);
  * with a counterfactual cue test's columns (`z_on`, `z_off`: the malignant logit with the
    planted marker forced on and off): `cue_logit` = mean(z_on - z_off) and `cue_auc` =
    AUC(z_on) - AUC(z_off).
The bootstrap resamples breasts (within each class, the same breasts for every run) and
seeds, as mvlib.stats does for AUCs; two groups scored on the same breasts share the breast
draws. Pure numpy: the run folders are read by mvlib.reliance and mvlib.cuetest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata, spearmanr

from mvlib.stats import aucs_on_cases, delong

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


def share(var_cc: np.ndarray | float, var_mlo: np.ndarray | float) -> np.ndarray:
    """MLO's share of the variation, NaN where neither part varies."""
    var_cc, var_mlo = np.asarray(var_cc, float), np.asarray(var_mlo, float)
    total = var_cc + var_mlo
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, var_mlo / total, np.nan)


@dataclass
class Cases:
    """Bootstrap resamples of one split's breasts: `cases` (n_boot, N) breast indices,
    positives first (as mvlib.stats lays them out), `pos`, `neg` the class indices and
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
        var = {}
        for v in ("cc", "mlo"):
            z = pred[f"z_{v}"].to_numpy(np.float64)
            z = z - z.mean()  # centred: the variance's two moments lose no precision
            var[v] = np.maximum(_mean(w, z**2) - _mean(w, z) ** 2, 0.0)
        out["s_mlo"] = share(var["cc"], var["mlo"])
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
        out["s_mlo"] = float(share(np.var(pred.z_cc.to_numpy(np.float64)),
                                   np.var(pred.z_mlo.to_numpy(np.float64))))
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


def _seed_means(per_run: list[dict[str, np.ndarray]], draw: np.ndarray, keys) -> dict:
    """Mean over the resampled seeds (`draw`: (n_boot, runs) run indices) of each reading."""
    cols = np.arange(draw.shape[0])[None, :]
    return {k: np.stack([r[k] for r in per_run])[draw.T, cols].mean(axis=0) for k in keys}


def replicates(runs: list[pd.DataFrame], n_boot: int = 10000, seed: int = 0,
               keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """Seed x case bootstrap replicates (n_boot,) of the mean over seeds of each reading; the
    runs' breasts must be the same, in the same order. Two groups with the same breasts, the
    same `seed` and as many runs share every draw, so their replicates pair up."""
    y = _check_same_breasts(runs)
    keys = tuple(k for k in (keys or available(runs[0])) if k in available(runs[0]))
    rng = np.random.default_rng(seed)
    c = Cases.draw(y, n_boot, rng)
    per_run = [run_replicates(p, c, keys) for p in runs]
    return _seed_means(per_run, rng.integers(0, len(runs), (n_boot, len(runs))), keys)


def interval(reps: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the finite replicates (NaN, NaN if none)."""
    reps = np.asarray(reps, float)
    reps = reps[np.isfinite(reps)]
    if not reps.size:
        return float("nan"), float("nan")
    lo, hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def summary(runs: list[pd.DataFrame], level: float = 0.95, n_boot: int = 10000,
            seed: int = 0, keys: tuple[str, ...] | None = None) -> dict[str, float]:
    """Per reading: the mean over seeds of the runs' point readings (`key`) and its seed x
    case interval (`key lo`, `key hi`; NaN when a split is too small)."""
    keys = keys or available(runs[0])
    points = [point(p, keys) for p in runs]
    try:
        reps = replicates(runs, n_boot, seed, keys)
    except ValueError:
        reps = {}
    out = {}
    for k in keys:
        out[k] = float(np.nanmean([q[k] for q in points])) if any(
            np.isfinite(q[k]) for q in points) else float("nan")
        out[f"{k} lo"], out[f"{k} hi"] = interval(reps.get(k, []), level)
    return out


def compare(runs_a: list[pd.DataFrame], runs_b: list[pd.DataFrame], key: str,
            level: float = 0.95, n_boot: int = 10000, seed: int = 0,
            seeds_a: list[int] | None = None, seeds_b: list[int] | None = None,
            paired_seeds: bool | None = None) -> dict[str, float]:
    """Group A against group B on one reading, both scored on the same breasts: `diff`
    (mean over A's seeds - mean over B's), the seed x case interval `lo`, `hi` (one breast
    draw per replicate for both groups), two-sided `p` (twice the smaller share of
    replicates on either side of 0), `mean_a`, `mean_b`, `paired`. Seeds are paired by value
    (one shared draw, B's runs matched to A's) when `seeds_a` and `seeds_b` hold the same
    seeds and `paired_seeds` is not False, else drawn per group. A ValueError when the
    breasts differ or a reading is missing."""
    if not runs_a or not runs_b:
        raise ValueError("each group needs at least one run")
    same = (seeds_a is not None and seeds_b is not None and len(seeds_a) == len(runs_a)
            and len(seeds_b) == len(runs_b) and sorted(seeds_a) == sorted(seeds_b)
            and len(set(seeds_a)) == len(seeds_a))
    if paired_seeds and not same:
        raise ValueError("paired seeds need the same seed values in both groups")
    paired = same and paired_seeds is not False
    if paired:
        runs_b = [runs_b[list(seeds_b).index(s)] for s in seeds_a]
    y = _check_same_breasts([*runs_a, *runs_b])
    for p in (runs_a[0], runs_b[0]):
        if key not in available(p):
            raise ValueError(f"reading {key!r} needs columns the runs do not have")
    rng = np.random.default_rng(seed)
    c = Cases.draw(y, n_boot, rng)
    reps = []
    shared = rng.integers(0, len(runs_a), (n_boot, len(runs_a))) if paired else None
    for runs in (runs_a, runs_b):
        per_run = [run_replicates(p, c, (key,)) for p in runs]
        draw = shared if paired else rng.integers(0, len(runs), (n_boot, len(runs)))
        reps.append(_seed_means(per_run, draw, (key,))[key])
    diff = reps[0] - reps[1]
    diff = diff[np.isfinite(diff)]
    if not diff.size:
        raise ValueError(f"no finite bootstrap replicate of {key!r}")
    lo, hi = interval(diff, level)
    p = min(1.0, 2 * min(np.mean(diff <= 0), np.mean(diff >= 0)))
    mean_a = float(np.nanmean([point(q, (key,))[key] for q in runs_a]))
    mean_b = float(np.nanmean([point(q, (key,))[key] for q in runs_b]))
    return {"diff": mean_a - mean_b, "lo": lo, "hi": hi, "p": float(p), "mean_a": mean_a,
            "mean_b": mean_b, "paired": paired}


def rank_correlation(x: np.ndarray, y: np.ndarray, level: float = 0.95, n_boot: int = 10000,
                     seed: int = 0, min_runs: int = 5) -> dict[str, float]:
    """Spearman's rank correlation of paired per-run values with a percentile interval from
    resampling the runs (pairs) with replacement, and scipy's two-sided `p`. NaN with fewer
    than 3 finite pairs or no spread; no interval (NaN) with fewer than `min_runs` pairs,
    where resamples of a handful of runs keep their order and the interval would be
    spuriously narrow (3 runs in a line give [-1, -1])."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    nan = {"rho": np.nan, "lo": np.nan, "hi": np.nan, "p": np.nan, "n": int(len(x))}
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return nan
    res = spearmanr(x, y)
    if len(x) < min_runs:
        return {**nan, "rho": float(res.statistic), "p": float(res.pvalue)}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), (n_boot, len(x)))
    rx, ry = rankdata(x[idx], axis=1), rankdata(y[idx], axis=1)
    rx, ry = rx - rx.mean(1, keepdims=True), ry - ry.mean(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = (rx * ry).sum(1) / np.sqrt((rx**2).sum(1) * (ry**2).sum(1))
    lo, hi = interval(rho, level)  # resamples with no spread (all one run) have no rho
    return {"rho": float(res.statistic), "lo": lo, "hi": hi, "p": float(res.pvalue),
            "n": int(len(x))}
