"""Each view's part of a trained model's decision, per breast: what the view-reliance and
dependence readings (mvlib.instruments.reliance, mvlib.instruments.dependence) are read from.

After Wu, Jastrzebski, Cho & Geras ("Characterizing and overcoming the greedy nature of
learning in multi-modal deep neural networks", ICML 2022; nyukat/greedy_multimodal_learning):
one view's part is replaced by its mean over the training split (whole crops, eval mode)
while the other is kept: CC only = the model with its MLO part replaced, MLO only = the
mirror. A view's part is its representation h for the fusing models (the output layer is
linear in h_cc + h_mlo) and its uni-view model's logits for Split ResNet; each view's part of
the malignant logit, z_v, is kept too (fusing models: W h_v + b/2, so that z = z_cc + z_mlo).
The training loop scores a finished run's best checkpoint so, once, in the worker
(`run_reliance`: the run's reliance.csv).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from mvlib.core.atomic import write_atomic
from mvlib.core.device import autocast, cpu_threads, pick_device, to_device
from mvlib.data.loader import VIEWS, eval_loader, to_model_input
from mvlib.data.store import BreastDataset
from mvlib.experiment.prepare import prepare
from mvlib.experiment.runs import RunDir
from mvlib.models.heads import build_model

PREDICTIONS = ("full", "cc_only", "mlo_only")
# The columns a cached reliance.csv must have; an older file without them is recomputed.
COLUMNS = ("breast_id", "malignant", "benign", "p_full", "p_cc_only", "p_mlo_only", "z_cc",
           "z_mlo", "split")


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
                         channels: int, device: torch.device,
                         train_parts: tuple[dict[str, torch.Tensor], pd.DataFrame] | None = None
                         ) -> pd.DataFrame:
    """Malignant probabilities per breast of `split`: full, CC only (MLO's part replaced by
    its training-split mean) and MLO only (the mirror). `train_parts`: the training split's
    `view_parts` when the caller has them (computed once for both splits of a run)."""
    train = train_parts or view_parts(model, data, "train", channels, device)
    means = {v: p.mean(dim=0) for v, p in train[0].items()}
    parts, rows = train if split == "train" else view_parts(model, data, split, channels, device)
    out = rows.copy()
    kept = {"full": parts,
            "cc_only": {"cc": parts["cc"], "mlo": means["mlo"].expand_as(parts["mlo"])},
            "mlo_only": {"cc": means["cc"].expand_as(parts["cc"]), "mlo": parts["mlo"]}}
    for name, p in kept.items():
        out[f"p_{name}"] = torch.sigmoid(model.fuse_parts(p)[:, 0]).cpu().numpy()
    for v, z in logit_parts(model, parts).items():
        out[f"z_{v}"] = z.cpu().numpy()
    return out


@torch.no_grad()
def logit_parts(model: torch.nn.Module, parts: dict[str, torch.Tensor]
                ) -> dict[str, torch.Tensor]:
    """Each view's part of the malignant logit: W h_v + b/2 for the fusing models (their
    logit is z_cc + z_mlo, as OGM-GE scores a view), the uni-view logit for Split ResNet."""
    if hasattr(model, "output"):  # Split ResNet has none: its parts are logits already
        w, b = model.output.weight[0].float(), model.output.bias[0].float()
        return {v: p.float() @ w + b / 2 for v, p in parts.items()}
    return {v: p[:, 0].float() for v, p in parts.items()}


def run_reliance(run: RunDir, knobs: dict | None = None) -> pd.DataFrame:
    """`reliance_predictions` of a finished run's best checkpoint on the test and training
    splits (column `split`), computed once and kept in the run's folder. `knobs`: score it on
    another synthetic data set (e.g. a control run on the planted data: the testbed) than
    the one it trained on; kept as reliance-<data set>.csv. A cached file that lacks a
    column of `COLUMNS` (an older version) is recomputed."""
    cfg = run.cfg
    own = knobs is None or knobs == cfg.knobs
    data = None
    if own:
        path = run.path / "reliance.csv"
    else:
        data = prepare(cfg.dataset, cfg.profile, cfg.data_root, progress=False, **knobs)
        path = run.path / f"reliance-{data.root.name}.csv"
    if path.exists():
        cached = pd.read_csv(path)
        if set(COLUMNS) <= set(cached):
            return cached
    if data is None:
        data = prepare(cfg.dataset, cfg.profile, cfg.data_root, progress=False, **cfg.knobs)
    model = load_best(run)
    device = next(model.parameters()).device
    with cpu_threads(cfg.threads):
        train = (view_parts(model, data, "train", cfg.channels, device)
                 if hasattr(model, "view_parts") else
                 malignant_logits(model, data, "train", cfg.channels, device))
        out = pd.concat([_predictions(model, data, split, cfg.channels, device, train)
                         .assign(split=split) for split in ("test", "train")],
                        ignore_index=True)
    write_atomic(path, lambda p: out.to_csv(p, index=False))
    return out


def load_best(run: RunDir) -> torch.nn.Module:
    """A run's best checkpoint as a model on the device, in eval mode."""
    cfg = run.cfg
    model = build_model(cfg.model, cfg.channels, cfg.view_dropout)
    model.load_state_dict(run.load("best.pt"))
    model.to(pick_device(), memory_format=torch.channels_last)
    return model.eval()


@torch.no_grad()
def malignant_logits(model: torch.nn.Module, data: BreastDataset, split: str, channels: int,
                     device: torch.device) -> tuple[np.ndarray, pd.DataFrame]:
    """The model's malignant logit per breast of `split` (whole crops, eval mode) and the
    breasts (breast_id, malignant, benign) in the same order."""
    model.eval()
    z, rows = [], []
    for batch in eval_loader(data, split, channels=channels):
        x = to_device(to_model_input(batch, device, augment=False), device)
        with autocast(device):
            z.append(model(x)[:, 0].float().cpu())
        rows.append(pd.DataFrame({"breast_id": batch["index"].numpy(),
                                  "malignant": batch["labels"][:, 0].numpy(),
                                  "benign": batch["labels"][:, 1].numpy()}))
    return torch.cat(z).numpy(), pd.concat(rows, ignore_index=True)


def _predictions(model: torch.nn.Module, data: BreastDataset, split: str, channels: int,
                 device: torch.device, train=None) -> pd.DataFrame:
    """`reliance_predictions`; a uni-view model is its own view's prediction, and the other
    view's part is a constant: z = 0, and the prediction without its own view is the
    sigmoid of its training-mean logit (as a fusing model's view is replaced)."""
    if hasattr(model, "view_parts"):
        return reliance_predictions(model, data, split, channels, device, train)
    z, rows = train if split == "train" else malignant_logits(model, data, split, channels, device)
    own = 1 / (1 + np.exp(-z.astype(np.float64)))
    without = float(1 / (1 + np.exp(-float(np.mean(train[0])))))
    out = rows.assign(p_full=own)
    out["p_cc_only"] = own if model.view == "cc" else without
    out["p_mlo_only"] = own if model.view == "mlo" else without
    out["z_cc"] = z if model.view == "cc" else 0.0
    out["z_mlo"] = z if model.view == "mlo" else 0.0
    return out
