"""Hyper-parameter sampling of the paper's Appendix B, and choosing a group's winner."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mvlib.engine.train import selection_score  # the one ranking rule, shared with checkpoints
from mvlib.experiment.runs import RunDir

# Learning-rate ranges (log-uniform): uni-view curves, and Joint / Shared / Split.
LR_RANGES = {"uniview": (1e-5, 3e-3), "variants": (1e-5, 1e-3)}


def log_uniform(lo: float, hi: float, n: int, seed: int) -> list[float]:
    """n values log-uniform in [lo, hi], sorted, reproducible from the seed (3 digits)."""
    rng = np.random.default_rng(seed)
    values = np.exp(rng.uniform(np.log(lo), np.log(hi), n))
    return sorted(float(f"{v:.3g}") for v in values)


# Appendix B: Modality Dropout and Split Learning Rates search at these base rates.
BASE_LRS = (1e-5, 1e-4)


def split_learning_rates(base: float, n: int, seed: int) -> list[dict[str, float]]:
    """n sets of per-group rates base * 10^a, a ~ U[-1, 1] independently for CC, MLO, shared."""
    rng = np.random.default_rng(seed)
    exponents = rng.uniform(-1, 1, (n, 3))
    return [{g: float(f"{base * 10 ** a:.3g}") for g, a in zip(("cc", "mlo", "shared"), row,
                                                                 strict=True)}
            for row in exponents]


def dropout_rates(n: int, seed: int) -> list[dict[str, float]]:
    """n pairs of Modality Dropout rates, each uniform in [0, 1) independently per view
    (3 digits, and at most 0.999: rounding must not reach a rate of 1)."""
    rng = np.random.default_rng(seed)
    return [{v: min(float(f"{p:.3g}"), 0.999) for v, p in zip(("cc", "mlo"), pair, strict=True)}
            for pair in rng.uniform(0, 1, (n, 2))]


def results(runs: list[RunDir]) -> pd.DataFrame:
    """One row per run: its config fields that vary (model, lr, seed, and per-group rates,
    dropout rates, blending weights or OGM-GE's alpha where set), state, best validation and
    test AUC."""
    rows = []
    for run in runs:
        status = run.status()
        cfg = run.cfg
        rows.append({"model": cfg.model, "lr": cfg.lr, "seed": cfg.seed,
                     **{f"lr_{g}": v for g, v in (cfg.group_lr or {}).items()},
                     **{f"p_{v}": p for v, p in (cfg.view_dropout or {}).items()},
                     **{f"w_{k}": w for k, w in (cfg.blend_weights or {}).items()},
                     **({"alpha": cfg.ogm_alpha} if cfg.ogm_alpha else {}),
                     "state": status["state"], "val_loss": status.get("best_val_loss"),
                     "best_epoch": status.get("best_epoch"),
                     "val_auc": status.get("best_val_auc"), "test_auc": status.get("test_auc"),
                     "path": str(run.path)})
    return pd.DataFrame(rows)


def winner(table: pd.DataFrame, by: str = "lr") -> float:
    """The setting with the best mean validation AUC over its repetitions (the lowest mean
    validation loss when no AUC is defined); diverged runs count as missing, a setting
    whose runs all diverged cannot win."""
    done = table[table.state == "done"]
    if done.empty:
        raise ValueError("every run of the group diverged")
    means = done.reindex(columns=[by, "val_auc", "val_loss"]).astype(
        {"val_auc": float, "val_loss": float}).groupby(by).mean()
    return max(means.index, key=lambda k: selection_score(
        {"val_auc_malignant": means.val_auc[k], "val_loss": means.val_loss[k]}))
