"""View reliance: how much a two-view model's decision uses each view, measured directly.

The paper hypothesises that Joint ResNet "depends too strongly on the MLO view" but never
measures it. Following the conditional utilisation rate of Wu, Jastrzebski, Cho & Geras
("Characterizing and overcoming the greedy nature of learning in multi-modal deep neural
networks", ICML 2022; nyukat/greedy_multimodal_learning), one view's contribution is replaced
by its mean over the training split (whole crops, eval mode) while the other is kept:
  CC only  = the model with its MLO part replaced,  MLO only = the mirror,
  u(mlo|cc) = (AUC_full - AUC_cc_only) / AUC_full,  u(cc|mlo) mirror,
  d_util = u(mlo|cc) - u(cc|mlo)  (> 0: the decision leans on MLO more than on CC).
A view's part is its representation h for the fusing models (the output layer is linear in
h_cc + h_mlo, so the AUC does not depend on which constant replaces a view; the loss does,
hence the training mean) and its uni-view model's logits for Split ResNet.
"""

from __future__ import annotations

import pandas as pd
import torch

from mvlib.data.loader import VIEWS, eval_loader, to_model_input
from mvlib.data.store import BreastDataset
from mvlib.device import autocast, to_device
from mvlib.stats import auc_ci

PREDICTIONS = ("full", "cc_only", "mlo_only")


@torch.no_grad()
def view_parts(model: torch.nn.Module, data: BreastDataset, split: str, channels: int,
               device: torch.device) -> tuple[dict[str, torch.Tensor], pd.DataFrame]:
    """Each view's part (`model.view_parts`) for every breast of `split`, whole crops in
    eval mode, and the breasts (breast_id, malignant, benign) in the same order."""
    model.eval()
    parts, rows = {v: [] for v in VIEWS}, []
    for batch in eval_loader(data, split, channels=channels):
        x = to_device(to_model_input(batch, device, augment=False), device)
        with autocast(device):
            p = model.view_parts(x)
        for v in VIEWS:
            parts[v].append(p[v].float())
        rows.append(pd.DataFrame({"breast_id": batch["index"].numpy(),
                                  "malignant": batch["labels"][:, 0].numpy(),
                                  "benign": batch["labels"][:, 1].numpy()}))
    return {v: torch.cat(parts[v]) for v in VIEWS}, pd.concat(rows, ignore_index=True)


@torch.no_grad()
def reliance_predictions(model: torch.nn.Module, data: BreastDataset, split: str,
                         channels: int, device: torch.device) -> pd.DataFrame:
    """Malignant probabilities per breast of `split`: full, CC only (MLO's part replaced by
    its training-split mean) and MLO only (the mirror)."""
    means = {v: p.mean(dim=0) for v, p in
             view_parts(model, data, "train", channels, device)[0].items()}
    parts, out = view_parts(model, data, split, channels, device)
    kept = {"full": parts,
            "cc_only": {"cc": parts["cc"], "mlo": means["mlo"].expand_as(parts["mlo"])},
            "mlo_only": {"cc": means["cc"].expand_as(parts["cc"]), "mlo": parts["mlo"]}}
    for name, p in kept.items():
        out[f"p_{name}"] = torch.sigmoid(model.fuse_parts(p)[:, 0]).cpu().numpy()
    return out


def utilisation(aucs: dict[str, float]) -> dict[str, float]:
    """Conditional utilisation rates from the AUCs full / cc_only / mlo_only."""
    u_mlo = (aucs["full"] - aucs["cc_only"]) / aucs["full"]
    u_cc = (aucs["full"] - aucs["mlo_only"]) / aucs["full"]
    return {"u(mlo|cc)": u_mlo, "u(cc|mlo)": u_cc, "d_util": u_mlo - u_cc}


def reliance_summary(pred: pd.DataFrame, level: float = 0.95) -> dict[str, float]:
    """AUC full / CC only / MLO only with DeLong intervals, and the utilisation rates, of
    one model's `reliance_predictions`."""
    row, aucs = {}, {}
    for name in PREDICTIONS:
        try:
            a, lo, hi = auc_ci(pred.malignant, pred[f"p_{name}"], level)
        except ValueError:  # fewer than 2 breasts of a class (small real splits): no AUC
            a = lo = hi = float("nan")
        aucs[name] = a
        row.update({f"auc_{name}": a, f"auc_{name}_lo": lo, f"auc_{name}_hi": hi})
    return {**row, **utilisation(aucs)}
