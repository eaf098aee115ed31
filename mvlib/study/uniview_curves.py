"""Section 5, Figure 3 (notebook 01): uni-view CC and MLO models trained at several learning
rates, their validation-AUC curves, and which view peaks first."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.text import Annotation
from matplotlib.ticker import MaxNLocator

from mvlib.core import paper
from mvlib.engine.search import results
from mvlib.engine.train import selection_score
from mvlib.executors.sweep import Executor, default_executor, sweep
from mvlib.experiment.profiles import Profile
from mvlib.study.plots import BELOW
from mvlib.study.protocol import config, learning_rates

# Figure 3's best test AUC per view (Section 5), drawn on the uni-view learning curves.
UNIVIEW_TEST_AUC = {"CC": paper.TABLE1["uni-view CC"][0], "MLO": paper.TABLE1["uni-view MLO"][0]}



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


def uniview_peaks(runs: pd.DataFrame, epochs: int) -> pd.DataFrame:
    """Per view (rows CC, MLO): the finished runs of `uniview_curves` and how many of them
    peaked (best validation AUC) at the last of their `epochs` epochs."""
    done = runs[runs.state == "done"].assign(
        view=runs.model.str.removeprefix("uni_").str.upper())
    return pd.DataFrame({"runs": done.groupby("view").size(),
                         "at the last epoch": (done.best_epoch + 1 == epochs)
                         .groupby(done.view).sum()})


def uniview_markdown(peaks: pd.DataFrame, summary: pd.DataFrame) -> str:
    """Notebook 01's reading of its runs in words (`peaks` of `uniview_peaks`, `summary` of
    `uniview_summary`): when each view peaks, its best run beside the paper's, and the CC
    minus MLO gap."""
    peak = summary["mean epoch of best val AUC (ours)"]
    ours, ref = summary["its test AUC (ours)"], summary["test AUC (paper)"]
    lines = []
    for view, r in summary.iterrows():
        n, last = ((int(peaks.loc[view, "runs"]), int(peaks.loc[view, "at the last epoch"]))
                   if view in peaks.index else (0, 0))
        lines.append(
            f"* **{view}:** best validation AUC at epoch {peak[view]:.1f} on average over "
            f"{n} run(s), {last} of them at the last epoch; the best run (lr "
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


def learning_curves(curves: pd.DataFrame, views: tuple[str, ...] = ("CC", "MLO"),
                    paper_auc: dict[str, float] | None = None) -> plt.Figure:
    """Figure 3: train and validation malignant AUC per epoch. One thin line per learning
    rate, labelled at its end; with three rates or more, the mean and a one-std band over
    them as in the paper. A dashed line per view at the paper's best test AUC (`paper_auc`,
    default `UNIVIEW_TEST_AUC`)."""
    reference = UNIVIEW_TEST_AUC if paper_auc is None else paper_auc
    fig, axes = plt.subplots(1, len(views), figsize=(5 * len(views), 3.8), sharey=True,
                             squeeze=False)
    ends = []
    for ax, view in zip(axes[0], views, strict=True):
        part = curves[curves.view == view]
        for col, label, color in (("train_auc_malignant", "train", "tab:blue"),
                                  ("val_auc_malignant", "validation", "tab:orange")):
            for lr, run in part.groupby("lr"):
                run = run.groupby("epoch")[col].mean().dropna()
                if run.empty:
                    continue
                ax.plot(run.index + 1, run, color=color, lw=0.8, alpha=0.5)
                ends.append(ax.annotate(
                    f"{lr:.2g}", (run.index[-1] + 1, run.iloc[-1]), fontsize=7, color=color,
                    xytext=(1.02, 0), textcoords=("axes fraction", "offset points"),
                    va="center",
                    arrowprops={"arrowstyle": "-", "color": color, "lw": 0.4, "alpha": 0.6,
                                "shrinkA": 0, "shrinkB": 0}))
            if part.lr.nunique() >= 3:
                g = part.groupby("epoch")[col]
                mean, std = g.mean(), g.std().fillna(0)
                ax.plot(mean.index + 1, mean, color=color, lw=2, label=f"{label} (mean)")
                ax.fill_between(mean.index + 1, mean - std, mean + std, color=color, alpha=0.2)
            else:
                ax.plot([], [], color=color, label=label)
        if view in reference:
            ax.axhline(reference[view], color="black", ls="--", lw=1,
                       label=f"paper: best test AUC {reference[view]:.3f}")
        ax.set_title(f"{view} only (one line per learning rate)")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(ncol=3, **BELOW)
    axes[0, 0].set_ylabel("malignant AUC")
    fig.tight_layout()
    _spread_labels(ends)
    return fig


def _spread_labels(labels: list[Annotation], gap: float = 1.4) -> None:
    """Move end-of-line annotations (y offset in points from their point) apart vertically so
    that no two of one axes overlap: at least `gap` times the font size between centres,
    inside the axes, each kept as near its point as that allows. Call after the layout."""
    by_ax: dict[plt.Axes, list[Annotation]] = {}
    for a in labels:
        by_ax.setdefault(a.axes, []).append(a)
    for ax, anns in by_ax.items():
        ax.get_xlim(), ax.get_ylim()  # settle autoscaled limits before reading transData
        to_pt = 72 / ax.figure.dpi
        size = max(a.get_fontsize() for a in anns)
        box = ax.get_window_extent()
        lo, hi = box.y0 * to_pt + size / 2, box.y1 * to_pt - size / 2
        at = np.array([ax.transData.transform(a.xy)[1] * to_pt for a in anns])
        step = min(gap * size, (hi - lo) / max(len(anns) - 1, 1))
        order = np.argsort(at, kind="stable")
        y = at[order].clip(lo, hi)
        for i in range(1, len(y)):  # push up where too close
            y[i] = max(y[i], y[i - 1] + step)
        y[-1] = min(y[-1], hi)
        for i in range(len(y) - 2, -1, -1):  # then back down below the top edge
            y[i] = min(y[i], y[i + 1] - step)
        for a, target, point in zip(np.array(anns, dtype=object)[order], y, at[order],
                                    strict=True):
            a.xyann = (a.xyann[0], float(target - point))
