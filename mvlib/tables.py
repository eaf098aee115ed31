"""Every table of the paper (1-5) from the run store, ours beside the paper's, and a
verdict per claim computed from the numbers (notebook 07).

A claim "A beats B" holds when A's mean test AUC exceeds B's by more than the standard
error of the difference, sqrt(s_A^2/n_A + s_B^2/n_B); it does not hold here when B's mean
exceeds A's by more than that; otherwise the two are not comparable at this budget (the
difference is within noise), as they also are when a group has fewer than 2 finished runs.
A claim "A does not beat B" (the paper found A no better) is judged the same way in mirror:
it holds when A's mean is below B's by more than the standard error, does not hold when A
beats B by more than that, and is not comparable in between.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mvlib import experiments, paper, paths, plots, regularized
from mvlib.atomic import write_atomic
from mvlib.profiles import Profile
from mvlib.sweep import Executor


def all_tables(prof: Profile, executor: Executor | None = None, store: Path | None = None
               ) -> dict[str, pd.DataFrame]:
    """Tables 1-5 (training whatever the store does not hold yet)."""
    t1 = experiments.table1(prof, executor, store)[0]
    gb = regularized.gradient_blending(prof, executor, store)
    return {"Table 1": t1, "Table 2": regularized.table2(prof, executor, store, blended=gb),
            "Table 3": regularized.table3(prof, executor, store),
            "Table 4": regularized.table4(gb["weights"]), "Table 5": gb["ablation"]}


@dataclass(frozen=True)
class Claim:
    text: str
    a: tuple[str, str]  # (table, row)
    b: tuple[str, str]
    beats: bool = True  # "A beats B" (True) or "A does not beat B" (False)


CLAIMS = (
    Claim("uni-view CC beats uni-view MLO", ("Table 1", "uni-view CC"),
          ("Table 1", "uni-view MLO")),
    Claim("Split ResNet is worse than uni-view CC", ("Table 1", "uni-view CC"),
          ("Table 1", "Split ResNet")),
    Claim("Joint ResNet beats uni-view CC", ("Table 1", "Joint ResNet"),
          ("Table 1", "uni-view CC")),
    Claim("Shared ResNet beats Joint ResNet", ("Table 1", "Shared ResNet"),
          ("Table 1", "Joint ResNet")),
    Claim("Pretraining hurts Joint ResNet", ("Table 2", "Joint ResNet"),
          ("Table 2", "+ Pretraining")),
    Claim("Split Learning Rates do not improve Joint ResNet",
          ("Table 2", "+ Split Learning Rates"), ("Table 2", "Joint ResNet"), beats=False),
    Claim("Gradient Blending does not improve Joint ResNet", ("Table 2", "+ Gradient Blending"),
          ("Table 2", "Joint ResNet"), beats=False),
    Claim("Modality Dropout improves Joint ResNet", ("Table 2", "+ Modality Dropout"),
          ("Table 2", "Joint ResNet")),
    Claim("without heatmaps, Modality Dropout improves Joint ResNet",
          ("Table 3", "+ Modality Dropout"), ("Table 3", "Joint ResNet")),
    Claim("without heatmaps, Shared ResNet beats Joint ResNet", ("Table 3", "Shared ResNet"),
          ("Table 3", "Joint ResNet")),
    Claim("heatmaps help Joint ResNet", ("Table 1", "Joint ResNet"), ("Table 3", "Joint ResNet")),
)


def _stats(tables: dict[str, pd.DataFrame], ref: tuple[str, str]
           ) -> tuple[float, float, int | None]:
    """(mean, std, finished runs) of a table row; runs is None when the row was not run."""
    table, row = ref
    t = tables.get(table)
    if t is None or row not in t.index:
        return math.nan, math.nan, None
    if pd.isna(t.loc[row, "auc_mean"]):
        return math.nan, math.nan, 0
    n = int(str(t.loc[row, "runs done"]).split("/")[0])
    return float(t.loc[row, "auc_mean"]), float(t.loc[row, "auc_std"]), n


def _paper_mean(table: str, row: str) -> float:
    source = {"Table 1": paper.TABLE1, "Table 2": paper.TABLE2, "Table 3": paper.TABLE3}[table]
    return source[row][0]


def verdict(claim: Claim, tables: dict[str, pd.DataFrame]) -> dict:
    """The claim, the paper's and our means, and the computed verdict with its reason."""
    (ma, sa, na), (mb, sb, nb) = _stats(tables, claim.a), _stats(tables, claim.b)
    row = {"claim": claim.text,
           "paper (A vs B)": f"{_paper_mean(*claim.a):.3f} vs {_paper_mean(*claim.b):.3f}"}
    if missing := [" / ".join(ref) for ref, n in ((claim.a, na), (claim.b, nb)) if n is None]:
        return {**row, "ours (A vs B)": "-", "verdict": "not comparable",
                "why": f"not run on this data set: {', '.join(missing)}"}
    if min(na, nb) < 2:
        return {**row, "ours (A vs B)": "-", "verdict": "not comparable",
                "why": "fewer than 2 finished runs in a group"}
    diff, se = ma - mb, math.sqrt(sa ** 2 / na + sb ** 2 / nb)
    row["ours (A vs B)"] = f"{ma:.3f} vs {mb:.3f}"
    if abs(diff) <= se:
        v = "not comparable"
    elif (diff > se) == claim.beats:
        v = "holds"
    else:
        v = "does not hold here"
    why = f"difference {diff:+.3f}, standard error {se:.3f}"
    if v == "not comparable":
        why += " (within noise)"
    return {**row, "verdict": v, "why": why}


def verdicts(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per claim of the paper (CLAIMS), with the verdict on our numbers, plus
    Appendix C's remark that AUC-based weights are more volatile than loss-based ones."""
    rows = [verdict(c, tables) for c in CLAIMS]
    rows.append(weight_volatility(tables["Table 4"]))
    return pd.DataFrame(rows).set_index("claim")


def weight_volatility(table4: pd.DataFrame) -> dict:
    """How far each measure's weights move between the whole-run and late windows."""

    def spread(values: dict) -> float:
        return max(abs(a - b) for a, b in zip(*values.values(), strict=True))

    ours = {}
    for measure in ("loss", "auc"):
        t = table4.loc[measure][["w_joint", "w_cc", "w_mlo"]]
        ours[measure] = spread({w: t.loc[w].tolist() for w in t.index})
    ref = {m: spread({w: paper.TABLE4[(m, w)] for w in ("[0, 100]", "[90, 100]")})
           for m in ("loss", "auc")}
    row = {"claim": "AUC-based blending weights are more volatile than loss-based ones",
           "paper (A vs B)": f"{ref['auc']:.3f} vs {ref['loss']:.3f}"}
    if any(math.isnan(v) for v in ours.values()):
        return {**row, "ours (A vs B)": "-", "verdict": "not comparable",
                "why": "a weight estimate is undefined"}
    v = "holds" if ours["auc"] > ours["loss"] else "does not hold here"
    return {**row, "ours (A vs B)": f"{ours['auc']:.3f} vs {ours['loss']:.3f}", "verdict": v,
            "why": "largest change of a weight between the windows [0, 100] and [90, 100]"}


def summary_markdown(table: pd.DataFrame, per_seed: pd.DataFrame | None = None) -> str:
    """One Markdown line per group of an `experiments.summary` table: our test AUC (mean ±
    std over seeds, 3x ensemble, runs done, and with `per_seed` (`experiments.final_runs`)
    each seed's) beside the paper's. What the notebooks print under their tables, so that a
    re-run anywhere rewrites it."""
    lines = []
    for group, r in table.iterrows():
        ours = ("not run" if r["AUC (ours)"] == "-" else
                f"{r['AUC (ours)']} (3x ensemble {r['3x ensemble (ours)']:.3f}, "
                f"{r['runs done']} runs done)")
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


def verdicts_markdown(verdicts: pd.DataFrame) -> str:
    """The verdict table as Markdown: counts, then the claims under each verdict with our
    numbers and the reason."""
    counts = verdicts.verdict.value_counts()
    lines = [f"Of the {len(verdicts)} claims: "
             + ", ".join(f"{n} {v}" for v, n in counts.items()) + "."]
    for v in counts.index:
        part = verdicts[verdicts.verdict == v]
        lines.append(f"* **{v}:** " + "; ".join(
            f"{claim} ({r['ours (A vs B)']}; {r.why})" for claim, r in part.iterrows()) + ".")
    return "\n".join(lines)


def write(tables: dict[str, pd.DataFrame], prof: Profile) -> list[Path]:
    """Each table as CSV and as a rendered PNG in the profile's figures folder."""
    out = []
    for name, table in tables.items():
        stem = name.lower().replace(" ", "")
        csv = paths.figures(prof.tag) / f"{stem}.csv"
        write_atomic(csv, lambda p, t=table: t.to_csv(p))
        shown = table.drop(columns=[c for c in ("auc_mean", "auc_std") if c in table])
        title = f"{name}: ours ({prof.dataset} data, {prof.name} profile) beside the paper's"
        plots.savefig(plots.render_table(shown, title), stem, prof)
        out += [csv, csv.with_suffix(".png")]
    return out
