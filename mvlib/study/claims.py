"""The paper's claims and their verdicts, and how every notebook closes (01-08) and the
results page (09): each claim it judges with what the paper says, what we find with its 95%
interval, the verdict, and why a result may differ here (budget, data, what was cut), all
generated from the verdict tables. Every claim carries the key of the notebook that judges it.

Each claim of Tables 1-5 compares two recipes (groups of runs, one per seed, on the same test
breasts) with `stats.compare_recipes`: the difference of their mean AUCs with a 95% interval
over seeds and test cases (Student's t with Satterthwaite's degrees of freedom: at 3-4 seeds
the seeds' spread is itself uncertain). A claim "A beats B" **holds** when that interval lies
above 0, is **contradicted** when it lies below 0 and is **inconclusive at this budget**
otherwise. A claim "A does not improve on B" (the paper found A no better) is **consistent**
when the interval's upper bound is below the equivalence margin MARGIN (0.01 AUC),
**contradicted** when its lower bound is above 0, and inconclusive otherwise. Each verdict
prints the interval, its p-value, the smallest difference this budget detects with 80% power
(`mdd`, about 2.8 standard errors) and how much of the variance is the seeds' (against the
test cases').
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from mvlib.core import paper, paths
from mvlib.core.atomic import write_atomic
from mvlib.experiment.profiles import PROFILES, Profile
from mvlib.instruments import stats
from mvlib.study import gradient_blending, regularizers
from mvlib.study.protocol import SYNTHETIC
from mvlib.study.section5 import DEPENDENCE_CLAIM, TESTBED_DEPENDENCE_CLAIM

CLOSING = "In closing"  # the heading above every notebook's closing box: the results page's link
NOTEBOOKS = {"01": "01_uniview_curves", "02": "02_training_dynamics",
             "03": "03_model_variants", "04": "04_regularizers", "05": "05_gradient_blending",
             "06": "06_without_heatmaps", "07": "07_tables", "08": "08_balancing_methods"}
# What differs in a notebook's own set-up, beside the profile's budget and data (`differences`).
NOTES = {
    "04": ("every Pretraining seed fine-tunes the same best uni-view columns, as the paper's "
           "Appendix B does (the sensitivity row varies them)",),
    "05": ("the weights are G / O^2's (Wang et al.) or none: an estimate with a model that did "
           "not generalise, or whose G is at noise level, trains no model; Table 5 trains the "
           "paper's five weight sets, and ours where an estimate trains a model",),
    "06": ("the synthetic heatmaps are drawn by the generator from its ground truth, not "
           "produced by a patch classifier",),
    "07": ("the reliance readings are ours (the paper does not measure them) and rest on the "
           "reading the testbed validated",),
    "08": ("beyond the paper: OGM-GE trains with its reference's SGD, the baselines with Adam",),
}
# The verdict files a figures folder holds (mvlib.core.paths.VERDICT_FILES) that judge claims.
CLAIM_FILES = ("verdicts", "reliance_claims", "table7_claims")
# Every verdict file with the columns that name a row: the claims and the testbed's readings.
VERDICT_KEYS = {"verdicts": ["claim"], "reliance_claims": ["claim"],
                "table7_claims": ["claim"], "testbed": ["instrument"],
                "testbed_balancing": ["group", "instrument"],
                "testbed_balancing_vs_joint": ["group", "instrument"]}
# The verdicts of the laptop study as the seed x case bootstrap decided them, on the same runs
# as the committed figures: the record notebook 09 counts the intervals' changes against.
BOOTSTRAP_RECORD = "seed_case_bootstrap"


def anchor(heading: str) -> str:
    """The id a heading gets on the site (MyST's GitHub-style slug: lower case, punctuation
    dropped, spaces to hyphens)."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _interval(r: pd.Series) -> str:
    diff, lo, hi = (float(r.get(k, math.nan)) for k in ("diff", "lo", "hi"))
    if math.isnan(diff):
        return "-"
    if math.isnan(lo):
        return f"{diff:+.3f}"
    return f"{diff:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def claims_table(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Verdict rows of any of the verdict files (index or column `claim`) in one shape:
    the paper's value, ours, the difference with its 95% interval, the verdict."""
    v = verdicts.reset_index() if "claim" not in verdicts.columns else verdicts
    out = pd.DataFrame({
        "claim": v["claim"].to_numpy(),
        "the paper": (v["paper (A vs B)"] if "paper (A vs B)" in v
                      else pd.Series(["not in the paper"] * len(v))).fillna("-").to_numpy(),
        "ours": (v["ours (A vs B)"] if "ours (A vs B)" in v
                 else v.get("reading", pd.Series(["-"] * len(v)))).fillna("-").to_numpy(),
        "difference [95% interval]": [_interval(r) for _, r in v.iterrows()],
        "verdict": v["verdict"].to_numpy()})
    return out


def differences(prof: Profile) -> list[str]:
    """Why a number here may differ from the paper's: this profile's budget and data beside
    the paper's."""
    ref = PROFILES["paper"]
    out = []
    if prof.epochs != ref.epochs:
        out.append(f"{prof.epochs} epochs per run (the paper's: {ref.epochs})")
    if (prof.lr_samples, prof.search_seeds) != (ref.lr_samples, ref.search_seeds):
        out.append(f"{prof.lr_samples} learning rate(s) searched per group with "
                   f"{prof.search_seeds} seed(s) each (the paper's: {ref.lr_samples} with "
                   f"{ref.search_seeds})")
    if prof.tta_windows != ref.tta_windows:
        out.append(f"{prof.tta_windows} test-time windows (the paper's: {ref.tta_windows})")
    size = f"{prof.cc_size[0]}x{prof.cc_size[1]} (CC) and {prof.mlo_size[0]}x{prof.mlo_size[1]}"
    psize = (f"{paper.CC_SIZE[0]}x{paper.CC_SIZE[1]} and "
             f"{paper.MLO_SIZE[0]}x{paper.MLO_SIZE[1]}")
    if prof.dataset == "synthetic":
        n = sum(prof.synthetic_patients.values())
        out.append(f"synthetic data: {n:,} patients with a planted MLO cue, images of {size} "
                   f"pixels (the paper: {paper.DATA['patients']:,} patients' screening "
                   f"mammograms at {psize})")
    elif (prof.cc_size, prof.mlo_size) != (paper.CC_SIZE, paper.MLO_SIZE):
        out.append(f"{prof.dataset} data at {size} pixels (the paper: NYU's at {psize})")
    return out


def closing_markdown(verdicts: pd.DataFrame | list[pd.DataFrame], prof: Profile,
                     notes: tuple[str, ...] = (), mechanism: pd.DataFrame | None = None) -> str:
    """A notebook's closing box in two parts: **the mechanism, on the testbed** (`mechanism`:
    rows of `mvlib.study.mechanism.interaction_table`, and the claims about reliance on the
    planted cue, `is_mechanism`) and **the paper's tables, on these data** (the other claims:
    the paper's value, ours, the interval and the outcome), then why a result may differ here
    (`differences`, and the notebook's own `notes`)."""
    frames = verdicts if isinstance(verdicts, list) else [verdicts]
    table = pd.concat([claims_table(f) for f in frames if len(f)], ignore_index=True) \
        if any(len(f) for f in frames) else pd.DataFrame(columns=["claim", "verdict"])
    mech = table[table.claim.map(is_mechanism)]
    papers = table[~table.claim.map(is_mechanism)]
    lines = []
    rows = (mechanism.drop(index="Joint ResNet", errors="ignore")  # its row: the cue's cost
            if mechanism is not None else None)
    if (rows is not None and len(rows)) or len(mech):
        lines.append("**The mechanism, on the testbed** (planted against control: what the "
                     "synthetic data can decide):")
        if rows is not None and len(rows):
            lines += ["", "| recipe | effect against Joint ResNet, planted | the same, control "
                      "| interaction [95% interval] | verdict |", "|---|---|---|---|---|"]
            for name, r in rows.iterrows():
                cells = [_interval(pd.Series({"diff": r.get(c, math.nan),
                                              "lo": r.get(f"{c} lo", math.nan),
                                              "hi": r.get(f"{c} hi", math.nan)}))
                         for c in ("effect planted", "effect control", "interaction")]
                lines.append(f"| {_cell(name)} | {cells[0]} | {cells[1]} | {cells[2]} | "
                             f"**{r.verdict}** |")
        lines += _claim_rows(mech)
        lines.append("")
    if papers.empty:
        lines.append("No claim of the paper's tables is judged in this notebook on this data "
                     "set.")
    else:
        counts = papers.verdict.value_counts()
        lines.append(f"**The paper's tables, on these data** ({len(papers)} claim(s): "
                     + ", ".join(f"{n} {v}" for v, n in counts.items()) + ")."
                     + (" On synthetic data each is the direction it took here, not a verdict "
                        "on the paper's NYU number: the planted cue decides it by "
                        "construction; a real data set decides it."
                        if prof.dataset == "synthetic" else ""))
        lines += _claim_rows(papers)
    reasons = differences(prof) + list(notes)
    if reasons:
        lines += ["", "**Why it may differ here:** " + "; ".join(reasons) + "."]
    return "\n".join(lines)


def _claim_rows(table: pd.DataFrame) -> list[str]:
    if table.empty:
        return []
    return (["", "| claim | the paper | ours | difference [95% interval] | verdict |",
             "|---|---|---|---|---|"]
            + [f"| {_cell(r.claim)} | {_cell(r['the paper'])} | {_cell(r.ours)} | "
               f"{r['difference [95% interval]']} | **{r.verdict}** |"
               for _, r in table.iterrows()])


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|")


def _verdict_files(figures: Path) -> dict[str, pd.DataFrame]:
    """The claim files (CLAIM_FILES) a figures folder holds, each checked to be a verdict
    table (columns claim and verdict)."""
    found = {}
    for name in CLAIM_FILES:
        path = figures / f"{name}.csv"
        if not path.exists():
            continue
        try:
            v = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: not a verdict table ({e})") from e
        if not {"claim", "verdict"} <= set(v.columns):
            raise ValueError(f"{path}: a verdict table needs the columns claim and verdict")
        found[name] = v
    return found


def all_claims(figures: Path) -> pd.DataFrame:
    """Every claim the companion judges, from the verdict files of a figures folder, with
    the notebook whose closing box shows it (each row's `notebook`, set where it is judged)."""
    frames = []
    for name, v in _verdict_files(figures).items():
        if "notebook" not in v.columns:
            raise ValueError(f"{figures / name}.csv: no column notebook (the notebook whose "
                             "closing box judges each claim): written before it was recorded, "
                             "re-run notebooks 01-08")
        t = claims_table(v)
        t.insert(0, "notebook", v["notebook"].map(lambda n: f"{int(n):02d}").to_numpy())
        t["source"] = name
        frames.append(t)
    if not frames:
        return pd.DataFrame(columns=["notebook", "claim", "the paper", "ours",
                                     "difference [95% interval]", "verdict", "source"])
    return pd.concat(frames, ignore_index=True).sort_values("notebook", kind="stable")


def with_reseed(claims: pd.DataFrame, reseeded: Path | None) -> pd.DataFrame:
    """`claims` with the verdict each claim got in a reseeded re-run's figures folder and
    whether it kept its status (mvlib.study.claims.stability's words); "not re-run" without
    one."""
    out = claims.copy()
    if reseeded is None or not reseeded.exists():
        out["reseeded re-run"] = "not re-run"
        return out
    files = _verdict_files(reseeded)
    other = (pd.concat([claims_table(v) for v in files.values()]).set_index("claim") if files
             else pd.DataFrame(columns=["verdict"]))
    both = stability(out.set_index("claim"), other)
    out["reseeded re-run"] = [
        f"{both.loc[c, 'change']} ({both.loc[c, 'verdict (second)']})" if c in both.index
        else "not in the re-run" for c in out.claim]
    return out


def results_markdown(claims: pd.DataFrame) -> str:
    """The results page's table: one row per claim, linked to the closing box of the notebook
    that judges it."""
    if claims.empty:
        return "No verdict file in this figures folder: run notebooks 01-08 first."
    counts = claims.verdict.value_counts()
    lines = [f"**{len(claims)} claims judged:** "
             + ", ".join(f"{n} {v}" for v, n in counts.items()) + ".", "",
             "| notebook | claim | the paper | ours | difference [95% interval] | verdict "
             "| reseeded re-run |", "|---|---|---|---|---|---|---|"]
    for _, r in claims.iterrows():
        link = f"[{r.notebook}]({NOTEBOOKS[r.notebook]}.ipynb#{anchor(CLOSING)})"
        lines.append(f"| {link} | {_cell(r.claim)} | {_cell(r['the paper'])} | "
                     f"{_cell(r.ours)} | {r['difference [95% interval]']} | **{r.verdict}** | "
                     f"{r.get('reseeded re-run', 'not re-run')} |")
    return "\n".join(lines)


def reseed_folder(prof: Profile, reseed: int = 100) -> Path:
    """Where `make reproduce RESEED=<reseed>` writes its figures for this profile and data set
    (paths.figures without creating it: the re-run may be absent)."""
    return paths.store() / replace(prof, reseed=reseed).tag / "figures"


def verdict_changes(figures: Path, before: Path) -> pd.DataFrame:
    """Every verdict of `figures` beside the verdict the same row had in `before` (another
    figures folder of the same runs, judged with other intervals): file, row, before, after,
    and whether it moved. Rows in only one folder are left out."""
    rows = []
    for name, keys in VERDICT_KEYS.items():
        new, old = figures / f"{name}.csv", before / f"{name}.csv"
        if not (new.exists() and old.exists()):
            continue
        a, b = (pd.read_csv(f).set_index(keys).verdict for f in (old, new))
        for key in a.index.intersection(b.index):
            row = " / ".join(key) if isinstance(key, tuple) else key
            rows.append({"file": name, "row": row, "before": a[key], "after": b[key],
                         "moved": a[key] != b[key]})
    return pd.DataFrame(rows, columns=["file", "row", "before", "after", "moved"])


RULE_VERDICTS = ("not testable", "not judged")  # verdicts set by a rule, not an interval


def changes_markdown(changes: pd.DataFrame) -> str:
    """How many verdicts moved since the seed x case bootstrap's record, and which, from
    `verdict_changes`: those a rule added since moved (a model at chance, a reading the testbed
    did not validate, a paper-table comparison on synthetic data read as a direction) apart
    from the rest (the intervals, and the runs and readings changed since: the record is of
    the study at 4 seeds per winner)."""
    if changes.empty:
        return ("No record of the earlier verdicts for this profile and data set: nothing to "
                "compare.")
    moved = changes[changes.moved]
    by_rule = ((moved.after.str.startswith(RULE_VERDICTS) | moved.after.str.endswith(SYNTHETIC))
               & ~moved.before.str.startswith(RULE_VERDICTS))
    lines = [f"Of {len(changes)} verdicts in both the record and now, "
             f"**{int(by_rule.sum())} moved with the rules** (a model at chance tests nothing; "
             "a claim rests only on a reading the testbed validated; on synthetic data a "
             "comparison of the paper's tables is a direction, not a verdict) and "
             f"**{int((~by_rule).sum())} otherwise**: with the intervals "
             "(mvlib.instruments.stats.seed_case_contrast for the seed x case bootstrap), "
             "and with what changed in the runs and readings since the record (3 seeds per "
             "winner instead of 4 at the laptop profile; the central hypothesis and Figure 3 "
             "read differently; CHANGELOG.md), so these are not the intervals' alone."]
    for title, part in (("The rules", moved[by_rule]), ("Otherwise", moved[~by_rule])):
        if part.empty:
            continue
        lines += ["", f"{title}:"]
        for (before, after), group in part.groupby(["before", "after"], sort=False):
            lines.append(f"* {before} -> {after} ({len(group)}): "
                         + "; ".join(f"{r.row} ({r.file})" for r in group.itertuples()))
    return "\n".join(lines)


# The results page's first part: what the synthetic testbed decides (the mechanism), each
# file with the column that names a row.
MECHANISM_FILES = {"interaction": "recipe", "interaction_table7": "recipe",
                   "testbed": "instrument"}
INTERACTION_FILES = ("interaction", "interaction_table7")  # notebooks 07 and 08
PAPER_TABLES = ("Table 1", "Table 2", "Table 3", "Table 5", "Table 7")


def _read(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a verdict table ({e})") from e


def is_mechanism(claim: str) -> bool:
    """Whether a claim of the claim files is about the mechanism (reliance on the planted
    cue, judged planted against control or on a validated reading), not a paper's table."""
    return ("reliance" in claim or "under-uses CC" in claim
            or claim in (DEPENDENCE_CLAIM, TESTBED_DEPENDENCE_CLAIM))


def mechanism_tables(figures: Path) -> dict[str, pd.DataFrame | None]:
    """The figures folder's mechanism tables: each recipe's interaction with the planted cue
    (interaction.csv of notebook 07 and interaction_table7.csv of 08, one row a recipe) and
    which instruments detect the cue (testbed.csv); None where a file is absent or empty."""
    parts = [t for t in (_read(figures / f"{n}.csv") for n in INTERACTION_FILES)
             if t is not None and len(t)]
    tb = _read(figures / "testbed.csv")
    return {"interaction": (pd.concat(parts, ignore_index=True).drop_duplicates("recipe")
                            if parts else None),
            "testbed": tb if tb is not None and len(tb) else None}


def mechanism_markdown(tables: dict[str, pd.DataFrame | None], claims: pd.DataFrame) -> str:
    """The results page's first part from `mechanism_tables`: each recipe's interaction
    with the planted cue, which instruments detect the cue, and the reliance claims of
    `claims` (`is_mechanism`)."""
    lines = []
    inter = tables["interaction"]
    if inter is not None and len(inter):
        counts = inter[inter.recipe != "Joint ResNet"].verdict.value_counts()
        lines += [f"**Each recipe on the planted and the control data** "
                  f"([07]({NOTEBOOKS['07']}.ipynb), [08]({NOTEBOOKS['08']}.ipynb)): "
                  + ", ".join(f"{n} {v}" for v, n in counts.items()) + ".", "",
                  "| recipe | test AUC, planted | test AUC, control | interaction [95% interval] "
                  "| verdict |", "|---|---|---|---|---|"]
        for _, r in inter.iterrows():
            auc = [f"{r[f'AUC {k}']:.3f}" if r[f"AUC {k}"] == r[f"AUC {k}"] else "-"
                   for k in ("planted", "control")]
            cell = _interval(pd.Series({"diff": r.get("interaction", math.nan),
                                        "lo": r.get("interaction lo", math.nan),
                                        "hi": r.get("interaction hi", math.nan)}))
            lines.append(f"| {_cell(r.recipe)} | {auc[0]} | {auc[1]} | {cell} | "
                         f"**{r.verdict}** |")
    else:
        lines.append("No interaction table (real data, or notebook 07 not run): the mechanism "
                     "is judged on the synthetic testbed only.")
    tb = tables["testbed"]
    if tb is not None:
        found = tb[tb.verdict == "found"].instrument.tolist()
        lines += ["", f"**Which instruments see the planted cue** ([02]({NOTEBOOKS['02']}"
                  f".ipynb)): {len(found)} of {len(tb)} find it"
                  + (": " + "; ".join(found) if found else "") + "."]
    mech = claims[claims.claim.map(is_mechanism)] if len(claims) else claims
    if len(mech):
        lines += ["", "**Reliance, on validated readings:**", "",
                  "| notebook | claim | difference [95% interval] | verdict |",
                  "|---|---|---|---|"]
        lines += [f"| [{r.notebook}]({NOTEBOOKS[r.notebook]}.ipynb#{anchor(CLOSING)}) | "
                  f"{_cell(r.claim)} | {r['difference [95% interval]']} | **{r.verdict}** |"
                  for _, r in mech.iterrows()]
    return "\n".join(lines)


def real_data_sentence(claims: pd.DataFrame, synthetic: bool = True) -> str:
    """One generated sentence per paper table on what a real data set would decide (nothing
    when the claims are already judged on real data: there they are verdicts)."""
    if not synthetic:
        return "These are verdicts: the data are real, so no cue was planted to decide them."
    lines = []
    for table in PAPER_TABLES:
        mine = claims[claims.claim.map(lambda c, t=table: _table_of(c) == t)]
        if len(mine):
            lines.append(f"* **{table}** ({len(mine)} comparison(s)): on a real data set "
                         "(`make reproduce DATASET=rsna DATA_ROOT=...`, or VinDr-Mammo, "
                         "CBIS-DDSM, NYU exam lists) the same intervals give each a verdict, "
                         "holds or contradicted, because there no cue was planted to decide "
                         "it.")
    return "\n".join(lines)


def _table_of(claim: str) -> str:
    if claim.startswith("Table 5"):
        return "Table 5"
    if "OGM-GE" in claim or "Re-balancing" in claim:
        return "Table 7"
    if claim.startswith("without heatmaps") or claim.startswith("heatmaps help"):
        return "Table 3"
    if any(m in claim for m in ("Pretraining", "Split Learning Rates", "Modality Dropout",
                                "Gradient Blending")):
        return "Table 2"
    if "blending weights" in claim:
        return "Table 4"
    if "(Fig." in claim or "(Section 5)" in claim or "(Appendix A)" in claim:
        return "Section 5"
    return "Table 1"


@dataclass(frozen=True)
class Claim:
    text: str
    a: tuple[str, str]  # (table, row)
    b: tuple[str, str]
    notebook: str  # the notebook whose closing box judges it (a key of claims.NOTEBOOKS)
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
    try:  # a test split without two breasts of each class has no AUC to compare
        for name, runs in ((a[1], sa), (b[1], sb)):
            if why := stats.at_chance(y.to_numpy(), [s.to_numpy() for s in runs]):
                return NOT_TESTABLE, f"{name}: {why}"
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
