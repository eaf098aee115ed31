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

What the utilisation rates measure is each view's contribution to the AUC on the split they
are computed on (the test split in Table 6), not how much the decision leans on a view: a cue
that predicts the label in training only makes u(mlo|cc) negative on the test split for a
model that relies on it (MLO's part then hurts the test AUC), so relying less on the cue
raises d_util. Hence also, label-free (mvlib.instruments.dependence), each view's
malignant-logit part z_v (fusing models: W h_v + b/2, so that z = z_cc + z_mlo; Split ResNet: the
uni-view logits), kept per breast in `reliance.csv` as `z_cc`, `z_mlo`, and MLO's share of the
logit's variation s_mlo = Cov(z_mlo, z) / Var(z) on either split (the covariance split evenly;
for Split ResNet, whose probabilities are averaged, of the sum of its uni-view logits). A uni-view
model's other view contributes a constant (z = 0, s_mlo = 0 for CC, 1 for MLO). The
per-breast predictions these readings start from: mvlib.engine.view_parts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mvlib.engine.view_parts import PREDICTIONS, run_reliance
from mvlib.experiment.runs import RunDir
from mvlib.instruments import dependence, stats
from mvlib.instruments.stats import auc_ci, interval_cell


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


# Table 6's label-free dependence columns: reading -> splits.
DEPENDENCE = {"s_mlo": ("train", "test"), "dp_mlo": ("test",), "dp_cc": ("test",)}


def table6(final: dict[str, list[RunDir]], level: float = 0.95) -> pd.DataFrame:
    """Table 6 (ours): per two-view group, each the mean over seeds with its interval
    over seeds and breasts (`<col> lo`, `<col> hi`; mvlib.instruments.dependence.summary):
      * `full`, `cc_only`, `mlo_only`: test AUC of the model, of its CC part (MLO replaced by
        its training mean) and of its MLO part; `mlo_only (train)` on the training split;
      * `u(mlo|cc)`, `u(cc|mlo)`, `d_util`: utilisation rates, i.e. each view's contribution
        to the test AUC (Wu et al., ICML 2022); negative when a view's part hurts the test
        AUC, as a cue that predicts in training only does;
      * `s_mlo (train)`, `s_mlo (test)`: MLO's share of the malignant logit's variation,
        Cov(z_mlo, z) / Var(z) over the split's breasts (label-free;
        mvlib.instruments.dependence.share);
      * `dp_mlo (test)`, `dp_cc (test)`: mean |change of the predicted malignancy
        probability| when MLO's (CC's) part is replaced by its training mean."""
    rows = []
    for group, runs in final.items():
        done = [r for r in runs if r.done]
        if not done:
            continue
        preds = [run_reliance(r) for r in done]
        row = {"group": group, "runs": len(done)}
        for split in ("test", "train"):
            part = [p[p.split == split].reset_index(drop=True) for p in preds]
            keys = (*PREDICTIONS, "u(mlo|cc)", "u(cc|mlo)", "d_util") if split == "test" \
                else ("mlo_only",)
            auc = dependence.summary(part, level, keys=keys)
            for key in keys:
                name = key if split == "test" else "mlo_only (train)"
                for suffix in ("", " lo", " hi"):
                    row[f"{name}{suffix}"] = auc[f"{key}{suffix}"]
            keys = tuple(k for k, splits in DEPENDENCE.items() if split in splits)
            dep = dependence.summary(part, level, keys=keys)
            for k in keys:
                for suffix in ("", " lo", " hi"):
                    row[f"{k} ({split}){suffix}"] = dep[f"{k}{suffix}"]
        rows.append(row)
    return pd.DataFrame(rows).set_index("group")


# Table 6's columns for display: CSV column -> heading.
DISPLAY = {"full": "AUC full", "cc_only": "CC only", "mlo_only": "MLO only",
           "u(mlo|cc)": "u(mlo|cc): MLO's contribution to test AUC",
           "u(cc|mlo)": "u(cc|mlo): CC's contribution to test AUC", "d_util": "d_util",
           "mlo_only (train)": "MLO only, training split",
           "s_mlo (train)": "MLO's share of the logit's variation, training split",
           "s_mlo (test)": "MLO's share of the logit's variation, test split",
           "dp_mlo (test)": "mean |change of p| without MLO, test",
           "dp_cc (test)": "mean |change of p| without CC, test"}


def table6_display(table6: pd.DataFrame) -> pd.DataFrame:
    """Table 6 with each value and its interval in one cell, for display (the columns a
    table has of `DISPLAY`)."""
    out = pd.DataFrame(index=table6.index)
    for col, name in DISPLAY.items():
        if col not in table6:
            continue
        out[name] = [interval_cell(v, lo, hi) for v, lo, hi in
                     zip(table6[col], table6[f"{col} lo"], table6[f"{col} hi"], strict=True)]
    out["seeds"] = table6["runs"]
    return out


# The readings a reliance claim can rest on: name -> (mvlib.instruments.dependence reading, split,
# the words in the claim). Each grows with reliance on MLO.
READINGS = {"s_mlo (train)": ("s_mlo", "train", "MLO's share of the logit's variation, "
                              "training split"),
            "s_mlo (test)": ("s_mlo", "test", "MLO's share of the logit's variation, "
                             "test split"),
            "dp_mlo (test)": ("dp_mlo", "test", "mean |change of p| without MLO, test split"),
            "d_util (test)": ("d_util", "test", "d_util, test split")}
CLAIM_COLUMNS = ["claim", "verdict", "reading", "diff", "lo", "hi", "p", "why"]


def reliance_claims(table6_runs: dict[str, list[RunDir]], level: float = 0.95,
                    reducers: tuple[str, ...] = ("+ Modality Dropout", "Shared ResNet"),
                    reading: str = "s_mlo (train)") -> pd.DataFrame:
    """The view-reliance claims, each judged by the interval of a difference over seeds and breasts
    (holds above/below 0 as the claim says, contradicted on the other side, else
    inconclusive at this budget); column `reading` names what each claim was judged by:
      * Joint ResNet under-uses CC: its CC part (MLO replaced) scores below a CC model trained
        alone (uni-view CC; test AUC);
      * each of `reducers` (Modality Dropout and Shared ResNet; notebook 08: the later
        balancing methods) reduces Joint ResNet's reliance on MLO: a lower `reading` (one of
        `READINGS`; default MLO's share of the logit's variation on the training split)
        than Joint ResNet's. Use a reading the testbed found (mvlib.study.testbed.verdicts)."""
    if reading not in READINGS:
        raise ValueError(f"unknown reading {reading!r}; choose one of {list(READINGS)}")
    key, split, words = READINGS[reading]
    done = {g: [r for r in rs if r.done] for g, rs in table6_runs.items()}
    preds = {g: [run_reliance(r) for r in rs] for g, rs in done.items()}
    seeds = {g: [r.cfg.seed for r in rs] for g, rs in done.items()}
    by_split = {sp: {g: [p[p.split == sp].reset_index(drop=True) for p in ps]
                     for g, ps in preds.items()} for sp in ("test", "train")}
    test = by_split["test"]
    rows = []

    def judge(text: str, used: str, compute, below: bool, groups: tuple[str, ...]) -> None:
        for g in groups:  # a model at chance tests nothing (mvlib.instruments.stats.at_chance)
            y = test[g][0].malignant.to_numpy()
            try:
                why = stats.at_chance(y, [p.p_full.to_numpy() for p in test[g]], level)
            except ValueError:
                why = None
            if why:
                rows.append({"claim": text, "verdict": "not testable at this budget",
                             "reading": used, "why": f"{g}: {why}"})
                return
        try:
            r = compute()
        except ValueError as e:  # a split too small, or runs on other breasts
            rows.append({"claim": text, "verdict": f"not tested: {e}", "reading": used})
            return
        if r["lo"] != r["lo"]:
            rows.append({"claim": text, "verdict": "not tested: a group has one run (no seed "
                         "spread to estimate)", "reading": used, "diff": r["diff"]})
            return
        good, bad = (r["hi"] < 0, r["lo"] > 0) if below else (r["lo"] > 0, r["hi"] < 0)
        rows.append({"claim": text, "verdict": "holds" if good else "contradicted" if bad
                     else "inconclusive at this budget", "reading": used,
                     "diff": r["diff"], "lo": r["lo"], "hi": r["hi"], "p": r["p"]})

    if "Joint ResNet" not in test or not test["Joint ResNet"]:
        return pd.DataFrame(rows, columns=CLAIM_COLUMNS).set_index("claim")
    joint = test["Joint ResNet"]
    if test.get("uni-view CC"):
        cc = test["uni-view CC"]
        judge("Joint ResNet under-uses CC: its CC part scores below uni-view CC",
              "CC-only test AUC (Joint ResNet) - test AUC (uni-view CC)",
              lambda: _difference(joint, cc, "cc_only", "full", level), below=True,
              groups=("Joint ResNet", "uni-view CC"))
    for group in reducers:
        if by_split[split].get(group):
            judge(f"{group} reduces Joint ResNet's reliance on MLO (lower {words})", reading,
                  lambda g=group: dependence.compare(
                      by_split[split][g], by_split[split]["Joint ResNet"], key, level,
                      seeds_a=seeds[g], seeds_b=seeds["Joint ResNet"]), below=True,
                  groups=(group, "Joint ResNet"))
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS).set_index("claim")


def _difference(a: list[pd.DataFrame], b: list[pd.DataFrame], key_a: str, key_b: str,
                level: float) -> dict[str, float]:
    """Reading `key_a` of group A - `key_b` of group B with `dependence.contrast`'s interval
    (seeds independent, one breast resampling for both groups)."""
    r = dependence.contrast([(a, key_a), (b, key_b)], [1.0, -1.0], level)
    return {"diff": r["diff"], "lo": r["lo"], "hi": r["hi"], "p": r["p"]}


def dependence_generalisation(final: dict[str, list[RunDir]]) -> pd.DataFrame:
    """Per finished run of each group: its test AUC (the run's own, test-time windows) and
    its dependence readings (s_mlo on the training and the test split, dp_mlo and d_util on
    the test split): the paper's hypothesis predicts a lower test AUC for a decision that
    leans more on MLO."""
    rows = []
    for group, runs in final.items():
        for r in runs:
            if not r.done:
                continue
            st = r.status()
            pred = run_reliance(r)
            row = {"group": group, "seed": r.cfg.seed, "test AUC": st.get("test_auc", np.nan)}
            for split in ("train", "test"):
                part = pred[pred.split == split].reset_index(drop=True)
                q = dependence.point(part, ("s_mlo", "dp_mlo", "d_util"))
                row[f"s_mlo ({split})"] = q["s_mlo"]
                if split == "test":
                    row["dp_mlo (test)"], row["d_util (test)"] = q["dp_mlo"], q["d_util"]
            rows.append(row)
    cols = ["group", "seed", "test AUC", "s_mlo (train)", "s_mlo (test)", "dp_mlo (test)",
            "d_util (test)"]
    return pd.DataFrame(rows, columns=cols)


# The pooled row of `generalisation_correlation`: uni-view models left out, their MLO share is
# 0 or 1 by construction and would anchor both ends of any correlation.
POOLED = "two-view runs (pooled)"


def generalisation_correlation(per_run: pd.DataFrame, reading: str = "s_mlo (train)",
                               level: float = 0.95, n_boot: int = 10000) -> pd.DataFrame:
    """Spearman's rank correlation of test AUC with `reading` across runs, per group and
    pooled over the two-view groups' runs (`POOLED`; uni-view models, whose MLO share is 0
    or 1 by construction, left out), with a bootstrap interval over runs
    (mvlib.instruments.dependence.rank_correlation; no interval under 10 runs). The hypothesis
    predicts rho < 0; within a group few seeds give a wide interval, and pooled runs mix groups
    that differ in more than reliance."""
    rows = []
    two_view = per_run[~per_run.group.str.startswith("uni-view")]
    parts = [*per_run.groupby("group", sort=False), (POOLED, two_view)]
    for group, part in parts:
        r = dependence.rank_correlation(part[reading], part["test AUC"], level, n_boot)
        rows.append({"group": group, "reading": reading, **r})
    return pd.DataFrame(rows, columns=["group", "reading", "rho", "lo", "hi", "p", "n"]
                        ).set_index("group")
