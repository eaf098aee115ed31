"""Section 6.2, Table 2 (notebook 04): Joint ResNet with each regularizer.

Searches (Appendix B): Pretraining and its whole-model variant over the Joint ResNet
learning rates; Split Learning Rates and Modality Dropout over `hp_samples` sets at each
base rate (1e-5, 1e-4). Gradient Blending (mvlib.study.gradient_blending) trains at 1e-4 with
its estimated weights.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mvlib.core import paper
from mvlib.executors.sweep import Executor, default_executor, sweep
from mvlib.experiment.profiles import Profile
from mvlib.experiment.runs import RunDir
from mvlib.study import protocol
from mvlib.study.gradient_blending import gradient_blending
from mvlib.study.protocol import (
    summary,
)

PER_SEED_COLUMNS = "+ Pretraining (columns of each seed)"


def pretraining_per_seed(prof: Profile, executor: Executor | None = None,
                         store: Path | None = None) -> dict[str, list[RunDir]]:
    """Table 2's sensitivity row for Pretraining. Appendix B starts every repetition from the
    best uni-view columns, so the row's interval covers the fine-tuning seeds only; here each
    seed fine-tunes the columns of Table 1's uni-view runs of its own seed, at the winning
    Pretraining setting, so the choice of columns varies too."""
    uni = protocol.table1_final(prof, executor, store, ("uni-view CC", "uni-view MLO"))
    own = {v: {r.cfg.seed: r for r in uni[name] if r.done}
           for v, name in (("cc", "uni-view CC"), ("mlo", "uni-view MLO"))}
    pre = protocol.regularizers(prof, executor, store)[1]["+ Pretraining"]
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
    final = {"Joint ResNet": protocol.table1_final(prof, executor, store, ("Joint ResNet",))[
        "Joint ResNet"]}
    final.update(protocol.regularizers(prof, executor, store)[1])
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
