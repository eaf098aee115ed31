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

import numpy as np
import pandas as pd
import torch

from mvlib.atomic import write_atomic
from mvlib.data.loader import VIEWS, eval_loader, to_model_input
from mvlib.data.prepare import prepare
from mvlib.data.store import BreastDataset
from mvlib.device import autocast, cpu_threads, pick_device, to_device
from mvlib.evaluate import predict
from mvlib.models.heads import build_model
from mvlib.runs import RunDir
from mvlib.stats import auc_ci, bootstrap_aucs, interval_cell

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
    return out


def utilisation(aucs: dict[str, float]) -> dict[str, float]:
    """Conditional utilisation rates from the AUCs full / cc_only / mlo_only."""
    with np.errstate(divide="ignore", invalid="ignore"):  # AUC_full 0: no rate (NaN/inf)
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


def run_reliance(run: RunDir) -> pd.DataFrame:
    """`reliance_predictions` of a finished run's best checkpoint on the test and training
    splits (column `split`), computed once and kept in the run's folder."""
    path = run.path / "reliance.csv"
    if path.exists():
        return pd.read_csv(path)
    cfg = run.cfg
    data = prepare(cfg.dataset, cfg.profile, cfg.data_root, progress=False, **cfg.knobs)
    model = build_model(cfg.model, cfg.channels, cfg.view_dropout)
    model.load_state_dict(run.load("best.pt"))
    device = pick_device()
    model.to(device, memory_format=torch.channels_last)
    with cpu_threads(cfg.threads):
        train = (view_parts(model, data, "train", cfg.channels, device)
                 if hasattr(model, "view_parts") else None)
        out = pd.concat([_predictions(model, data, split, cfg.channels, device, train)
                         .assign(split=split) for split in ("test", "train")],
                        ignore_index=True)
    write_atomic(path, lambda p: out.to_csv(p, index=False))
    return out


def _predictions(model: torch.nn.Module, data: BreastDataset, split: str, channels: int,
                 device: torch.device, train_parts=None) -> pd.DataFrame:
    """`reliance_predictions`; a uni-view model is its own view's prediction, and the other
    view's is a constant (0.5)."""
    if hasattr(model, "view_parts"):
        return reliance_predictions(model, data, split, channels, device, train_parts)
    pred = predict(model, eval_loader(data, split, channels=channels), device)
    own = pred.p_malignant.to_numpy()
    out = pred[["breast_id", "malignant", "benign"]].assign(p_full=own)
    out["p_cc_only"] = own if model.view == "cc" else 0.5
    out["p_mlo_only"] = own if model.view == "mlo" else 0.5
    return out


def training_curve(run: RunDir) -> pd.DataFrame:
    """View reliance during training: per validated epoch, the validation AUC full / CC only
    / MLO only (recorded by the training loop from the same forward pass; each view's part
    replaced by its validation mean) and the utilisation rates. Empty for runs that did not
    record them (uni-view models)."""
    m = run.metrics()
    cols = ["val_auc_malignant", "val_auc_cc_only", "val_auc_mlo_only"]
    if m.empty or not set(cols) <= set(m):
        return pd.DataFrame(columns=["epoch", *PREDICTIONS, "u(mlo|cc)", "u(cc|mlo)", "d_util"])
    m = m.dropna(subset=cols)
    out = pd.DataFrame({"epoch": m.epoch.to_numpy(), "full": m[cols[0]].to_numpy(),
                        "cc_only": m[cols[1]].to_numpy(), "mlo_only": m[cols[2]].to_numpy()})
    return out.assign(**utilisation({k: out[k] for k in PREDICTIONS}))


def utilisation_replicates(y: np.ndarray, runs: list[pd.DataFrame], n_boot: int = 10000,
                           seed: int = 0) -> dict[str, np.ndarray]:
    """Seed x case bootstrap replicates (shape (n_boot,)) of the mean over seeds of each AUC
    and utilisation rate. Two recipes bootstrapped with the same `seed` and the same number
    of runs share their case and seed draws, so their replicates pair up for a difference."""
    scores = [p[f"p_{name}"].to_numpy() for p in runs for name in PREDICTIONS]
    rng = np.random.default_rng(seed)
    boot = bootstrap_aucs(y, scores, n_boot, rng).reshape(len(runs), len(PREDICTIONS), n_boot)
    draw = rng.integers(0, len(runs), (n_boot, len(runs)))  # seeds, resampled
    per_run = {name: boot[:, i] for i, name in enumerate(PREDICTIONS)}  # (runs, n_boot)
    per_run.update(utilisation(per_run))
    cols = np.arange(n_boot)[None, :]
    # A replicate whose full AUC is 0 (tiny splits) has no rate: NaN, left out of intervals.
    return {k: np.where(np.isfinite(m := v[draw.T, cols].mean(axis=0)), m, np.nan)
            for k, v in per_run.items()}


def table6(final: dict[str, list[RunDir]], level: float = 0.95) -> pd.DataFrame:
    """Table 6 (ours): per two-view group, the test AUC full / CC only / MLO only, the
    utilisation rates and the MLO-only AUC on the training split, each the mean over seeds
    with its seed x case interval."""
    rows = []
    for group, runs in final.items():
        done = [r for r in runs if r.status()["state"] == "done"]
        if not done:
            continue
        preds = [run_reliance(r) for r in done]
        row = {"group": group, "runs": len(done)}
        for split in ("test", "train"):
            part = [p[p.split == split].reset_index(drop=True) for p in preds]
            try:
                reps = utilisation_replicates(part[0].malignant.to_numpy(), part)
            except ValueError:  # fewer than 2 breasts of a class: no interval
                reps = None
            point = [reliance_summary(p, level) for p in part]
            keys = (*(f"auc_{n}" for n in PREDICTIONS), "u(mlo|cc)", "u(cc|mlo)", "d_util")
            for key in keys if split == "test" else ("auc_mlo_only",):
                name = key.removeprefix("auc_") if split == "test" else "mlo_only (train)"
                lo, hi = (np.nan, np.nan) if reps is None else np.nanquantile(
                    reps[key.removeprefix("auc_")], [(1 - level) / 2, (1 + level) / 2])
                row[name] = float(np.mean([q[key] for q in point]))
                row[f"{name} lo"], row[f"{name} hi"] = float(lo), float(hi)
        rows.append(row)
    return pd.DataFrame(rows).set_index("group")


def table6_display(table6: pd.DataFrame) -> pd.DataFrame:
    """Table 6 with each value and its interval in one cell, for display."""
    cols = {"full": "AUC full", "cc_only": "CC only", "mlo_only": "MLO only",
            "u(mlo|cc)": "u(mlo|cc)", "u(cc|mlo)": "u(cc|mlo)", "d_util": "d_util",
            "mlo_only (train)": "MLO only, training split"}
    out = pd.DataFrame(index=table6.index)
    for col, name in cols.items():
        out[name] = [interval_cell(v, lo, hi) for v, lo, hi in
                     zip(table6[col], table6[f"{col} lo"], table6[f"{col} hi"], strict=True)]
    out["seeds"] = table6["runs"]
    return out


def reliance_claims(table6_runs: dict[str, list[RunDir]], level: float = 0.95,
                    reducers: tuple[str, ...] = ("+ Modality Dropout", "Shared ResNet")
                    ) -> pd.DataFrame:
    """The view-reliance claims, each judged by the seed x case interval of a difference
    (holds above/below 0 as the claim says, contradicted on the other side, else
    inconclusive at this budget):
      * Joint ResNet under-uses CC: its CC part (MLO replaced) scores below a CC model trained
        alone (uni-view CC);
      * each of `reducers` (Modality Dropout and Shared ResNet; notebook 08: the later
        balancing methods) reduces Joint ResNet's reliance on MLO: a lower d_util than Joint
        ResNet's."""
    preds = {g: [run_reliance(r) for r in rs if r.status()["state"] == "done"]
             for g, rs in table6_runs.items()}
    test = {g: [p[p.split == "test"].reset_index(drop=True) for p in ps]
            for g, ps in preds.items()}
    rows = []

    def judge(text: str, a, b, below: bool) -> None:
        try:
            diff = a() - b()
        except ValueError as e:  # a split too small for AUCs
            rows.append({"claim": text, "verdict": f"not tested: {e}"})
            return
        diff = diff[np.isfinite(diff)]
        if not diff.size:
            rows.append({"claim": text, "verdict": "not tested: no finite replicate"})
            return
        lo, hi = np.quantile(diff, [(1 - level) / 2, (1 + level) / 2])
        p = min(1.0, 2 * min(np.mean(diff <= 0), np.mean(diff >= 0)))
        good, bad = (hi < 0, lo > 0) if below else (lo > 0, hi < 0)
        rows.append({"claim": text, "verdict": "holds" if good else "contradicted" if bad
                     else "inconclusive at this budget", "diff": float(np.mean(diff)),
                     "lo": float(lo), "hi": float(hi), "p": float(p)})

    if "Joint ResNet" not in test or not test["Joint ResNet"]:
        return pd.DataFrame(rows, columns=["claim", "verdict", "diff", "lo", "hi", "p"]
                            ).set_index("claim")
    joint = test["Joint ResNet"]
    y = joint[0].malignant.to_numpy()
    if "uni-view CC" in test:
        cc = test["uni-view CC"]
        if len(joint) == len(cc):
            judge("Joint ResNet under-uses CC: its CC part scores below uni-view CC",
                  lambda: utilisation_replicates(y, joint)["cc_only"],
                  lambda: utilisation_replicates(y, cc)["full"], below=True)
    for group in reducers:
        if group in test and len(test[group]) == len(joint):
            judge(f"{group} reduces Joint ResNet's reliance on MLO (lower d_util)",
                  lambda g=group: utilisation_replicates(y, test[g])["d_util"],
                  lambda: utilisation_replicates(y, joint)["d_util"],
                  below=True)
    return pd.DataFrame(rows, columns=["claim", "verdict", "diff", "lo", "hi", "p"]
                        ).set_index("claim")
