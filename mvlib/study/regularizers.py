"""Section 6.2, Table 2 (notebook 04): Joint ResNet with each regularizer.

Searches (Appendix B): Pretraining and its whole-model variant over the Joint ResNet
learning rates; Split Learning Rates and Modality Dropout over `hp_samples` sets at each
base rate (1e-5, 1e-4). Gradient Blending (mvlib.study.gradient_blending) trains at 1e-4 with
its estimated weights.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mvlib.core import paper
from mvlib.engine.search import BASE_LRS, dropout_rates, split_learning_rates
from mvlib.engine.train import selection_score
from mvlib.executors.sweep import Executor, default_executor, sweep
from mvlib.experiment.profiles import Profile
from mvlib.experiment.runs import RunDir
from mvlib.study.gradient_blending import gradient_blending
from mvlib.study.model_variants import table1_final
from mvlib.study.protocol import (
    lr_settings,
    search_then_repeat,
    summary,
)


def pretrained_views(prof: Profile, executor: Executor | None = None,
                     store: Path | None = None) -> dict[str, str]:
    """The best uni-view run of each view (highest validation AUC among Table 1's final
    runs): the store references that Pretraining initialises Joint ResNet from."""
    final = table1_final(prof, executor, store, ("uni-view CC", "uni-view MLO"))
    return {view: best_run(final[name], name).ref
            for view, name in (("cc", "uni-view CC"), ("mlo", "uni-view MLO"))}


def best_run(runs: list[RunDir], name: str) -> RunDir:
    """The finished run with the best validation AUC (ties: the lower loss), as the search
    picks its winner; RuntimeError naming the group when every run diverged."""
    done = [r for r in runs if r.done]
    if not done:
        raise RuntimeError(f"every {name} run diverged: nothing to pretrain from")
    return max(done, key=lambda r: selection_score(
        {"val_auc_malignant": r.status()["best_val_auc"],
         "val_loss": r.status().get("best_val_loss", math.inf)}))


def regularizer_groups(prof: Profile, init_from: dict[str, str]) -> dict[str, list[dict]]:
    """Table 2's searched groups: name -> settings (Appendix B)."""
    exp = "regularizers"
    return {
        "+ Pretraining": lr_settings(prof, "joint", exp, "variants", init_from=init_from,
                                     finetune="output", paper_epochs=50),
        "+ Pretraining (whole model)": lr_settings(prof, "joint", exp, "variants",
                                                   init_from=init_from, paper_epochs=50),
        "+ Split Learning Rates": [
            dict(model="joint", lr=base, group_lr=rates, experiment=exp)
            for i, base in enumerate(BASE_LRS)
            for rates in split_learning_rates(base, prof.hp_samples, seed=10 + i)],
        "+ Modality Dropout": [
            dict(model="joint", lr=base, view_dropout=rates, experiment=exp, paper_epochs=150)
            for i, base in enumerate(BASE_LRS)
            for rates in dropout_rates(prof.hp_samples, seed=20 + i)],
    }


def regularizers(prof: Profile, executor: Executor | None = None, store: Path | None = None
                 ) -> tuple[pd.DataFrame, dict[str, list[RunDir]]]:
    """Every regularizer group's search and repetitions: (search table, final runs)."""
    groups = regularizer_groups(prof, pretrained_views(prof, executor, store))
    return search_then_repeat(prof, groups, executor, store)


PER_SEED_COLUMNS = "+ Pretraining (columns of each seed)"


def pretraining_per_seed(prof: Profile, executor: Executor | None = None,
                         store: Path | None = None) -> dict[str, list[RunDir]]:
    """Table 2's sensitivity row for Pretraining. Appendix B starts every repetition from the
    best uni-view columns, so the row's interval covers the fine-tuning seeds only; here each
    seed fine-tunes the columns of Table 1's uni-view runs of its own seed, at the winning
    Pretraining setting, so the choice of columns varies too."""
    uni = table1_final(prof, executor, store, ("uni-view CC", "uni-view MLO"))
    own = {v: {r.cfg.seed: r for r in uni[name] if r.done}
           for v, name in (("cc", "uni-view CC"), ("mlo", "uni-view MLO"))}
    pre = regularizers(prof, executor, store)[1]["+ Pretraining"]
    cfgs = [replace(r.cfg, init_from={v: own[v][r.cfg.seed].ref for v in own})
            for r in pre if all(r.cfg.seed in own[v] for v in own)]
    return {PER_SEED_COLUMNS: sweep(cfgs, executor or default_executor(prof), store)}


TABLE2_ORDER = ("Joint ResNet", "+ Pretraining", PER_SEED_COLUMNS,
                "+ Pretraining (whole model)", "+ Split Learning Rates", "+ Gradient Blending",
                "+ Modality Dropout")


def table2(prof: Profile, executor: Executor | None = None, store: Path | None = None,
           with_blending: bool = True, blended: dict | None = None) -> pd.DataFrame:
    """Table 2: Joint ResNet and each regularizer, ours beside the paper's (the paper
    reports only the output-layer Pretraining; its whole-model variant and the sensitivity
    row `pretraining_per_seed` have no reference).
    `blended`: the result of `gradient_blending` when the caller already has it."""
    final = {"Joint ResNet": table1_final(prof, executor, store, ("Joint ResNet",))[
        "Joint ResNet"]}
    final.update(regularizers(prof, executor, store)[1])
    final.update(pretraining_per_seed(prof, executor, store))
    if with_blending:
        final.update((blended or gradient_blending(prof, executor, store))["final"])
    return summary({k: final[k] for k in TABLE2_ORDER if k in final}, paper.TABLE2)


def sampled_learning_rates(search: pd.DataFrame) -> plt.Figure:
    """Figure 8: the sampled per-group learning rates of the Split Learning Rates search
    (one row per group), coloured by the run's best validation AUC."""
    part = search[search.group == "+ Split Learning Rates"]
    fig, ax = plt.subplots(figsize=(6, 2.6))
    for y, g in enumerate(("cc", "mlo", "shared")):
        pts = ax.scatter(part[f"lr_{g}"], np.full(len(part), y), c=part.val_auc, cmap="viridis",
                         vmin=0.5, vmax=1.0, s=40, edgecolor="black", lw=0.5)
    ax.set_xscale("log")
    ax.set_xlim(1e-6, 1e-3)
    ax.set_yticks(range(3), [r"$\eta^{CC}$", r"$\eta^{MLO}$", r"$\eta^{shared}$"])
    ax.set_ylim(-0.5, 2.5)
    ax.set_xlabel("learning rate")
    ax.grid(alpha=0.3)
    fig.colorbar(pts, ax=ax, label="best val AUC")
    fig.tight_layout()
    return fig


def dropout_rates_vs_auc(search: pd.DataFrame) -> plt.Figure:
    """Modality Dropout search: sampled (p_CC, p_MLO) coloured by best validation AUC,
    one marker per base learning rate."""
    part = search[search.group == "+ Modality Dropout"]
    fig, ax = plt.subplots(figsize=(4.4, 3.6))
    for (lr, sub), marker in zip(part.groupby("lr"), "os^", strict=False):
        pts = ax.scatter(sub.p_cc, sub.p_mlo, c=sub.val_auc, cmap="viridis", vmin=0.5, vmax=1.0,
                         marker=marker, s=60, edgecolor="black", lw=0.5, label=f"lr {lr:.0e}")
        for _, r in sub.iterrows():
            ax.annotate(f"{r.val_auc:.3f}", (r.p_cc, r.p_mlo), fontsize=7, xytext=(4, 4),
                        textcoords="offset points")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="dropout rate CC", ylabel="dropout rate MLO")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.colorbar(pts, ax=ax, label="best val AUC")
    fig.tight_layout()
    return fig
