"""Gradient Blending's offline weight estimate (Wang et al. 2020; the paper's Appendix C).

Between consecutive epochs N and N+1 of a model trained alone (CC-only, MLO-only, joint):
  G = gain in validation performance (generalisation), O = growth of the train-validation
  gap (overfitting), and w_k proportional to G_k / O_k^2, normalised over the three models.
Measured by loss (G = L_val,N - L_val,N+1; O = gap_N+1 - gap_N with gap = L_val - L_train)
or by malignant AUC (G = AUC_val,N+1 - AUC_val,N; gap = AUC_train - AUC_val). The weights of
the steps inside a window of the run (a fraction of its epochs: the paper's [0, 100] and
[90, 100] are (0, 1) and (0.9, 1)) are averaged and normalised again.

Both sides are measured at the checkpoint, as Wang et al. do: the training loss and AUC are
those of the whole training split evaluated like validation (`train_eval_*`, recorded by runs
with `checkpoint_curves`), not the running average over the epoch's noisy windows; curves
without them fall back to the running average. The untrained model is not evaluated, so the
first step covered is epoch 1 -> 2.

Guards, since the formula needs G > 0 and O > 0: a model whose validation performance got
worse in a step (G <= 0) gets weight 0 in that step; an overfitting growth O below `floor`
(including O <= 0: the gap shrank) counts as `floor`, so such a model gets a large but finite
weight; a step where every model got worse has no weights and is left out of the average.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss

from mvlib.evaluate import TASKS, auc

MEASURES = ("loss", "auc")
WINDOWS = {"[0, 100]": (0.0, 1.0), "[90, 100]": (0.9, 1.0)}  # the paper's epoch windows


def generalisation_and_overfitting(curve: pd.DataFrame, measure: str) -> pd.DataFrame:
    """Per step N -> N+1 of a per-epoch metrics table (row i = after epoch i + 1): G, O and
    the step's end epoch (epochs finished)."""
    train = "train_eval" if "train_eval_loss" in curve else "train"
    if measure == "loss":
        score, gap = -curve.val_loss, curve.val_loss - curve[f"{train}_loss"]
    elif measure == "auc":
        score = curve.val_auc_malignant
        gap = curve[f"{train}_auc_malignant"] - curve.val_auc_malignant
    else:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    return pd.DataFrame({"epoch": np.arange(2, len(curve) + 1),
                         "G": np.diff(score.to_numpy(float)),
                         "O": np.diff(gap.to_numpy(float))})


def step_weights(curves: dict[str, pd.DataFrame], measure: str,
                 floor: float = 1e-3) -> pd.DataFrame:
    """Normalised weights per step (rows) and model (columns), with the module's guards."""
    raw = {}
    for name, curve in curves.items():
        s = generalisation_and_overfitting(curve, measure).set_index("epoch")
        raw[name] = s.G.clip(lower=0) / s.O.clip(lower=floor) ** 2
    raw = pd.DataFrame(raw)
    total = raw.sum(axis=1)
    return raw.div(total.where(total > 0), axis=0)  # all-zero steps become NaN rows


def estimate(curves: dict[str, pd.DataFrame], measure: str, window: tuple[float, float],
             floor: float = 1e-3) -> dict[str, float]:
    """Blending weights from the models' curves: the mean of the step weights whose end
    epoch e lies in the window, lo * E < e <= hi * E (E epochs), normalised to sum to 1."""
    steps = step_weights(curves, measure, floor)
    epochs = min(len(c) for c in curves.values())
    lo, hi = window
    inside = steps[(steps.index > lo * epochs) & (steps.index <= hi * epochs)].dropna()
    mean = inside.mean()
    if inside.empty or not np.isfinite(mean).all() or mean.sum() <= 0:
        raise ValueError(f"no step in window {window} where any model improved by {measure}; "
                         "the weights are undefined")
    return (mean / mean.sum()).to_dict()


def subset_curve(curve: pd.DataFrame, val_predictions: pd.DataFrame, fraction: float,
                 seed: int = 0) -> pd.DataFrame:
    """`curve` with its validation loss and malignant AUC recomputed on a fixed random
    `fraction` of the validation breasts (stratified by malignancy; Table 5's ablation).
    `val_predictions`: per-epoch predictions with an `epoch` column."""
    first = val_predictions[val_predictions.epoch == val_predictions.epoch.min()]
    rng = np.random.default_rng(seed)
    keep = []
    for _, ids in first.groupby("malignant").breast_id:
        ids = np.sort(ids.to_numpy())
        keep.extend(rng.choice(ids, max(1, round(fraction * len(ids))), replace=False))
    part = val_predictions[val_predictions.breast_id.isin(keep)]
    out = curve.copy()
    for epoch, p in part.groupby("epoch"):
        loss = sum(log_loss(p[t], p[f"p_{t}"].clip(1e-7, 1 - 1e-7), labels=[0, 1])
                   for t in TASKS)
        out.loc[out.epoch == epoch, "val_loss"] = loss
        out.loc[out.epoch == epoch, "val_auc_malignant"] = auc(p.malignant, p.p_malignant)
    return out
