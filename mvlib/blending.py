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

The formula needs G > 0 and O > 0. Guards, for degenerate windows only:
  * G <= 0 (the model did not generalise over the window): weight 0;
  * O <= 0 with G > 0 (it generalised and overfitted no more, or less): G / O^2 has no finite
    value (it tends to infinity as O -> 0+), so such models take all the weight, shared in
    proportion to G; the others get 0 ("weight 0: another model has O <= 0");
  * G <= 0 for every model: no weights (ValueError).
`window_terms` shows G, O, the unguarded G / O^2 and which guard applied, for each model.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss

from mvlib.evaluate import TASKS, auc

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


def window_terms(curves: dict[str, pd.DataFrame], measure: str,
                 window: tuple[float, float]) -> pd.DataFrame:
    """Per model: the window's checkpoints, G, O, the unguarded G / O^2, the guard applied
    and the weight. `curves`: model -> checkpoint table (the initial row, epoch -1, then one
    row per epoch) with val_* and train_eval_* columns."""
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
                      "G/O^2": g / o**2 if o else np.sign(g) * np.inf,
                      "guard": ("G <= 0: weight 0" if g <= 0 else
                                "O <= 0: takes the weight" if o <= 0 else "")}
    t = pd.DataFrame.from_dict(rows, orient="index")
    positive = t.G > 0
    if not positive.any():
        raise ValueError(f"no model generalised by {measure} over epochs {start} -> {end}; "
                         "the weights are undefined")
    unbounded = positive & (t.O <= 0)
    if unbounded.any():
        t.loc[positive & ~unbounded, "guard"] = "weight 0: another model has O <= 0"
    raw = t.G.where(unbounded, 0.0) if unbounded.any() else (t["G/O^2"].where(positive, 0.0))
    t["weight"] = raw / raw.sum()
    return t


def estimate(curves: dict[str, pd.DataFrame], measure: str,
             window: tuple[float, float]) -> dict[str, float]:
    """Blending weights (summing to 1) from the models' checkpoints at the window's ends."""
    return window_terms(curves, measure, window)["weight"].to_dict()


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


def subset_curve(curve: pd.DataFrame, val_predictions: pd.DataFrame, fraction: float,
                 seed: int = 0) -> pd.DataFrame:
    """`curve` with its validation loss and malignant AUC recomputed on a fixed random
    `fraction` of the validation breasts (stratified by malignancy; Table 5's ablation).
    `val_predictions`: per-checkpoint predictions with an `epoch` column (-1 = untrained)."""
    keep = subset_breasts(val_predictions, fraction, seed)
    part = val_predictions[val_predictions.breast_id.isin(keep.breast_id)]
    out = curve.copy()
    for epoch, p in part.groupby("epoch"):
        loss = sum(log_loss(p[t], p[f"p_{t}"].clip(1e-7, 1 - 1e-7), labels=[0, 1])
                   for t in TASKS)
        out.loc[out.epoch == epoch, "val_loss"] = loss
        out.loc[out.epoch == epoch, "val_auc_malignant"] = auc(p.malignant, p.p_malignant)
    return out
