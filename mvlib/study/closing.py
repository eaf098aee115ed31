"""How every notebook closes (01-08) and the results page (09): each claim it judges with
what the paper says, what we find with its 95% interval, the verdict, and why a result may
differ here (budget, data, what was cut), all generated from the verdict tables."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path

import pandas as pd

from mvlib.core import paper, paths
from mvlib.experiment.profiles import PROFILES, Profile
from mvlib.study.protocol import SYNTHETIC
from mvlib.study.section5 import DEPENDENCE_CLAIM, TESTBED_DEPENDENCE_CLAIM
from mvlib.study.tables import stability

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
    whether it kept its status (mvlib.study.tables.stability's words); "not re-run" without
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


def mechanism_markdown(figures: Path, claims: pd.DataFrame) -> str:
    """The results page's first part, generated from the figures folder: each recipe's
    interaction with the planted cue (interaction.csv), which instruments detect the cue
    (testbed.csv), and the reliance claims of `claims` (`is_mechanism`)."""
    lines = []
    parts = [t for t in (_read(figures / f"{n}.csv") for n in INTERACTION_FILES)
             if t is not None and len(t)]
    inter = pd.concat(parts, ignore_index=True).drop_duplicates("recipe") if parts else None
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
    tb = _read(figures / "testbed.csv")
    if tb is not None and len(tb):
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
