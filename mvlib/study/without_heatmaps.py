"""Section 6.3, Table 3 (notebook 06): the winning settings of Tables 1-2 re-trained on the
image channel alone (the paper does not say whether it searched again; we do not, to save
budget)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mvlib.core import paper
from mvlib.executors.sweep import Executor, default_executor, sweep
from mvlib.experiment.profiles import Profile
from mvlib.study import protocol
from mvlib.study.protocol import (
    input_channels,
    learning_rates,
    search_then_repeat,
    summary,
)


def no_heatmap_settings(prof: Profile, executor: Executor | None = None,
                        store: Path | None = None) -> dict[str, list]:
    """Table 3's runs: Joint, Joint + Modality Dropout and Shared on the image channel alone,
    each with its winning setting from notebooks 03-04 (epochs, dropout rates) but its
    learning rate searched again (Table 1's sampled rates and the winner's own), since a
    rate that suits three channels need not suit one; `seeds` repetitions at the new winner.
    Empty when the data set has no heatmaps: every run already reads the image alone."""
    if input_channels(prof) == 1:
        return {}
    t1 = protocol.table1_final(prof, executor, store, ("Joint ResNet", "Shared ResNet"))
    md = protocol.regularizers(prof, executor, store)[1]["+ Modality Dropout"]
    winners = {"Joint ResNet": t1["Joint ResNet"][0].cfg, "+ Modality Dropout": md[0].cfg,
               "Shared ResNet": t1["Shared ResNet"][0].cfg}
    groups = {name: [dict(model=cfg.model, lr=lr, experiment="no_heatmaps", channels=1,
                          epochs_override=cfg.epochs, view_dropout=cfg.view_dropout)
                     for lr in sorted({*learning_rates(prof, "variants"), cfg.lr})]
              for name, cfg in winners.items()}
    final = search_then_repeat(prof, groups, executor, store)[1]
    return {name: [r.cfg for r in runs] for name, runs in final.items()}


def table3(prof: Profile, executor: Executor | None = None, store: Path | None = None
           ) -> pd.DataFrame:
    """Table 3: the models trained without heatmaps, ours beside the paper's (no rows when the
    data set has no heatmaps)."""
    cfgs = no_heatmap_settings(prof, executor, store)
    runs = sweep([c for cs in cfgs.values() for c in cs],
                 executor or default_executor(prof), store)
    by_cfg = {r.cfg.digest(): r for r in runs}
    return summary({n: [by_cfg[c.digest()] for c in cs] for n, cs in cfgs.items()},
                   paper.TABLE3)
