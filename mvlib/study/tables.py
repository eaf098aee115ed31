"""Every table of the paper (1-5) from the run store, ours beside the paper's, and Table 6's
view-reliance readings (notebook 07); each claim's verdict comes from mvlib.study.claims.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mvlib.core import paper, paths
from mvlib.core.atomic import write_atomic
from mvlib.executors.sweep import Executor
from mvlib.experiment.profiles import Profile
from mvlib.instruments import stats
from mvlib.instruments.reliance import POOLED, table6_display
from mvlib.study import (
    gradient_blending,
    model_variants,
    plots,
    protocol,
    regularizers,
    without_heatmaps,
)


def all_tables(prof: Profile, executor: Executor | None = None, store: Path | None = None
               ) -> dict[str, pd.DataFrame]:
    """Tables 1-5 (training whatever the store does not hold yet)."""
    t1 = model_variants.table1(prof, executor, store)[0]
    gb = gradient_blending.gradient_blending(prof, executor, store)
    return {"Table 1": t1, "Table 2": regularizers.table2(prof, executor, store, blended=gb),
            "Table 3": without_heatmaps.table3(prof, executor, store),
            "Table 4": gradient_blending.table4(gb["weights"]), "Table 5": gb["ablation"]}


def summary_markdown(table: pd.DataFrame, per_seed: pd.DataFrame | None = None) -> str:
    """One Markdown line per group of a `protocol.summary` table: our test AUC (mean ±
    std over seeds, 3x ensemble, runs done, and with `per_seed` (`protocol.final_runs`)
    each seed's) beside the paper's. What the notebooks print under their tables, so that a
    re-run anywhere rewrites it."""
    lines = []
    for group, r in table.iterrows():
        ours = ("not run" if r["AUC (ours)"] == "-" else
                f"{r['AUC (ours)']} (mean over seeds, 95% interval; std {r['std (ours)']}; "
                f"3x ensemble {r['3x ensemble (ours)']}; {r['runs done']} runs done)")
        if per_seed is not None and group in per_seed.index.get_level_values(0):
            seeds = per_seed.loc[group]
            ours += "; per seed " + ", ".join(
                f"{a:.3f}" if a == a else s for a, s in zip(seeds.test_auc, seeds.state,
                                                            strict=True))
        paper_auc = r["AUC (paper)"]
        ref = "none" if paper_auc == "-" else (f"{paper_auc} (3x ensemble "
                                               f"{r['3x ensemble (paper)']:.3f})")
        lines.append(f"* **{group}**: ours {ours}; the paper {ref}.")
    return "\n".join(lines)


def chance_markdown(table: pd.DataFrame) -> str:
    """Whether each group of a `protocol.summary` table learned anything: its 95%
    interval over seeds and test cases lies above 0.5 (above chance), below it, or straddles it."""
    lines = []
    for group, r in table.iterrows():
        lo, hi = r.get("auc_lo", float("nan")), r.get("auc_hi", float("nan"))
        if not (lo == lo and hi == hi):
            lines.append(f"* **{group}**: no interval (not run, or a split too small).")
            continue
        where = ("above chance" if lo > 0.5 else "below chance" if hi < 0.5
                 else "not distinguishable from chance at this budget")
        lines.append(f"* **{group}**: {stats.interval_cell(r['auc_mean'], lo, hi)}: {where}.")
    return "\n".join(lines)


def width_table(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Where each tested comparison's interval width comes from: the seeds' and the test
    cases' shares of the variance of A - B, the difference detectable with 80% power, and
    the correlation of the two groups' per-seed AUCs matched by seed value (what pairing
    seeds would use; near 0 or negative, pairing would narrow nothing)."""
    t = verdicts[verdicts.get("seed_share", pd.Series(dtype=float)).notna()]
    return pd.DataFrame({"seeds' share": t.seed_share, "test cases' share": 1 - t.seed_share,
                         "detectable (80% power)": t.mdd,
                         "per-seed AUC correlation": t.seed_corr}, index=t.index)


def width_markdown(width: pd.DataFrame) -> str:
    """What `width_table` says about spending the budget, in words computed from it."""
    if width.empty:
        return "No comparison was tested: nothing to split."
    share = width["seeds' share"]
    corr = width["per-seed AUC correlation"].dropna()
    mostly_seeds = int((share > 0.5).sum())
    text = (f"Over the {len(width)} tested comparisons the seed-to-seed part is "
            f"{share.min():.0%}-{share.max():.0%} of the variance of the difference and the "
            f"test cases' part {1 - share.max():.0%}-{1 - share.min():.0%}; in {mostly_seeds} "
            f"of them the seeds' part is the larger, so "
            + ("more seeds, not more test cases, narrow these intervals most"
               if mostly_seeds > len(width) / 2 else
               "more test cases narrow these intervals at least as much as more seeds")
            + f". The smallest difference detectable with 80% power is "
            f"{width['detectable (80% power)'].min():.3f}-"
            f"{width['detectable (80% power)'].max():.3f} AUC.")
    if len(corr):
        text += (f" Matched by seed value, the two groups' per-seed AUCs correlate from "
                 f"{corr.min():+.2f} to {corr.max():+.2f}: different models given the same "
                 "seed integer share no initial weights, so seeds are not paired.")
    return text


RELIANCE_ORDER = ("uni-view CC", "uni-view MLO", "Split ResNet", "Joint ResNet", "Shared ResNet",
                  "+ Pretraining", "+ Pretraining (whole model)", "+ Split Learning Rates",
                  "+ Gradient Blending", "+ Modality Dropout")


def reliance_groups(prof: Profile, executor: Executor | None = None,
                    store: Path | None = None) -> dict[str, list]:
    """The final runs of Tables 1 and 2 (training what the store lacks), in Table 6's order."""
    final = {**model_variants.table1(prof, executor, store)[2],
             **protocol.regularizers(prof, executor, store)[1],
             **gradient_blending.gradient_blending(prof, executor, store)["final"]}
    return {g: final[g] for g in RELIANCE_ORDER if g in final}


def reliance_claims_markdown(claims: pd.DataFrame) -> str:
    """The view-reliance claims (`testbed.reliance_claims`) as Markdown lines: verdict, the
    reading it rests on and why that reading (validated on the testbed, or not)."""
    lines = []
    for claim, r in claims.iterrows():
        line = f"* **{claim}:** {r.verdict}"
        if r["diff"] == r["diff"]:
            line += (f" (difference {r['diff']:+.3f}, 95% interval [{r.lo:+.3f}, {r.hi:+.3f}], "
                     f"{stats.p_text(r.p)}; reading: {r.reading})")
        elif isinstance(r.get("why"), str):
            line += f" ({r.why})"
        if isinstance(r.get("validation"), str) and r.validation:
            line += f"; {r.validation}"
        lines.append(line + ".")
    return "\n".join(lines) if lines else "No view-reliance claim could be tested here."


def hypothesis_markdown(table6: pd.DataFrame, correlation: pd.DataFrame,
                        groups: dict[str, list], validated: tuple[str | None, str]) -> str:
    """One paragraph on what Table 6 says about the paper's central hypothesis (Joint ResNet
    leans on MLO, and leaning on MLO costs generalisation) on this data, from Table 6, the
    rank correlation of test AUC with dependence across runs and Split Learning Rates' winning
    rates."""
    reading, why = validated
    used = reading or "s_mlo (train)"
    parts = []
    if "Joint ResNet" in table6.index and used in table6:
        j = table6.loc["Joint ResNet"]
        parts.append(f"Joint ResNet's decision moves with MLO by {used} "
                     f"{stats.interval_cell(j[used], j[used + ' lo'], j[used + ' hi'])} "
                     f"(one half: both views alike)" + ("" if reading else
                                                        f", a reading not validated ({why})"))
        others = table6.drop(index="Joint ResNet")
        lower = [g for g, r in others.iterrows() if r[used + " hi"] < j[used + " lo"]]
        higher = [g for g, r in others.iterrows() if r[used + " lo"] > j[used + " hi"]]
        parts.append("groups whose intervals lie below Joint ResNet's: "
                     + (", ".join(lower) or "none") + "; above it: "
                     + (", ".join(higher) or "none"))
    if POOLED in correlation.index:
        c = correlation.loc[POOLED]
        sign = ("negative, as the hypothesis predicts" if c.hi < 0 else
                "positive, against the hypothesis" if c.lo > 0 else
                "not distinguishable from 0 at this budget")
        parts.append(f"across the {int(c.n)} two-view runs the rank correlation of test AUC with "
                     f"{used} is {stats.interval_cell(c.rho, c.lo, c.hi)}: {sign} (pooled "
                     "runs mix groups that differ in more than reliance)")
    slr = groups.get("+ Split Learning Rates")
    if slr and slr[0].cfg.group_lr and "mlo_only (train)" in table6:
        rates = slr[0].cfg.group_lr
        ranked = table6["mlo_only (train)"].sort_values()
        place = list(ranked.index).index("+ Split Learning Rates") + 1 \
            if "+ Split Learning Rates" in ranked.index else None
        text = (f"Split Learning Rates' winning setting trained MLO "
                f"{rates['cc'] / rates['mlo']:.3g} times as slowly as CC "
                f"(η_MLO {rates['mlo']:.2g}, η_CC {rates['cc']:.2g})")
        if place:
            text += (f", and its MLO-only training-split AUC, "
                     f"{ranked['+ Split Learning Rates']:.3f}, ranks {place} of {len(ranked)} "
                     "groups from the lowest: slowing a view down is one way to keep its "
                     "shortcut out")
        parts.append(text)
    if not parts:
        return "Table 6 has no Joint ResNet row here: nothing to say about the hypothesis."
    return ("**What Table 6 says about the paper's hypothesis on these data.** "
            + "; ".join(parts) + ".")


def write_table6(table6: pd.DataFrame, prof: Profile) -> list[Path]:
    """Table 6 as CSV (values and bounds as columns) and as a rendered PNG."""
    csv = paths.figures(prof.tag) / "table6.csv"
    write_atomic(csv, lambda p: table6.to_csv(p))
    title = f"Table 6 (ours): view reliance ({prof.dataset} data, {prof.name} profile)"
    plots.savefig(plots.render_table(table6_display(table6), title), "table6", prof, close=True)
    return [csv, csv.with_suffix(".png")]


def write(tables: dict[str, pd.DataFrame], prof: Profile) -> list[Path]:
    """Each table as CSV and as a rendered PNG in the profile's figures folder."""
    out = []
    for name, table in tables.items():
        stem = name.lower().replace(" ", "")
        csv = paths.figures(prof.tag) / f"{stem}.csv"
        write_atomic(csv, lambda p, t=table: t.to_csv(p))
        shown = protocol.shown(table)
        title = f"{name}: ours ({prof.dataset} data, {prof.name} profile) beside the paper's"
        plots.savefig(plots.render_table(shown, title), stem, prof, close=True)
        out += [csv, csv.with_suffix(".png")]
    return out


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
