"""Section 5, Figures 4-7 and Appendix A (notebook 02): Joint ResNet's per-view gradient norms
and Loss Change Allocation, with the MLO shortcut planted and switched off."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mvlib.core import paper
from mvlib.data.loader import train_loader
from mvlib.engine import dynamics
from mvlib.engine.dynamics import RK4, mlo_share
from mvlib.executors.sweep import Executor, default_executor, sweep
from mvlib.experiment.prepare import prepare
from mvlib.experiment.profiles import Profile
from mvlib.experiment.runs import RunDir
from mvlib.study import plots
from mvlib.study.plots import BELOW
from mvlib.study.protocol import config

DYNAMICS_LRS = (1e-5, 1e-4, 1e-3)  # Figures 4-5, 6 and 7

CONDITIONS = {"MLO shortcut on (default)": {},
              "control: shortcut off": {"mlo": {"shortcut_strength": 0.0}}}


# Appendix A: LCA runs train on shrunken epochs (10% of the positive and of the negative
# exams of a regular epoch), for about six regular epochs' worth, with windows of 60
# iterations; the loss is measured on each shrunken epoch's own sample. Six of the paper's
# 100 epochs are the start of training: profiles that train fewer epochs record the first
# half of theirs (at least one).
LCA_FRACTION, LCA_REGULAR_EPOCHS, LCA_WINDOW = 0.1, 6, 60

LCA_WINDOWS_PER_EPOCH = 3  # at least this many windows per shrunken epoch


def lca_window(iterations: int) -> int:
    """k: the paper's 60 iterations, shortened on small profiles so that a shrunken epoch of
    `iterations` holds at least LCA_WINDOWS_PER_EPOCH windows (the paper's 970 exams make
    about 485 iterations: 9 windows, the last one shorter)."""
    return max(1, min(LCA_WINDOW, iterations // LCA_WINDOWS_PER_EPOCH))


def lca_setup(prof: Profile) -> dict:
    """The LCA runs' config fields at this profile: shrunken epochs, their number (the
    paper's share of training, six regular epochs' worth of 100, and at least one regular
    epoch's worth), the window k, and one validation per regular epoch's worth."""
    data = prepare(prof.dataset, prof.name, prof.data_root, progress=False, **prof.data_knobs)
    batches = len(train_loader(data, 0, channels=1, fraction=LCA_FRACTION))
    regular = max(1, round(prof.epochs * LCA_REGULAR_EPOCHS / 100))  # the paper: 6 of 100
    per_regular = round(1 / LCA_FRACTION)
    return dict(epoch_fraction=LCA_FRACTION, epochs_override=regular * per_regular,
                lca_every=lca_window(batches), val_every=per_regular)


def dynamics_runs(prof: Profile, executor: Executor | None = None, store: Path | None = None
                  ) -> dict[str, dict[tuple[str, float], RunDir]]:
    """Joint ResNet at the paper's three learning rates on the default data, and at 1e-4 on
    the control data (no MLO shortcut), twice: `norms`, regular runs over the profile's whole
    training (gradient norms, Figures 4a, 6a, 7a), and `lca`, the Appendix A runs on shrunken
    epochs with online LCA (Figures 4b-7b). Returns {"norms": {(condition, lr): run},
    "lca": {...}}."""
    default, control = CONDITIONS
    wanted = [(default, lr) for lr in DYNAMICS_LRS]
    if prof.dataset == "synthetic":  # the control switches a generator knob off
        wanted.append((control, 1e-4))
    setup = lca_setup(prof)
    cfgs = {"norms": {(c, lr): config(prof, "joint", lr, 0, "dynamics", knobs=CONDITIONS[c])
                      for c, lr in wanted},
            "lca": {(c, lr): config(prof, "joint", lr, 0, "dynamics", knobs=CONDITIONS[c],
                                    **setup) for c, lr in wanted}}
    runs = sweep([c for part in cfgs.values() for c in part.values()],
                 executor or default_executor(prof), store)
    by_cfg = {r.cfg.digest(): r for r in runs}
    return {kind: {key: by_cfg[c.digest()] for key, c in part.items()}
            for kind, part in cfgs.items()}


def dynamics_summary(runs: dict[str, dict[tuple[str, float], RunDir]]) -> pd.DataFrame:
    """Per condition and learning rate: how often and by how much MLO's gradient norm exceeds
    CC's over a whole regular run, each column's share of the loss reduction allocated by
    LCA in the shrunken-epoch run, the quadrature's accuracy and cost, and what RK4 alone
    (no refinement) would have allocated."""
    rows = []
    for key, lca_run in runs["lca"].items():
        norm_run = runs["norms"][key]
        g, w = norm_run.dynamics("grad_norms"), lca_run.dynamics("lca")
        if g.empty or w.empty:  # e.g. diverged in its first epoch
            for run in (norm_run, lca_run):
                warnings.warn(f"{run.path}: state {run.state!r}; the pair is left "
                              "out of the summary", stacklevel=2)
            continue
        cond, lr = key
        rows.append({"condition": cond, "lr": lr,
                     "iterations with |g_MLO| > |g_CC|": (g.mlo > g.cc).mean(),
                     "median |g_MLO| / |g_CC|": (g.mlo / g.cc).median(),
                     "LCA CC": w.cc.sum(), "LCA MLO": w.mlo.sum(), "LCA shared": w.shared.sum(),
                     "MLO share of the reduction": mlo_share(w),
                     "max |error|": w.error.abs().max(),
                     "mean Simpson sub-intervals": w.splits.mean(),
                     # What the windows would say without the refinement (RK4, 2 sub-intervals).
                     "MLO share, RK4 only": mlo_share(w, RK4),
                     "max |error|, RK4 only": (w[f"{RK4}error"].abs().max(skipna=False)
                                               if f"{RK4}error" in w else float("nan")),
                     "val AUC (best, regular run)": norm_run.status().get("best_val_auc"),
                     "val AUC (best, LCA run)": lca_run.status().get("best_val_auc")})
    return pd.DataFrame(rows).set_index(["condition", "lr"])


def _share(x: float) -> str:
    return f"{x:.0%}"


def dynamics_markdown(summary: pd.DataFrame, testbed_seeds: int) -> str:
    """Notebook 02's reading of its single runs (`summary` of `dynamics_summary`): per
    condition and rate, the gradient-norm lead, LCA's shares and error; the control beside
    the planted cue at 1e-4 where both ran."""
    planted, control = CONDITIONS
    lines = []
    for (cond, lr), r in summary.iterrows():
        lines.append(
            f"* **{cond}, lr {lr:g}.** MLO's gradient norm exceeds CC's in "
            f"{_share(r['iterations with |g_MLO| > |g_CC|'])} of the regular run's iterations "
            f"(median ratio {r['median |g_MLO| / |g_CC|']:.2f}); MLO takes "
            f"{_share(r['MLO share of the reduction'])} of the loss reduction LCA allocates "
            f"(CC {r['LCA CC']:.3f}, MLO {r['LCA MLO']:.3f}, shared {r['LCA shared']:.3f}); the "
            f"largest window error is {r['max |error|']:.4f} with "
            f"{r['mean Simpson sub-intervals']:.1f} Simpson sub-intervals per window on average "
            f"(RK4 alone: error {r['max |error|, RK4 only']:.4f}, MLO share "
            f"{_share(r['MLO share, RK4 only'])}).")
    lines.append("* **The paper's pattern** (MLO ahead in both instruments) is judged across "
                 "seeds in the next section, not from these single runs.")
    if (control, 1e-4) in summary.index:
        on, off = summary.loc[(planted, 1e-4)], summary.loc[(control, 1e-4)]
        lines.append(
            f"* **The control (no MLO shortcut, lr 1e-4):** MLO's gradient norm leads in "
            f"{_share(off['iterations with |g_MLO| > |g_CC|'])} of iterations against "
            f"{_share(on['iterations with |g_MLO| > |g_CC|'])} with the shortcut; MLO's LCA "
            f"share is {_share(off['MLO share of the reduction'])} against "
            f"{_share(on['MLO share of the reduction'])}. One run per condition here; the "
            f"testbed below repeats both with {testbed_seeds} seeds and judges each difference "
            f"by its interval.")
    return "\n".join(lines)


def dynamics_figure(norm_run: RunDir, lca_run: RunDir, title: str, smooth: int = 10,
                    share_claim: float = paper.FIG4_MLO_LCA_SHARE) -> plt.Figure:
    """Figure 4 / 6 / 7: (a) gradient norms of the CC and MLO groups per iteration over a
    whole regular run (running mean over `smooth` iterations), (b) cumulative LCA of each
    group in the shrunken-epoch run, against training done in regular epochs' worth,
    (c, ours) view reliance of the regular run: validation AUC full / CC only / MLO only
    after each epoch, and (d) MLO's share of the loss reduction allocated so far
    (`dynamics.mlo_share` over the windows up to each), against the paper's claim that it is
    over `share_claim` in the first 5 epochs."""
    g, w = norm_run.dynamics("grad_norms"), lca_run.dynamics("lca")
    if g.empty or w.empty:  # a run that diverged before its first record
        fig, ax = plt.subplots(figsize=(6, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, f"{title}: no dynamics recorded (states {norm_run.state}"
                f", {lca_run.state})", ha="center", va="center")
        return fig
    per_epoch = g.groupby("epoch").iteration.max() + 1
    x_norms = g.epoch + g.iteration / g.epoch.map(per_epoch)
    lca_per_epoch = w.groupby("epoch").iteration.transform("max") + 1
    x_lca = (w.epoch + (w.iteration + 1) / lca_per_epoch) * lca_run.cfg.epoch_fraction
    fig, ((a, b), (c, d)) = plt.subplots(2, 2, figsize=(12, 7.4))
    for col, color in (("cc", "tab:blue"), ("mlo", "tab:orange")):
        a.plot(x_norms, g[col].rolling(smooth, min_periods=1).mean().to_numpy(), color=color,
               label=col.upper())
        b.plot(x_lca, w[col].cumsum(), color=color, label=col.upper())
    b.plot(x_lca, w["shared"].cumsum(), color="gray", label="shared")
    a.set(xlabel="epoch", ylabel="gradient norm", title=f"(a) gradient norms, {title}")
    b.set(xlabel="training (regular epochs' worth)", ylabel="cumulative LCA (loss change)",
          title="(b) loss change allocated")
    plots.reliance_panel(c, norm_run, "(c) view reliance (ours)")
    share = pd.Series([dynamics.mlo_share(w.iloc[:i + 1]) for i in range(len(w))],
                      index=w.index)  # over the windows so far; NaN while no loss reduction
    final = share.iloc[-1]
    d.plot(x_lca, 100 * share, color="tab:orange",
           label="MLO share of the reduction so far (final "
                 + (f"{100 * final:.0f}%)" if np.isfinite(final) else "undefined)"))
    d.axhline(100 * share_claim, color="black", ls="--", lw=1,
              label=f"paper: MLO over {100 * share_claim:.0f}% in the first 5 epochs")
    d.set(xlabel="training (regular epochs' worth)", ylabel="MLO share of loss reduction (%)",
          title="(d) MLO's share of the loss reduction (LCA)")
    for ax in (a, b, c, d):
        ax.grid(alpha=0.3)
        ax.legend(ncol=4, **BELOW)
    fig.tight_layout()
    return fig


def lca_error_figure(run: RunDir, title: str, tol: float | None = None) -> plt.Figure:
    """Figure 5: actual loss change per LCA window and the allocated change (top), and their
    difference on its own axis (bottom; it is invisible at the loss's scale) against the
    tolerance the adaptive Simpson rule aims for (`tol`, default `dynamics.lca`'s)."""
    tol = dynamics.LCA_TOL if tol is None else tol
    w = run.dynamics("lca")
    fig, (ax, err) = plt.subplots(2, 1, figsize=(6, 4.6), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 2]})
    x = np.arange(1, len(w) + 1)
    ax.plot(x, w.actual, label="actual change", color="black")
    ax.plot(x, w.allocated, "--", label="allocated (sum of LCA)", color="tab:green")
    ax.set(ylabel="loss change", title=title)
    err.bar(x, w.error, color="tab:red", alpha=0.6, label="error = actual - allocated")
    err.axhline(0, color="gray", lw=0.8)
    worst = float(w.error.abs().max()) if len(w) else 0.0
    if worst > 0:  # the error's own scale; the tolerance lines show only when within it
        err.set_ylim(-1.2 * worst, 1.2 * worst)
    err.autoscale(False, axis="y")
    for sign in (-1, 1):
        err.axhline(sign * tol, color="gray", ls=":", lw=1,
                    label=f"|error| = {tol:g} (target)" if sign > 0 else None)
    err.set_title(f"error: max |error| {worst:.2g} (the adaptive rule's target: <= {tol:g})",
                  fontsize=9)
    err.set(xlabel="LCA window", ylabel="error (loss change)")
    for a in (ax, err):
        a.grid(alpha=0.3)
        a.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.tight_layout()
    return fig
