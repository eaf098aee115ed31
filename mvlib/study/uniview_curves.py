"""Section 5, Figure 3 (notebook 01): uni-view CC and MLO models trained at several learning
rates, their validation-AUC curves, and which view peaks first."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mvlib.core import paper
from mvlib.engine.search import results
from mvlib.engine.train import selection_score
from mvlib.executors.sweep import Executor, default_executor, sweep
from mvlib.experiment.profiles import Profile
from mvlib.study.protocol import config, learning_rates


def uniview_curves(prof: Profile, executor: Executor | None = None,
                   store: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Figure 3: per-epoch metrics of CC-only and MLO-only models over the sampled rates.

    Returns (long table of metrics with view, lr and seed, the runs' results table)."""
    cfgs = [config(prof, f"uni_{view}", lr, s, "uniview")
            for view in ("cc", "mlo") for lr in learning_rates(prof, "uniview")
            for s in range(prof.search_seeds)]
    runs = sweep(cfgs, executor or default_executor(prof), store)
    curves = []
    for run in runs:
        m = run.metrics()
        if m.empty:
            continue
        m.insert(0, "view", run.cfg.model.removeprefix("uni_").upper())
        m.insert(1, "lr", run.cfg.lr)
        m.insert(2, "seed", run.cfg.seed)
        curves.append(m)
    return pd.concat(curves, ignore_index=True), results(runs)


def uniview_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Figure 3's numbers per view: mean epoch of the best validation AUC over the runs, and
    the run with the best validation AUC (its AUCs and learning rate) beside the paper's
    test AUC. `runs` is the results table of `uniview_curves`."""
    done = runs[runs.state == "done"].assign(
        view=lambda t: t.model.str.removeprefix("uni_").str.upper())
    # Best validation AUC first; without one (single-class validation split), lowest loss.
    auc, loss = (done.reindex(columns=[c])[c].astype(float) for c in ("val_auc", "val_loss"))
    order = sorted(done.index, reverse=True, key=lambda i: selection_score(
        {"val_auc_malignant": auc[i], "val_loss": loss[i]}))
    best = done.loc[order].groupby("view").head(1).set_index("view")
    reference = {"CC": paper.TABLE1["uni-view CC"][0], "MLO": paper.TABLE1["uni-view MLO"][0]}
    return pd.DataFrame({
        "mean epoch of best val AUC (ours)": done.groupby("view").best_epoch.mean() + 1,
        "best val AUC (ours)": best.val_auc.round(3),
        "its test AUC (ours)": best.test_auc.round(3),
        "its learning rate": best.lr.map("{:.3g}".format),
        "test AUC (paper)": pd.Series(reference),
    })


def uniview_markdown(runs: pd.DataFrame, summary: pd.DataFrame, epochs: int) -> str:
    """Notebook 01's reading of its runs (`runs` of `uniview_curves`, `summary` of
    `uniview_summary`, runs of `epochs` epochs): when each view peaks, its best run beside the
    paper's, and the CC minus MLO gap."""
    done = runs[runs.state == "done"].assign(
        view=runs.model.str.removeprefix("uni_").str.upper())
    peak = summary["mean epoch of best val AUC (ours)"]
    ours, ref = summary["its test AUC (ours)"], summary["test AUC (paper)"]
    lines = []
    for view, r in summary.iterrows():
        part = done[done.view == view]
        last = int((part.best_epoch + 1 == epochs).sum())
        lines.append(
            f"* **{view}:** best validation AUC at epoch {peak[view]:.1f} on average over "
            f"{len(part)} run(s), {last} of them at the last epoch; the best run (lr "
            f"{r['its learning rate']}) reaches {r['best val AUC (ours)']:.3f} on validation "
            f"and {r['its test AUC (ours)']:.3f} on test (the paper's best: "
            f"{r['test AUC (paper)']:.3f}).")
    lines.append(
        f"* **Which view peaks first:** MLO at epoch {peak['MLO']:.1f} on average, CC at "
        f"{peak['CC']:.1f}: MLO {'earlier' if peak['MLO'] < peak['CC'] else 'not earlier'} "
        f"here (the paper: earlier).")
    lines.append(
        f"* **CC minus MLO test AUC of the best runs:** {ours['CC'] - ours['MLO']:+.3f} (the "
        f"paper: {ref['CC'] - ref['MLO']:+.3f}). The synthetic CC view is the more informative "
        f"by construction (notebook 00).")
    return "\n".join(lines)
