"""Hyper-parameter sampling of the paper's Appendix B, and choosing a group's winner."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mvlib.runs import RunDir

# Learning-rate ranges (log-uniform): uni-view curves, and Joint / Shared / Split.
LR_RANGES = {"uniview": (1e-5, 3e-3), "variants": (1e-5, 1e-3)}


def log_uniform(lo: float, hi: float, n: int, seed: int) -> list[float]:
    """n values log-uniform in [lo, hi], sorted, reproducible from the seed (3 digits)."""
    rng = np.random.default_rng(seed)
    values = np.exp(rng.uniform(np.log(lo), np.log(hi), n))
    return sorted(float(f"{v:.3g}") for v in values)


def results(runs: list[RunDir]) -> pd.DataFrame:
    """One row per run: its config fields that vary, state, best validation and test AUC."""
    rows = []
    for run in runs:
        status = run.status()
        rows.append({"model": run.cfg.model, "lr": run.cfg.lr, "seed": run.cfg.seed,
                     "state": status["state"], "best_epoch": status.get("best_epoch"),
                     "val_auc": status.get("best_val_auc"), "test_auc": status.get("test_auc"),
                     "path": str(run.path)})
    return pd.DataFrame(rows)


def winner(table: pd.DataFrame, by: str = "lr") -> float:
    """The setting with the best mean validation AUC over its repetitions; diverged runs
    count as missing, a setting whose runs all diverged cannot win."""
    done = table[table.state == "done"]
    if done.empty:
        raise ValueError("every run of the group diverged")
    return done.groupby(by)["val_auc"].mean().idxmax()
