"""Predictions, AUCs, test-time augmentation and 3x ensembles."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from mvlib.core.device import autocast, to_device
from mvlib.data.loader import VIEWS, view_input
from mvlib.data.windows import WindowNoise, full_window, tta_windows
from mvlib.models.heads import loss_fn

TASKS = ("malignant", "benign")


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC, NaN when only one class is present (instead of raising)."""
    labels = np.asarray(labels)
    if labels.min() == labels.max():
        return float("nan")
    return float(roc_auc_score(labels, scores))


@torch.no_grad()
def predict(model: torch.nn.Module, loader: Iterable[dict], device: torch.device,
            n_windows: int = 0, seed: int = 0, reliance: bool = False) -> pd.DataFrame:
    """Probabilities per breast: the whole crop (n_windows=0, validation) or the mean over
    `n_windows` random windows (the paper's test-time augmentation). With `reliance` (whole
    crops, a two-view model) also the malignant probability with each view's part replaced
    by its mean over these breasts, from the same forward pass (`p_cc_only`, `p_mlo_only`;
    see mvlib.instruments.reliance: the AUC does not depend on the constant, so the split's own mean
    stands in for the training mean during training)."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    rows, total_loss, count = [], 0.0, 0
    reliance = reliance and not n_windows and hasattr(model, "view_parts")
    parts = {v: [] for v in VIEWS}
    for batch in loader:
        labels = batch["labels"].to(device)
        if n_windows:
            probs = 0.0
            windows = {v: tta_windows(view_input(batch, v, device), WindowNoise.paper(v), gen,
                                      n_windows) for v in VIEWS}
            for w in range(n_windows):
                with autocast(device):
                    logits = model(to_device({v: windows[v][w] for v in VIEWS}, device)).float()
                probs = probs + torch.sigmoid(logits) / n_windows
            logits = torch.logit(probs.clamp(1e-7, 1 - 1e-7))
        else:
            x = to_device({v: full_window(view_input(batch, v, device)) for v in VIEWS}, device)
            with autocast(device):
                if reliance:  # forward() split in two: the same logits, parts kept
                    p = model.view_parts(x)
                    logits = model.fuse_parts(p).float()
                    for v in VIEWS:
                        parts[v].append(p[v].float())
                else:
                    logits = model(x).float()
            probs = torch.sigmoid(logits)
        total_loss += loss_fn(logits, labels).item() * len(labels)
        count += len(labels)
        rows.append(np.column_stack([batch["index"].numpy(), batch["labels"].numpy(),
                                     probs.cpu().numpy()]))
    table = np.concatenate(rows)
    out = pd.DataFrame({"breast_id": table[:, 0].astype(int),
                        "malignant": table[:, 1].astype(int), "benign": table[:, 2].astype(int),
                        "p_malignant": table[:, 3], "p_benign": table[:, 4]})
    if reliance:
        parts = {v: torch.cat(parts[v]) for v in VIEWS}
        mean = {v: parts[v].mean(dim=0).expand_as(parts[v]) for v in VIEWS}
        for name, kept in (("cc_only", {"cc": parts["cc"], "mlo": mean["mlo"]}),
                           ("mlo_only", {"cc": mean["cc"], "mlo": parts["mlo"]})):
            with autocast(device):
                out[f"p_{name}"] = torch.sigmoid(model.fuse_parts(kept)[:, 0].float()).cpu().numpy()
    out.attrs["loss"] = total_loss / max(count, 1)
    return out


def scores(pred: pd.DataFrame) -> dict[str, float]:
    """AUC per task of a prediction table, and the malignant AUCs with one view only when
    the table has them (`predict(..., reliance=True)`)."""
    out = {f"auc_{t}": auc(pred[t], pred[f"p_{t}"]) for t in TASKS}
    for name in ("cc_only", "mlo_only"):
        if f"p_{name}" in pred:
            out[f"auc_{name}"] = auc(pred["malignant"], pred[f"p_{name}"])
    return out


def ensemble(preds: list[pd.DataFrame]) -> pd.DataFrame:
    """Mean prediction of several models over the same breasts (the paper's 3x ensemble)."""
    base = preds[0][["breast_id", *TASKS]].reset_index(drop=True)
    for p in preds[1:]:
        if not np.array_equal(p["breast_id"].to_numpy(), base["breast_id"].to_numpy()):
            raise ValueError("ensemble members must predict the same breasts in the same order")
    for t in TASKS:
        base[f"p_{t}"] = np.mean([p[f"p_{t}"].to_numpy() for p in preds], axis=0)
    return base


def summarise(preds: list[pd.DataFrame]) -> dict[str, float]:
    """Malignant test AUC: mean and sample std over the runs, and their ensemble's AUC."""
    aucs = [auc(p["malignant"], p["p_malignant"]) for p in preds]
    ens = ensemble(preds)
    return {"auc_mean": float(np.mean(aucs)),
            "auc_std": float(np.std(aucs, ddof=1)) if len(aucs) > 1 else 0.0,
            "auc_ensemble": auc(ens["malignant"], ens["p_malignant"]), "n": len(preds)}
