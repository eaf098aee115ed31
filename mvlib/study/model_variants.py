"""Section 6.1, Table 1 (notebook 03): the uni-view models and the three multi-view variants
(Split, Joint, Shared ResNet), each searched and repeated by the protocol."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mvlib.core import paper
from mvlib.engine.evaluate import auc
from mvlib.engine.view_parts import run_reliance
from mvlib.executors.sweep import Executor
from mvlib.experiment.profiles import Profile
from mvlib.experiment.runs import RunDir
from mvlib.study.protocol import TABLE1_GROUPS, lr_settings, search_then_repeat, summary


def val_test_gap(runs: list[RunDir]) -> pd.DataFrame:
    """Per finished run: its best validation AUC (whole crops), and the same checkpoint's test
    AUC on whole crops (scored as validation is) and with the test-time windows (what Tables
    1-5 report): whether a gap between validation and test comes from the windows or from the
    splits themselves."""
    rows = []
    for run in runs:
        if not run.done:
            continue
        status = run.status()
        rel = run_reliance(run)
        test = rel[rel.split == "test"]
        rows.append({"seed": run.cfg.seed, "val AUC": status["best_val_auc"],
                     "test AUC, whole crops": auc(test.malignant, test.p_full),
                     "test AUC, windows (reported)": status["test_auc"]})
    return pd.DataFrame(rows).set_index("seed")


def gap_parts(gap: pd.DataFrame) -> pd.Series:
    """`val_test_gap` split into its parts, as means over seeds: the seeds whose validation AUC
    is below the reported test AUC, test minus validation, the test-time windows' part (test
    with windows minus test on whole crops) and the splits' part (the rest)."""
    total = (gap["test AUC, windows (reported)"] - gap["val AUC"]).mean()
    windows = (gap["test AUC, windows (reported)"] - gap["test AUC, whole crops"]).mean()
    return pd.Series({"seeds": len(gap),
                      "val below test": int((gap["val AUC"]
                                             < gap["test AUC, windows (reported)"]).sum()),
                      "test - val": total, "windows part": windows,
                      "splits part": total - windows})


def val_test_markdown(parts: pd.Series, counts: pd.DataFrame) -> str:
    """One sentence on why validation and test AUCs differ, from `gap_parts` and the data
    set's `counts()` (malignant breasts per split)."""
    return (f"Validation AUC is below the reported test AUC for {int(parts['val below test'])} "
            f"of {int(parts.seeds)} seeds (test minus validation {parts['test - val']:+.3f} on "
            f"average). Scoring the test split on whole crops, as validation is scored, moves "
            f"it by {-parts['windows part']:+.3f}: the test-time windows account for "
            f"{parts['windows part']:+.3f} of the gap and the splits themselves for "
            f"{parts['splits part']:+.3f} (validation holds {counts.loc['val', 'malignant']} "
            f"malignant breasts, test {counts.loc['test', 'malignant']}: different cases, and "
            "each AUC on few positives).")


def table1(prof: Profile, executor: Executor | None = None, store: Path | None = None
           ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, list[RunDir]]]:
    """Table 1 (uni-view models and model variants): (summary, learning-rate search, the
    final runs per group)."""
    groups = {name: lr_settings(prof, model, exp) for name, (model, exp) in TABLE1_GROUPS.items()}
    search, final = search_then_repeat(prof, groups, executor, store)
    return summary(final, paper.TABLE1), search, final
