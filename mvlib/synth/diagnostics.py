"""Checks that the generator's knobs do what they claim, computed from its ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from mvlib.data.store import BreastDataset


def _per_breast_contrast(manifest: pd.DataFrame, findings: pd.DataFrame, view: str
                         ) -> np.ndarray:
    """(N, 2) largest malignant-kind and benign-kind finding contrast seen in `view`."""
    out = np.zeros((len(manifest), 2))
    for col, is_malignant in ((0, True), (1, False)):
        sel = findings[findings["malignant"] == is_malignant]
        best = sel.groupby("breast_id")[f"{view}_contrast"].max()
        out[best.index.to_numpy(), col] = best.to_numpy()
    return out


def contrast_classifier_auc(manifest: pd.DataFrame, findings: pd.DataFrame) -> pd.Series:
    """Test malignant AUC, per view, of a logistic regression fitted on the train split to
    that view's ground-truth finding contrasts: how much the view alone can tell."""
    train, test = manifest["split"] == "train", manifest["split"] == "test"
    y = manifest["malignant"].to_numpy()
    aucs = {}
    for view in ("cc", "mlo"):
        x = _per_breast_contrast(manifest, findings, view)
        clf = LogisticRegression().fit(x[train], y[train])
        aucs[view] = roc_auc_score(y[test], clf.decision_function(x[test]))
    return pd.Series(aucs, name="test AUC from ground-truth contrast")


def heatmap_auc(data: BreastDataset, split: str = "test") -> pd.Series:
    """Malignant AUC of each view's peak malignant-heatmap value (channel 2)."""
    idx = data.indices(split)
    y = data.manifest["malignant"].to_numpy()[idx]
    return pd.Series({view: roc_auc_score(y, np.asarray(arr[idx, 2]).max(axis=(1, 2)))
                      for view, arr in (("cc", data.cc), ("mlo", data.mlo))},
                     name=f"{split} AUC of peak malignant heatmap")


def shortcut_leakage(manifest: pd.DataFrame) -> pd.DataFrame:
    """AUC of each view's cue (marker present) for malignancy, per split. 0.5 = no leak."""
    rows = {}
    for split, part in manifest.groupby("split", sort=False):
        rows[split] = {view: roc_auc_score(part["malignant"], part[f"{view}_cue"])
                       for view in ("cc", "mlo")}
    return pd.DataFrame(rows).T.rename_axis("split")


def one_view_only(findings: pd.DataFrame) -> pd.Series:
    """Malignant findings visible in CC only, MLO only, both, neither (Korhonen et al. 2019)."""
    f = findings[findings["malignant"]]
    cc, mlo = f["cc_visible"].astype(bool), f["mlo_visible"].astype(bool)
    return pd.Series({"both views": int((cc & mlo).sum()), "CC only": int((cc & ~mlo).sum()),
                      "MLO only": int((~cc & mlo).sum()), "neither": int((~cc & ~mlo).sum())},
                     name="malignant findings")
