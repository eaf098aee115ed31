"""Every table of the paper (1-5) from the run store, ours beside the paper's, and a
verdict per claim computed from the runs' test predictions (notebook 07).

Each claim compares two recipes (groups of runs, one per seed, on the same test breasts) with
`stats.compare_recipes`: the difference of their mean AUCs with a 95% interval over seeds and
test cases (Student's t with Satterthwaite's degrees of freedom: at 3-4 seeds the seeds'
spread is itself uncertain). A claim "A beats B" **holds** when that interval lies above 0,
is **contradicted** when it lies below 0 and is **inconclusive at this budget** otherwise. A
claim "A does not improve on B" (the paper found A no better) is **consistent** when the
interval's upper bound is below the equivalence margin MARGIN (0.01 AUC), **contradicted**
when its lower bound is above 0, and inconclusive otherwise. Each verdict prints the
interval, its p-value, the smallest difference this budget detects with 80% power (`mdd`,
about 2.8 standard errors) and how much of the variance is the seeds' (against the test
cases').
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

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
from mvlib.study.protocol import SYNTHETIC


def all_tables(prof: Profile, executor: Executor | None = None, store: Path | None = None
               ) -> dict[str, pd.DataFrame]:
    """Tables 1-5 (training whatever the store does not hold yet)."""
    t1 = model_variants.table1(prof, executor, store)[0]
    gb = gradient_blending.gradient_blending(prof, executor, store)
    return {"Table 1": t1, "Table 2": regularizers.table2(prof, executor, store, blended=gb),
            "Table 3": without_heatmaps.table3(prof, executor, store),
            "Table 4": gradient_blending.table4(gb["weights"]), "Table 5": gb["ablation"]}


@dataclass(frozen=True)
class Claim:
    text: str
    a: tuple[str, str]  # (table, row)
    b: tuple[str, str]
    notebook: str  # the notebook whose closing box judges it (a key of closing.NOTEBOOKS)
    beats: bool = True  # "A beats B" (True) or "A does not beat B" (False)
    note: str = ""  # what the interval covers, where that is not obvious
    sampled: bool = False  # A is the winner of sampled hyperparameter settings (Appendix B)


CLAIMS = (
    Claim("uni-view CC beats uni-view MLO", ("Table 1", "uni-view CC"),
          ("Table 1", "uni-view MLO"), "03"),
    Claim("Split ResNet is worse than uni-view CC", ("Table 1", "uni-view CC"),
          ("Table 1", "Split ResNet"), "03"),
    Claim("Joint ResNet beats uni-view CC", ("Table 1", "Joint ResNet"),
          ("Table 1", "uni-view CC"), "03"),
    Claim("Shared ResNet beats Joint ResNet", ("Table 1", "Shared ResNet"),
          ("Table 1", "Joint ResNet"), "03"),
    Claim("Pretraining hurts Joint ResNet", ("Table 2", "Joint ResNet"),
          ("Table 2", "+ Pretraining"), "04",
          note="every seed fine-tunes the same best uni-view columns (the paper's Appendix "
               "B), so the interval covers the fine-tuning seeds, not the choice of columns: "
               "see the sensitivity row"),
    Claim("Pretraining hurts Joint ResNet, each seed from columns of its own seed "
          "(sensitivity)", ("Table 2", "Joint ResNet"),
          ("Table 2", regularizers.PER_SEED_COLUMNS), "04"),
    Claim("Split Learning Rates do not improve Joint ResNet",
          ("Table 2", "+ Split Learning Rates"), ("Table 2", "Joint ResNet"), "04", beats=False,
          sampled=True),
    Claim("Gradient Blending does not improve Joint ResNet", ("Table 2", "+ Gradient Blending"),
          ("Table 2", "Joint ResNet"), "05", beats=False),
    Claim("Modality Dropout improves Joint ResNet", ("Table 2", "+ Modality Dropout"),
          ("Table 2", "Joint ResNet"), "04", sampled=True),
    Claim("without heatmaps, Modality Dropout improves Joint ResNet",
          ("Table 3", "+ Modality Dropout"), ("Table 3", "Joint ResNet"), "06"),
    Claim("without heatmaps, Shared ResNet beats Joint ResNet", ("Table 3", "Shared ResNet"),
          ("Table 3", "Joint ResNet"), "06"),
    Claim("heatmaps help Joint ResNet", ("Table 1", "Joint ResNet"), ("Table 3", "Joint ResNet"),
          "06"),
)


MARGIN = 0.01  # equivalence margin of a "does not improve" claim, in AUC
# The one rule for every claim: a recipe at chance (its test AUC interval reaches 0.5,
# `stats.at_chance`) or without finished runs makes the claims about it this.
NOT_TESTABLE = "not testable at this budget"


def _runs(tables: dict[str, pd.DataFrame], ref: tuple[str, str]) -> list[str] | None:
    """The store references of a table row's finished runs; None when the row was not run."""
    table, row = ref
    t = tables.get(table)
    if t is None or row not in t.index:
        return None
    refs = t.loc[row, "runs"]
    return [r for r in str(refs).split(";") if r] if isinstance(refs, str) else []


def _scores(refs: list[str], store: Path) -> tuple[pd.Series, list[pd.Series], list[int]]:
    """Labels, each run's test scores and each run's seed (what the comparison pairs by)."""
    preds = [pd.read_csv(store / r / "predictions.csv") for r in refs]
    seeds = [json.loads((store / r / "config.json").read_text())["seed"] for r in refs]
    return preds[0].set_index("breast_id").malignant, [
        p.set_index("breast_id").p_malignant for p in preds], seeds


def _synthetic(refs: list[str], store: Path) -> bool:
    """Whether the runs trained on the synthetic generator (the tests' bare folders, without
    a `dataset` field, count as real data)."""
    return json.loads((store / refs[0] / "config.json").read_text()).get(
        "dataset") == "synthetic"


def synthetic_outcome(verdict: str, a: str, b: str, beats: bool = True) -> str:
    """A verdict on a paper's claim as what synthetic data can say about it: the direction of
    A - B on these data, not a verdict on the paper's NYU number (the planted cue decides
    which recipe wins there by construction; `mvlib.study.mechanism` judges the mechanism)."""
    if verdict == "holds" or (verdict == "contradicted" and not beats):
        return f"{a} > {b} {SYNTHETIC}"
    if verdict == "contradicted":
        return f"{a} < {b} {SYNTHETIC}"
    if verdict == "consistent":
        return f"{a} no better than {b} {SYNTHETIC}"
    return verdict


def _paper_mean(table: str, row: str) -> str:
    """The paper's mean AUC of a table row, or '-' (our own tables, rows it did not run)."""
    source = {"Table 1": paper.TABLE1, "Table 2": paper.TABLE2, "Table 3": paper.TABLE3}
    ref = source.get(table, {}).get(row)
    return "-" if ref is None else f"{ref[0]:.3f}"


def verdict(claim: Claim, tables: dict[str, pd.DataFrame], store: Path | None = None,
            hp_samples: int | None = None) -> dict:
    """The claim, the paper's and our mean AUCs, and the verdict from the interval of A - B
    (`stats.compare_recipes`, seeds unpaired: different models share no initial weights),
    with the interval, p, the difference detectable with 80% power, the seeds' share of the
    variance and the correlation of the per-seed AUCs matched by seed value. For a claim
    about a searched regularizer, `hp_samples` (settings sampled per base rate) is named in
    `why`: the verdict is about the best of those settings only."""
    store = Path(store or paths.store())
    runs_a, runs_b = _runs(tables, claim.a), _runs(tables, claim.b)
    row = {"claim": claim.text, "notebook": claim.notebook,
           "paper (A vs B)": f"{_paper_mean(*claim.a)} vs {_paper_mean(*claim.b)}",
           "ours (A vs B)": "-", "diff": math.nan, "lo": math.nan, "hi": math.nan,
           "p": math.nan, "mdd": math.nan, "seed_share": math.nan, "seed_corr": math.nan}
    if runs_a is None and (why := _untestable(claim, tables)):
        return {**row, "verdict": NOT_TESTABLE, "why": why}
    if missing := [" / ".join(ref) for ref, r in ((claim.a, runs_a), (claim.b, runs_b))
                   if r is None]:
        return {**row, "verdict": "not tested",
                "why": f"no runs in this reproduction: {', '.join(missing)} (the notebook "
                       "that trains them says why)"}
    r = _compare(tables, claim.a, claim.b, store)
    if isinstance(r, tuple):
        return {**row, "verdict": r[0], "why": r[1]}
    row.update({"ours (A vs B)": f"{r['mean_a']:.3f} vs {r['mean_b']:.3f}", "diff": r["diff"],
                "lo": r["lo"], "hi": r["hi"], "p": r["p"], "mdd": r["mdd"],
                "seed_share": r["seed_share"], "seed_corr": r["seed_corr"]})
    if r["lo"] != r["lo"]:
        return {**row, "verdict": "not tested",
                "why": f"{r['n_a']} vs {r['n_b']} seeds: a group of one run has no seed spread to "
                       "estimate"}
    if claim.beats:
        v = ("holds" if r["lo"] > 0 else "contradicted" if r["hi"] < 0
             else "inconclusive at this budget")
    else:
        v = ("consistent" if r["hi"] < MARGIN else "contradicted" if r["lo"] > 0
             else "inconclusive at this budget")
    if _synthetic(runs_a, store):
        a, b = ((f"{claim.a[1]} ({claim.a[0]})", f"{claim.b[1]} ({claim.b[0]})")
                if claim.a[1] == claim.b[1] else (claim.a[1], claim.b[1]))
        v = synthetic_outcome(v, a, b, claim.beats)
    why = (f"A - B {r['diff']:+.3f}, 95% interval [{r['lo']:+.3f}, {r['hi']:+.3f}], "
           f"{stats.p_text(r['p'])}; detectable with 80% power: {r['mdd']:.3f}; "
           f"{r['n_a']} vs {r['n_b']} seeds, {r['seed_share']:.0%} of the variance from seed to "
           "seed")
    if claim.note:
        why += f"; {claim.note}"
    if claim.sampled and hp_samples:
        why += (f"; A is the best of {hp_samples} sampled setting{'s' * (hp_samples > 1)} per "
                "base rate (the paper: 10): a verdict about those settings, not the method's "
                "best")
    if not claim.beats and r["hi"] >= MARGIN:
        why += (f"; 'consistent' needs the upper bound below {MARGIN}: at this budget the "
                f"interval's half-width is {(r['hi'] - r['lo']) / 2:.3f}")
    return {**row, "verdict": v, "why": why}


def _untestable(claim: Claim, tables: dict[str, pd.DataFrame]) -> str:
    """Why a claim's group A trained no model because the method could not be tested ('' if
    not so): Gradient Blending without a usable weight estimate (Table 4's notes)."""
    if claim.a == ("Table 2", "+ Gradient Blending") and "Table 4" in tables:
        return gradient_blending.untestable(tables["Table 4"])
    return ""


def _compare(tables: dict[str, pd.DataFrame], a: tuple[str, str], b: tuple[str, str],
             store: Path, level: float = 0.95) -> dict | tuple[str, str]:
    """`stats.compare_recipes` of two table rows' runs at `level` (seeds unpaired), or why
    not as (verdict, why): "not tested" for a row without finished runs or where the
    comparison cannot be made, NOT_TESTABLE for a recipe at chance (`stats.at_chance`). A
    one-run group comes back as a result whose interval is NaN: the callers say so."""
    runs_a, runs_b = _runs(tables, a), _runs(tables, b)
    if not runs_a or not runs_b:
        return "not tested", f"{a[1] if not runs_a else b[1]}: no finished runs"
    (y, sa, seeds_a), (y_b, sb, seeds_b) = _scores(runs_a, store), _scores(runs_b, store)
    if not all(s.index.equals(y.index) for s in (*sa, y_b, *sb)):
        raise ValueError(f"{a[1]} vs {b[1]}: the two groups were not scored on the same breasts")
    for name, runs in ((a[1], sa), (b[1], sb)):
        if why := stats.at_chance(y.to_numpy(), [s.to_numpy() for s in runs]):
            return NOT_TESTABLE, f"{name}: {why}"
    try:
        return stats.compare_recipes(y.to_numpy(), [s.to_numpy() for s in sa],
                                     [s.to_numpy() for s in sb], level, seeds_a, seeds_b)
    except ValueError as e:
        return "not tested", str(e)


TABLE5_BASE = "equal weights"


def table5_claims(tables: dict[str, pd.DataFrame], store: Path | None = None) -> list[dict]:
    """Appendix C's two statements on Table 5, each weight set against equal weights
    (`stats.compare_recipes`, Bonferroni over the m comparisons: each interval at level
    1 - 0.05 / m, p multiplied by m). "The weightings do not differ significantly" is
    **contradicted** when some interval excludes 0, **consistent** when every one lies within
    +-MARGIN, else inconclusive; "equal weights give the best AUC" **holds** when equal weights
    lie above every other set, is **contradicted** when some set lies above them, else
    inconclusive. The row shown is the comparison nearest to deciding."""
    store = Path(store or paths.store())
    t5 = tables.get("Table 5")
    claims = ("Table 5: the weightings do not differ significantly",
              "Table 5: equal weights give the best AUC")
    empty = {"ours (A vs B)": "-", "diff": math.nan, "lo": math.nan, "hi": math.nan,
             "p": math.nan, "mdd": math.nan, "seed_share": math.nan, "seed_corr": math.nan}
    paper_best = f"{paper.TABLE5[TABLE5_BASE][1]:.3f} vs " + "/".join(
        f"{v[1]:.3f}" for k, v in paper.TABLE5.items() if k != TABLE5_BASE)
    empty |= {"notebook": "05"}
    if t5 is None or TABLE5_BASE not in t5.index:
        return [{"claim": c, "paper (A vs B)": paper_best, **empty, "verdict": "not tested",
                 "why": "no Table 5 runs"} for c in claims]
    others = [k for k in t5.index if k != TABLE5_BASE and not t5.loc[k, "note"]]
    level = 1 - 0.05 / max(1, len(others))
    results = {k: _compare(tables, ("Table 5", TABLE5_BASE), ("Table 5", k), store, level)
               for k in others}
    if why := "; ".join(r[1] for r in results.values() if isinstance(r, tuple)):
        verdict = (NOT_TESTABLE if any(r[0] == NOT_TESTABLE for r in results.values()
                                       if isinstance(r, tuple)) else "not tested")
        return [{"claim": c, "paper (A vs B)": paper_best, **empty, "verdict": verdict,
                 "why": why} for c in claims]
    if any(r["lo"] != r["lo"] for r in results.values()):
        return [{"claim": c, "paper (A vs B)": paper_best, **empty, "verdict": "not tested",
                 "why": "a weight set of one run has no seed spread to estimate"}
                for c in claims]

    def row(claim: str, k: str, verdict: str, rule: str) -> dict:
        r = results[k]
        return {"claim": claim, "notebook": "05", "paper (A vs B)": paper_best,
                "ours (A vs B)": f"{r['mean_a']:.3f} vs {r['mean_b']:.3f} ({k})",
                "diff": r["diff"], "lo": r["lo"], "hi": r["hi"],
                "p": min(1.0, r["p"] * len(results)), "mdd": r["mdd"],
                "seed_share": r["seed_share"], "seed_corr": r["seed_corr"], "verdict": verdict,
                "why": f"equal weights - {k} {r['diff']:+.3f}, {level:.1%} interval "
                       f"[{r['lo']:+.3f}, {r['hi']:+.3f}] (Bonferroni over {len(results)} "
                       f"sets), {stats.p_text(min(1.0, r['p'] * len(results)))}; {rule}"}

    widest = max(results, key=lambda k: max(abs(results[k]["lo"]), abs(results[k]["hi"])))
    differ = [k for k, r in results.items() if r["lo"] > 0 or r["hi"] < 0]
    same = ("contradicted" if differ else
            "consistent" if all(-MARGIN < r["lo"] and r["hi"] < MARGIN
                                for r in results.values())
            else "inconclusive at this budget")
    nearest = min(results, key=lambda k: results[k]["lo"])
    above = [k for k, r in results.items() if r["hi"] < 0]
    best = ("contradicted" if above else
            "holds" if all(r["lo"] > 0 for r in results.values())
            else "inconclusive at this budget")
    if _synthetic(_runs(tables, ("Table 5", TABLE5_BASE)), store):
        same = {"contradicted": f"the weightings differ {SYNTHETIC}",
                "consistent": f"no weighting differs by 0.01 {SYNTHETIC}"}.get(same, same)
        best = {"contradicted": f"another weighting beats equal weights {SYNTHETIC}",
                "holds": f"equal weights best {SYNTHETIC}"}.get(best, best)
    first = row(claims[0], differ[0] if differ else widest, same,
                f"'consistent' needs every interval within +-{MARGIN}")
    second = row(claims[1], above[0] if above else nearest, best,
                 "'holds' needs equal weights above every set")
    return [first, second]


def verdicts(tables: dict[str, pd.DataFrame], store: Path | None = None,
             section5: pd.DataFrame | None = None, hp_samples: int | None = None
             ) -> pd.DataFrame:
    """One row per claim of the paper: Section 5's (`mvlib.study.section5.claims`, when given) and
    Tables 1-5's (CLAIMS), with the verdict on our runs, plus Appendix C's remark that
    AUC-based weights are more volatile than loss-based ones (described, not tested)."""
    rows = [verdict(c, tables, store, hp_samples) for c in CLAIMS]
    rows.append(weight_volatility(tables["Table 4"]))
    rows.extend(table5_claims(tables, store))
    table = pd.DataFrame(rows).set_index("claim")
    return table if section5 is None else pd.concat([section5, table])


def claim_verdicts(tables: dict[str, pd.DataFrame], focus: str,
                   store: Path | None = None, hp_samples: int | None = None) -> pd.DataFrame:
    """The verdicts of the claims (CLAIMS) that involve table `focus` and whose two groups are
    both in `tables`, plus the weight-volatility remark when Table 4 is given: what a notebook
    judges in its closing box before notebook 07 judges them all."""
    def has(ref: tuple[str, str]) -> bool:
        return ref[0] in tables and ref[1] in tables[ref[0]].index

    rows = [verdict(c, tables, store, hp_samples) for c in CLAIMS
            if focus in (c.a[0], c.b[0]) and (has(c.a) or _untestable(c, tables)) and has(c.b)]
    if "Table 4" in tables:
        rows.append(weight_volatility(tables["Table 4"]))
    if "Table 5" in tables:
        rows.extend(table5_claims(tables, store))
    return pd.DataFrame(rows, columns=None if rows else ["claim", "verdict"]).set_index("claim")


def weight_volatility(table4: pd.DataFrame) -> dict:
    """How far each measure's weights move between the whole-run and late windows, or why
    that cannot be compared at this budget: a late window of a single epoch (the paper's
    spans ten), weights G / O^2 does not give, or weights resting on a G at noise level."""

    def spread(values: dict) -> float:
        return max(abs(a - b) for a, b in zip(*values.values(), strict=True))

    ref = {m: spread({w: paper.TABLE4[(m, w)] for w in ("[0, 100]", "[90, 100]")})
           for m in ("loss", "auc")}
    row = {"claim": "AUC-based blending weights are more volatile than loss-based ones",
           "notebook": "05", "paper (A vs B)": f"{ref['auc']:.3f} vs {ref['loss']:.3f}",
           "ours (A vs B)": "-"}
    weights = table4[["w_joint", "w_cc", "w_mlo"]]
    if weights.isna().any().any():
        return {**row, "verdict": NOT_TESTABLE, "why": "G / O^2 gives no weights for " + ", ".join(
            f"{m} over {w}" for (m, w), r in weights.iterrows() if r.isna().any())}
    ours = {m: spread({w: weights.loc[m].loc[w].tolist() for w in weights.loc[m].index})
            for m in ("loss", "auc")}
    row["ours (A vs B)"] = f"{ours['auc']:.3f} vs {ours['loss']:.3f}"
    late = table4.xs("[90, 100]", level="window")
    reasons = []
    if (span := int((late["to"] - late["from"]).min())) < 2:
        reasons.append(f"the late window spans {span} epoch (the paper's spans 10)")
    if noisy := [f"{m} over {w}" for (m, w), note in table4.note.items() if note]:
        reasons.append("the weights of " + ", ".join(noisy) + " rest on a G at noise level")
    if reasons:
        return {**row, "verdict": "not testable at this budget", "why": "; ".join(reasons)}
    v = "as the paper" if ours["auc"] > ours["loss"] else "unlike the paper"
    return {**row, "verdict": f"descriptive: {v}",
            "why": "largest change of a weight between the windows [0, 100] and [90, 100] "
                   "(one estimate per window: no interval)"}


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


def verdicts_markdown(verdicts: pd.DataFrame) -> str:
    """The verdict table as Markdown: counts, then the claims under each verdict with our
    numbers and the reason."""
    counts = verdicts.verdict.value_counts()
    tested = int(verdicts.get("p", pd.Series(dtype=float)).notna().sum())
    lines = [f"Of the {len(verdicts)} claims: "
             + ", ".join(f"{n} {v}" for v, n in counts.items()) + ". "
             f"{tested} are tested at once, each at 95%: were no difference real, about "
             f"{0.05 * tested:.1f} of them would still come out holds or contradicted by chance."]
    for v in counts.index:
        part = verdicts[verdicts.verdict == v]
        lines.append(f"* **{v}:** " + "; ".join(
            f"{claim} ({r['ours (A vs B)']}; {r.why})" for claim, r in part.iterrows()) + ".")
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
             **regularizers.regularizers(prof, executor, store)[1],
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


def write_verdicts(verdicts: pd.DataFrame, name: str, prof: Profile) -> Path:
    """A verdict table (claims, testbed instruments) as `name`.csv in the profile's figures
    folder: what `stability` compares between two re-runs."""
    csv = paths.figures(prof.tag) / f"{name}.csv"
    write_atomic(csv, lambda p: verdicts.to_csv(p))
    return csv


# Verdicts that decide for the claim (or find the planted cause), and against it.
DECIDED_FOR = ("holds", "consistent", "found", "counteracts the planted cue")
DECIDED_AGAINST = ("contradicted", "opposite", "makes it worse")


def stability(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """Two runs' verdicts on the same claims side by side, with what happened to each:
    **kept**, **reversed** (decided for the claim in one run and against it in the other:
    what intervals should make rare), **to undecided** / **from undecided** (between a decided
    verdict and inconclusive or not found), or **changed** (not tested, descriptive)."""
    both = first[["verdict"]].rename(columns={"verdict": "verdict (first)"}).join(
        second[["verdict"]].rename(columns={"verdict": "verdict (second)"}), how="inner")

    def side(v: str) -> int:
        if v.endswith(SYNTHETIC):  # a direction on synthetic data: A above B (+1) or not
            return -1 if (" < " in v or " no better than " in v or v.startswith(
                ("another", "no weighting", "below"))) else 1
        return 1 if v in DECIDED_FOR else -1 if v in DECIDED_AGAINST else 0

    def change(a: str, b: str) -> str:
        if a == b:
            return "kept"
        sa, sb = side(a), side(b)
        if sa * sb < 0:
            return "reversed"
        undecided = ("inconclusive at this budget", "not found at this budget")
        if sa and b in undecided:
            return "to undecided"
        if sb and a in undecided:
            return "from undecided"
        return "changed"

    both["change"] = [change(a, b) for a, b in zip(both.iloc[:, 0], both.iloc[:, 1],
                                                   strict=True)]
    return both


def stability_report(first_tag: str, second_tag: str) -> str:
    """`stability` of every verdict file (claims, view-reliance claims, testbed, Table 7's
    claims) between the figures of two re-runs, e.g. `laptop` and `laptop-reseed100`, as
    text tables with counts."""
    parts = []
    for name in paths.VERDICT_FILES:
        a, b = (paths.figures(t) / f"{name}.csv" for t in (first_tag, second_tag))
        missing = [str(p) for p in (a, b) if not p.exists()]
        if missing:
            parts.append(f"{name}: not compared ({', '.join(missing)} missing)")
            continue
        t = stability(pd.read_csv(a, index_col=0), pd.read_csv(b, index_col=0))
        t.columns = [first_tag, second_tag, "change"]
        counts = ", ".join(f"{n} {c}" for c, n in t.change.value_counts().items())
        parts.append(f"{name} ({counts}):\n{t.to_string()}")
    return "\n\n".join(parts)
