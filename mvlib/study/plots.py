"""Figures shared by the notebooks."""

from __future__ import annotations

import numbers

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.text import Annotation
from matplotlib.ticker import MaxNLocator

from mvlib.core import paper, paths
from mvlib.core.atomic import write_atomic
from mvlib.data.store import BreastDataset
from mvlib.engine import dynamics
from mvlib.experiment.profiles import Profile
from mvlib.experiment.runs import RunDir
from mvlib.instruments.reliance import training_curve

# Figure 3's best test AUC per view (Section 5), drawn on the uni-view learning curves.
UNIVIEW_TEST_AUC = {"CC": paper.TABLE1["uni-view CC"][0], "MLO": paper.TABLE1["uni-view MLO"][0]}
# Chance level of the training loss, the sum of two binary cross-entropies (malignant and
# benign; mvlib.models.heads.loss_fn) at p = 0.5: 2 ln 2.
CHANCE_LOSS = 2 * np.log(2)
# Where a legend goes so that it hides nothing: under its axes (below the x label).
BELOW = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.2), "fontsize": 8, "frameon": False}


def table_number(x: float) -> str:
    """A number as the notebooks' tables show it: three decimals (three significant digits
    below 0.001, where p-values live), whole numbers as such, missing values as a dash."""
    if x != x:
        return "–"
    if float(x).is_integer() and abs(x) < 1e6:
        return str(int(x))
    return f"{x:.3g}" if abs(x) < 1e-3 else f"{x:.3f}"


def _table_html(df: pd.DataFrame) -> str:
    return df.to_html(na_rep="–", float_format=table_number, classes="dataframe")


def notebook_display() -> None:
    """How the notebooks show tables: every cell whole (no "..."), every column, numbers by
    `table_number`; values are kept exact, only their display is rounded."""
    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.max_columns", None)
    pd.set_option("display.width", 200)
    pd.set_option("display.float_format", table_number)
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: the options above are all there is
        return
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["text/html"].for_type(pd.DataFrame, _table_html)


def savefig(fig: plt.Figure, name: str, prof: Profile, close: bool = False) -> None:
    """Write `name`.png into the profile's figures folder (figures/ for `laptop` on the
    synthetic data; elsewhere in the store for other profiles and data sets), atomically.
    `close`: not shown in the notebook (a table's image, whose notebook shows the table)."""
    write_atomic(paths.figures(prof.tag) / f"{name}.png",
                 lambda p: fig.savefig(p, format="png", dpi=110, bbox_inches="tight"))
    if close:
        plt.close(fig)


def show_breasts(data: BreastDataset, indices: list[int], titles: list[str]) -> plt.Figure:
    """One row per breast: CC image and its benign/malignant heatmaps, then the same for MLO."""
    cols = [(v, c) for v in ("cc", "mlo") for c in range(data.cc.shape[1])]
    names = {0: "image", 1: "benign heatmap", 2: "malignant heatmap"}
    fig, axes = plt.subplots(len(indices), len(cols), figsize=(2.0 * len(cols), 2.6 * len(indices)),
                             squeeze=False)
    for r, (i, title) in enumerate(zip(indices, titles, strict=True)):
        for c, (view, ch) in enumerate(cols):
            arr = np.asarray(getattr(data, view)[i, ch], dtype=np.float32)
            ax = axes[r, c]
            ax.imshow(arr, cmap="gray" if ch == 0 else "magma", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{view.upper()} {names[ch]}", fontsize=8)
            if c == 0:
                ax.set_ylabel(title, fontsize=9)
    fig.tight_layout()
    return fig


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
    curve = training_curve(norm_run)
    for name, label, color, style in (("full", "full", "black", "-"),
                                      ("cc_only", "CC only", "tab:blue", "--"),
                                      ("mlo_only", "MLO only", "tab:orange", "--")):
        c.plot(curve.epoch + 1, curve[name], style, color=color, marker="o", label=label)
    c.axhline(0.5, color="gray", lw=0.8, label="chance (AUC 0.5)")
    c.set(xlabel="epoch", ylabel="validation AUC", title="(c) view reliance (ours)")
    c.xaxis.set_major_locator(MaxNLocator(integer=True))
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


def blending_curves(runs: dict[str, RunDir]) -> plt.Figure:
    """The curves Gradient Blending's weights come from: train and validation loss and
    malignant AUC per epoch of the CC-only, MLO-only and joint models. The training curve is
    the checkpoint's evaluation of the training split (as the estimate uses) when the run has
    one, else the running training loss. The loss sums two cross-entropies (malignant and
    benign), so chance (p = 0.5 for both) is `CHANCE_LOSS` = 2 ln 2, drawn as a thin line."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    colors = {"cc": "tab:blue", "mlo": "tab:orange", "joint": "tab:green"}
    for name, run in runs.items():
        m = run.checkpoints()  # from the untrained model (epoch 0) where it was evaluated
        train = "train_eval" if "train_eval_loss" in m else "train"
        for ax, what in zip(axes, ("loss", "auc_malignant"), strict=True):
            ax.plot(m.epoch + 1, m[f"{train}_{what}"], ":", color=colors[name])
            ax.plot(m.epoch + 1, m[f"val_{what}"], "-", color=colors[name],
                    label=f"{name.upper()} (val solid, train dotted)")
    axes[0].axhline(CHANCE_LOSS, color="gray", lw=0.8,
                    label=f"chance: 2 ln 2 = {CHANCE_LOSS:.2f}")
    axes[1].axhline(0.5, color="gray", lw=0.8, label="chance: AUC 0.5")
    axes[0].set(xlabel="epoch", title="loss",
                ylabel=f"loss (sum of two cross-entropies;\n2 ln 2 = {CHANCE_LOSS:.2f} at chance)")
    axes[1].set(xlabel="epoch", ylabel="malignant AUC", title="AUC")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(ncol=2, **BELOW)
    fig.tight_layout()
    return fig


def _cell(value: object, decimals: int = 3) -> str:
    """One table cell as shown: a float to `decimals` decimals, keeping its trailing zeros
    (0.890, not 0.89), or to as many significant digits when it is nonzero and below
    10^-(decimals - 1) (learning rates, a weight of 3e-4: not 0.000); anything else as is."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real) \
            or isinstance(value, numbers.Integral):
        return str(value)
    v = float(value)
    if v != 0 and abs(v) < 10.0 ** -(decimals - 1):
        return f"{v:.{decimals}g}"
    return f"{v:.{decimals}f}"


def render_table(table: pd.DataFrame, title: str, decimals: int = 3) -> plt.Figure:
    """A table as an image (what notebook 07 writes into figures/ beside the CSV). Strings
    and integers are shown as they are, floats to `decimals` decimals (see `_cell`); a float
    column of whole numbers only (counts or epochs that a missing value made float) as
    integers; missing values as "-"."""
    frame = table.reset_index()
    text = frame.astype(object).where(frame.notna(), "-")
    for col in text.columns:
        floats = [v for v in text[col] if isinstance(v, float | np.floating)]
        whole = bool(floats) and all(float(v).is_integer() for v in floats) \
            and max(abs(float(v)) for v in floats) > 1  # not a 0/1 weight or share
        text[col] = [str(int(v)) if whole and isinstance(v, float | np.floating)
                     else _cell(v, decimals) for v in text[col]]
    fig, ax = plt.subplots(figsize=(min(1.0 + 1.1 * text.shape[1], 16), 0.6 + 0.3 * len(text)))
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    if text.empty:  # e.g. Table 3 on a data set without heatmaps
        ax.text(0.5, 0.5, "no rows for this data set", ha="center", va="center")
        return fig
    t = ax.table(cellText=text.values, colLabels=list(text.columns), loc="center",
                 cellLoc="center")
    t.auto_set_font_size(False)
    t.set_fontsize(8)
    t.auto_set_column_width(list(range(text.shape[1])))
    fig.tight_layout()
    return fig


def reliance_figure(table6: pd.DataFrame, paper_auc: dict[str, float] | None = None
                    ) -> plt.Figure:
    """Table 6 as a figure: per group, test AUC of the full model, CC only and MLO only, with
    their 95% intervals over seeds and breasts, and the paper's test AUC of the full model
    where it has the group (`paper_auc`, default the means of Tables 1 and 2)."""
    reference = ({g: v[0] for g, v in {**paper.TABLE1, **paper.TABLE2}.items()}
                 if paper_auc is None else paper_auc)
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(table6) + 1.2))
    y = np.arange(len(table6))
    for k, (col, color) in enumerate((("full", "black"), ("cc_only", "tab:blue"),
                                      ("mlo_only", "tab:orange"))):
        mid = table6[col].to_numpy()
        err = np.vstack([mid - table6[f"{col} lo"], table6[f"{col} hi"] - mid])
        ax.errorbar(mid, y + (k - 1) * 0.22, xerr=err, fmt="o", color=color, capsize=2,
                    label=col.replace("_", " "))
    rows = [(i, reference[g]) for i, g in enumerate(table6.index) if g in reference]
    if rows:
        ax.scatter([v for _, v in rows], [i - 0.22 for i, _ in rows], marker="D", s=36,
                   facecolor="none", edgecolor="tab:red", zorder=3,
                   label="paper: test AUC, full model (Tables 1-2)")
    ax.set_yticks(y, table6.index)
    ax.invert_yaxis()
    ax.axvline(0.5, color="gray", lw=0.8, ls="--")
    ax.set(xlabel="test AUC (mean over seeds, 95% interval)",
           title="View reliance: each view's part alone (Table 6)")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.tight_layout()
    return fig


def balance_figure(ogm_run: RunDir, rebalance_run: RunDir, smooth: int = 10) -> plt.Figure:
    """Notebook 08: what each balancing method did during a run. (a) OGM-GE: rho_cc =
    s_cc / s_mlo per iteration and the coefficient k of each view (running mean over `smooth`
    iterations; the shaded epochs are modulated). (b) Re-balancing: the speed gap d =
    log10(mu_cc / mu_mlo) after each regular step (left axis), and the share of re-balancing
    steps per epoch by the view held at its mean (stacked bars, right axis)."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 3.8))
    shares = b.twinx()
    b.set_zorder(shares.get_zorder() + 1)  # the gap's line over the bars
    b.patch.set_visible(False)
    o, r = ogm_run.dynamics("balance"), rebalance_run.dynamics("balance")
    if not o.empty:
        x = o.epoch + o.iteration / o.epoch.map(o.groupby("epoch").iteration.max() + 1)
        a.plot(x, o.rho_cc.rolling(smooth, min_periods=1).mean(), color="black",
               label="rho_cc = s_CC / s_MLO")
        for v, color in (("cc", "tab:blue"), ("mlo", "tab:orange")):
            a.plot(x, o[f"k_{v}"].rolling(smooth, min_periods=1).mean(), color=color,
                   label=f"k_{v.upper()}")
        on = o[o.modulated.astype(bool)]
        if not on.empty:
            a.axvspan(0, on.epoch.max() + 1, color="gray", alpha=0.12, label="modulated")
    a.axhline(1, color="gray", lw=0.8, ls="--")
    a.set(xlabel="epoch", ylabel="rho_CC, k (1 = unmodulated)",
          title=f"(a) OGM-GE, alpha {ogm_run.cfg.ogm_alpha:g}")
    if not r.empty:
        reg = r[~r.rebalancing.astype(bool)]
        x = reg.epoch + reg.iteration / reg.epoch.map(r.groupby("epoch").iteration.max() + 1)
        b.plot(x, reg.d, color="black", label="d = log10(mu_CC / mu_MLO) (left)")
        steps = r.groupby("epoch").size()
        bottom = pd.Series(0.0, index=steps.index)
        for v, color in (("cc", "tab:blue"), ("mlo", "tab:orange")):
            held = (r[r.held.astype(str) == v].groupby("epoch").size() / steps)
            held = held.reindex(steps.index).fillna(0)
            shares.bar(held.index + 0.5, held, bottom=bottom, width=0.8, alpha=0.35,
                       color=color, label=f"re-balancing steps, {v.upper()} held (right)")
            bottom += held
        eps = rebalance_run.cfg.rebalance["epsilon"]
        b.axhspan(-eps, eps, color="gray", alpha=0.2, label=f"|d| <= epsilon = {eps:g}")
    b.axhline(0, color="gray", lw=0.8)
    b.set(xlabel="epoch", ylabel="speed gap d = log10(mu_CC / mu_MLO)",
          title="(b) re-balancing (adapted)")
    shares.set(ylabel="share of the epoch's steps", ylim=(0, 1.05))
    handles, labels = b.get_legend_handles_labels()
    more = shares.get_legend_handles_labels()
    a.legend(ncol=2, **BELOW)
    b.legend(handles + more[0], labels + more[1], ncol=2, **BELOW)
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def method_dynamics_figure(run: RunDir, title: str, smooth: int = 10) -> plt.Figure:
    """Notebook 08, one method's seed-0 run: (a) gradient norms of the CC and MLO groups per
    iteration (running mean over `smooth`), (b) view reliance after each epoch (validation AUC
    full / CC only / MLO only); notebook 02's figure without its LCA panel."""
    g = run.dynamics("grad_norms")
    if g.empty:  # a run that diverged before its first record
        fig, ax = plt.subplots(figsize=(6, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, f"{title}: no dynamics recorded (state {run.state})",
                ha="center", va="center")
        return fig
    x = g.epoch + g.iteration / g.epoch.map(g.groupby("epoch").iteration.max() + 1)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    for col, color in (("cc", "tab:blue"), ("mlo", "tab:orange")):
        a.plot(x, g[col].rolling(smooth, min_periods=1).mean().to_numpy(), color=color,
               label=col.upper())
    a.set(xlabel="epoch", ylabel="gradient norm", title=f"(a) gradient norms, {title}")
    curve = training_curve(run)
    for name, label, color, style in (("full", "full", "black", "-"),
                                      ("cc_only", "CC only", "tab:blue", "--"),
                                      ("mlo_only", "MLO only", "tab:orange", "--")):
        b.plot(curve.epoch + 1, curve[name], style, color=color, marker="o", label=label)
    b.axhline(0.5, color="gray", lw=0.8, label="chance (AUC 0.5)")
    b.set(xlabel="epoch", ylabel="validation AUC", title="(b) view reliance (ours)")
    b.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend(ncol=4, **BELOW)
    fig.tight_layout()
    return fig


def rebalancing_share_figure(shares: pd.DataFrame, steps: int) -> plt.Figure:
    """Notebook 08: the share of re-balancing steps per epoch, one line per run (`shares`:
    epochs x runs, `balancing_methods.rebalancing_shares`), against the Q / (Q + 1) that the
    reference re-balances while the speed gap stays outside +-epsilon (Q = `steps`)."""
    fig, ax = plt.subplots(figsize=(6, 3.3))
    for col in shares.columns:
        ax.plot(shares.index + 1, shares[col], marker="o", alpha=0.7, label=col)
    ax.axhline(steps / (steps + 1), color="gray", ls="--", lw=0.8,
               label=f"Q / (Q + 1) = {steps}/{steps + 1}")
    ax.set(xlabel="epoch", ylabel="share of re-balancing steps", ylim=(-0.03, 1.03),
           title="re-balancing steps per epoch")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig


def dependence_generalisation_figure(per_run: pd.DataFrame, reading: str = "s_mlo (train)",
                                     correlation: pd.DataFrame | None = None) -> plt.Figure:
    """Each run's test AUC against its dependence `reading` (a column of
    `reliance.dependence_generalisation`), one colour per group; the hypothesis predicts a
    falling cloud. With `correlation` (`reliance.generalisation_correlation`), each group's
    Spearman rho and interval in the legend and the pooled one in the title."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    stats = correlation if correlation is not None else pd.DataFrame()
    for (group, part), color in zip(per_run.groupby("group", sort=False),
                                    plt.cm.tab10.colors * 3, strict=False):
        label = group
        if group in stats.index and stats.loc[group, "rho"] == stats.loc[group, "rho"]:
            r = stats.loc[group]
            label += f" (rho {r.rho:+.2f}, " + (
                f"[{r.lo:+.2f}, {r.hi:+.2f}])" if r.lo == r.lo else f"p = {r.p:.3f})")
        ax.scatter(part[reading], part["test AUC"], color=color, s=36, edgecolor="black",
                   lw=0.5, label=label)
    title = f"Test AUC against {reading}, one point per run"
    pooled = "two-view runs (pooled)"
    if pooled in stats.index and stats.loc[pooled, "rho"] == stats.loc[pooled, "rho"]:
        r = stats.loc[pooled]
        title += (f"\ntwo-view runs pooled: Spearman rho {r.rho:+.2f} [{r.lo:+.2f}, "
                  f"{r.hi:+.2f}], n = {int(r.n)}")
    ax.set(xlabel=reading, ylabel="test AUC (run's own)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def testbed_sensitivity_figure(table: pd.DataFrame) -> plt.Figure:
    """`testbed.sensitivity`: per instrument, planted - control (95% interval) against the
    cue's strength; a panel each, a marker red where the interval finds the cause, blue where
    it lies on the opposite side, white where it straddles 0. Lines join three or more
    strengths (through two they would draw a trend nothing measured)."""
    names = list(dict.fromkeys(table.index.get_level_values("instrument")))
    cols = 3
    rows = max(1, -(-len(names) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False)
    for ax, name in zip(axes.ravel(), names, strict=False):
        part = table.xs(name, level="instrument").sort_index()
        x, mid = part.index.to_numpy(float), part["diff"].to_numpy(float)
        lo = np.where(np.isfinite(part["lo"]), part["lo"], mid)
        hi = np.where(np.isfinite(part["hi"]), part["hi"], mid)
        ax.errorbar(x, mid, yerr=np.vstack([mid - lo, hi - mid]), color="black", capsize=3,
                    fmt="-" if len(x) >= 3 else "none", lw=1)
        verdict = part["verdict"].astype(str).to_numpy()
        ax.scatter(x, mid, s=36, zorder=3, edgecolor="black",
                   color=np.where(verdict == "found", "tab:red",
                                  np.where(verdict == "opposite", "tab:blue", "white")))
        ax.axhline(0, color="gray", lw=0.8, ls="--")
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("cue strength (0 = control)", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    axes[0, 0].set_ylabel("planted - control")
    fig.tight_layout()
    return fig
