"""Gradient Blending's offline weight estimate (Wang, Tran & Feiszli, "What makes training
multi-modal classification networks hard?", CVPR 2020; the paper's Appendix C).

For each model trained alone (CC-only, MLO-only, joint) and a window of epochs [N, N+n], from
the checkpoints at the window's two ends (the paper's windows: epochs [0, 100] and [90, 100],
here fractions (0, 1) and (0.9, 1) of a run, epoch 0 being the untrained model):
  G = generalisation gained = L*_N - L*_N+n      (validation loss; AUC: AUC*_N+n - AUC*_N)
  O = overfitting added     = O_N+n - O_N,  O_t = L*_t - L_t   (AUC: AUC_t - AUC*_t)
with * the validation split and the training split evaluated like it at the checkpoint (not
the running average over the epoch's noisy windows: runs with `checkpoint_curves` record it,
and the untrained model too). Then w_k proportional to G_k / O_k^2, normalised over the three.
The paper's Appendix C says it averages the weights over the window; Wang et al.'s offline
estimate, followed here, compares the window's two end checkpoints (so a window is one
estimate, not a mean of per-epoch ones).

The weights are the formula's or none. It needs every model to have generalised over the
window (G > 0: a G <= 0 would give a weight <= 0) and O != 0. O < 0 (the train - validation
gap shrank) leaves G / O^2 finite, and Wang et al.'s derivation uses O only squared, so the
formula applies as written. Where G <= 0 or O = 0 for some model the estimate is undefined
(no weights). A defined estimate can still rest on noise: each model's G is a difference of
two checkpoints' validation loss or AUC on the same breasts, with a 95% interval (the
per-breast loss differences' standard error; DeLong's paired test for the AUC, none with
fewer than 2 breasts of a class); an estimate with a G whose interval reaches 0, or has none,
is `at_noise`. O has no such interval here (the training
split's per-breast predictions at each checkpoint are not kept). `window_terms` shows G, its
interval, O and G / O^2 for each model, whatever the verdict.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.metrics import log_loss

from mvlib.engine.evaluate import TASKS, auc
from mvlib.instruments.stats import delong_test

MEASURES = ("loss", "auc")
WINDOWS = {"[0, 100]": (0.0, 1.0), "[90, 100]": (0.9, 1.0)}  # the paper's epoch windows


def window_ends(epochs: int, window: tuple[float, float]) -> tuple[int, int]:
    """The checkpoints (epochs finished, 0 = untrained) at a window's ends, for a run of
    `epochs` epochs: the paper's [90, 100] of a 6-epoch run is 5 -> 6."""
    lo, hi = window
    if not 0 <= lo < hi <= 1:
        raise ValueError(f"a window is (lo, hi) with 0 <= lo < hi <= 1, got {window}")
    start, end = math.floor(lo * epochs + 0.5), math.floor(hi * epochs + 0.5)  # half up
    return min(start, end - 1), end


def _at(curve: pd.DataFrame, done: int, measure: str) -> tuple[float, float]:
    """(validation performance, train - validation gap) of the checkpoint after `done`
    epochs, oriented so that G = later - earlier of the first and O = later - earlier of
    the second."""
    if "train_eval_loss" not in curve:
        raise ValueError("Gradient Blending needs checkpoint evaluations of the training split "
                         "(runs with checkpoint_curves=True)")
    row = curve[curve.epoch + 1 == done]
    if row.empty:
        raise ValueError(f"no checkpoint after {done} epochs in the curve (epochs "
                         f"{sorted((curve.epoch + 1).tolist())}; 0 = the untrained model, "
                         "written by runs with checkpoint_curves)")
    r = row.iloc[0]
    if measure == "loss":
        return -r.val_loss, r.val_loss - r.train_eval_loss
    if measure == "auc":
        return r.val_auc_malignant, r.train_eval_auc_malignant - r.val_auc_malignant
    raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")


def _g_half_width(preds: pd.DataFrame, start: int, end: int, measure: str,
                  level: float) -> float:
    """Half the 95% interval of G from the validation predictions of the checkpoints after
    `start` and `end` epochs (the same breasts): z times the standard error of the mean
    per-breast loss difference, or DeLong's paired interval for the AUC difference."""
    at = {}
    for done in (start, end):
        p = preds[preds.epoch == done - 1].sort_values("breast_id")
        if p.empty:
            raise ValueError(f"no validation predictions after {done} epochs")
        at[done] = p
    a, b = at[start], at[end]
    if not np.array_equal(a.breast_id.to_numpy(), b.breast_id.to_numpy()):
        raise ValueError("the window's two checkpoints were scored on different breasts")
    if measure == "auc":
        if min(b.malignant.sum(), (1 - b.malignant).sum()) < 2:
            return float("inf")  # too few breasts of a class for DeLong's interval
        r = delong_test(b.malignant.to_numpy(), b.p_malignant.to_numpy(),
                        a.p_malignant.to_numpy(), level)
        return (r["hi"] - r["lo"]) / 2

    def losses(p: pd.DataFrame) -> np.ndarray:
        out = np.zeros(len(p))
        for t in TASKS:
            q = p[f"p_{t}"].clip(1e-7, 1 - 1e-7).to_numpy()
            y = p[t].to_numpy()
            out -= y * np.log(q) + (1 - y) * np.log(1 - q)
        return out

    d = losses(a) - losses(b)
    return float(norm.ppf(0.5 + level / 2) * d.std(ddof=1) / np.sqrt(len(d)))


def window_terms(curves: dict[str, pd.DataFrame], measure: str,
                 window: tuple[float, float],
                 predictions: dict[str, pd.DataFrame] | None = None,
                 level: float = 0.95) -> pd.DataFrame:
    """Per model: the window's checkpoints, G, O, G / O^2 and the weight (G / O^2 normalised
    over the models; NaN for all when `undefined`). With `predictions` (model -> validation
    predictions per checkpoint, `epoch` -1 = untrained), G's interval `G lo`, `G hi`.
    `curves`: model -> checkpoint table (the initial row, epoch -1, then one row per epoch)
    with val_* and train_eval_* columns."""
    epochs = min(int(c.epoch.max()) + 1 for c in curves.values())
    start, end = window_ends(epochs, window)
    rows = {}
    for name, curve in curves.items():
        (perf0, gap0), (perf1, gap1) = _at(curve, start, measure), _at(curve, end, measure)
        g, o = perf1 - perf0, gap1 - gap0
        if not (np.isfinite(g) and np.isfinite(o)):
            raise ValueError(f"{name}: {measure} is not finite at epochs {start} or {end}; "
                             "the weights are undefined")
        rows[name] = {"from": start, "to": end, "G": g, "O": o,
                      "G/O^2": g / o**2 if o else np.sign(g) * np.inf}
        if predictions is not None:
            half = _g_half_width(predictions[name], start, end, measure, level)
            rows[name].update({"G lo": g - half, "G hi": g + half})
    t = pd.DataFrame.from_dict(rows, orient="index")
    t["weight"] = np.nan if undefined(t) else t["G/O^2"] / t["G/O^2"].sum()
    return t


def undefined(terms: pd.DataFrame) -> str:
    """Why `window_terms`' G / O^2 gives no weights ('' when it does): a model that did not
    generalise over the window (G <= 0) or whose gap did not change (O = 0)."""
    why = [f"{m} has G = {r.G:+.4g} <= 0 (it did not generalise over the window)"
           for m, r in terms.iterrows() if not r.G > 0]
    why += [f"{m} has O = 0 (G / O^2 is infinite)" for m, r in terms.iterrows()
            if r.G > 0 and r.O == 0]
    return "; ".join(why)


def at_noise(terms: pd.DataFrame) -> str:
    """Which models' G has a 95% interval that reaches 0 ('' when none does, or when no
    interval was computed): weights from such a G rest on noise."""
    if "G lo" not in terms:
        return ""
    return "; ".join(
        f"{m}'s G {r.G:+.3g} [{r['G lo']:+.3g}, {r['G hi']:+.3g}] reaches 0"
        if np.isfinite(r["G hi"]) else
        f"{m}'s G {r.G:+.3g} has no interval (fewer than 2 validation breasts of a class)"
        for m, r in terms.iterrows() if r["G lo"] <= 0 <= r["G hi"])


def estimate(curves: dict[str, pd.DataFrame], measure: str,
             window: tuple[float, float]) -> dict[str, float]:
    """Blending weights (summing to 1) from the models' checkpoints at the window's ends;
    ValueError naming the models when G / O^2 gives none (`undefined`)."""
    terms = window_terms(curves, measure, window)
    if why := undefined(terms):
        raise ValueError(f"the weights by {measure} over {window} are undefined: {why}")
    return terms["weight"].to_dict()


def subset_breasts(val_predictions: pd.DataFrame, fraction: float, seed: int = 0
                   ) -> pd.DataFrame:
    """The fixed random `fraction` of the validation breasts (stratified by malignancy) that
    Table 5's estimates use: breast_id and malignant, one row per breast."""
    first = val_predictions[val_predictions.epoch == val_predictions.epoch.min()]
    rng = np.random.default_rng(seed)
    keep = []
    for _, ids in first.groupby("malignant").breast_id:
        ids = np.sort(ids.to_numpy())
        keep.extend(rng.choice(ids, max(1, round(fraction * len(ids))), replace=False))
    return first[first.breast_id.isin(keep)][["breast_id", "malignant"]].reset_index(drop=True)


def subset_predictions(val_predictions: pd.DataFrame, fraction: float, seed: int = 0
                       ) -> pd.DataFrame:
    """The per-checkpoint validation predictions of `subset_breasts`' breasts."""
    keep = subset_breasts(val_predictions, fraction, seed)
    return val_predictions[val_predictions.breast_id.isin(keep.breast_id)]


def subset_curve(curve: pd.DataFrame, val_predictions: pd.DataFrame, fraction: float,
                 seed: int = 0) -> pd.DataFrame:
    """`curve` with its validation loss and malignant AUC recomputed on a fixed random
    `fraction` of the validation breasts (stratified by malignancy; Table 5's ablation).
    `val_predictions`: per-checkpoint predictions with an `epoch` column (-1 = untrained)."""
    part = subset_predictions(val_predictions, fraction, seed)
    out = curve.copy()
    for epoch, p in part.groupby("epoch"):
        loss = sum(log_loss(p[t], p[f"p_{t}"].clip(1e-7, 1 - 1e-7), labels=[0, 1])
                   for t in TASKS)
        out.loc[out.epoch == epoch, "val_loss"] = loss
        out.loc[out.epoch == epoch, "val_auc_malignant"] = auc(p.malignant, p.p_malignant)
    return out
