"""The paper's training protocol as sweeps of runs, shared by every notebook: a run's config,
the learning-rate search, the repetitions at the winner, and a group's summary row; and the
run groups later notebooks reuse as baselines (Table 1's models, Table 2's regularizers).

Search protocol (Appendix B, scaled by profile): every group samples learning rates
log-uniformly, trains `search_seeds` repetitions of each, picks the rate with the best
mean validation AUC, and reports `seeds` repetitions at that rate (the search runs at
that rate are reused: a run is found by its config).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from mvlib.engine.evaluate import ensemble, summarise
from mvlib.engine.search import (
    BASE_LRS,
    LR_RANGES,
    dropout_rates,
    log_uniform,
    results,
    split_learning_rates,
    winner,
)
from mvlib.engine.train import selection_score
from mvlib.executors.sweep import Executor, default_executor, sweep
from mvlib.experiment.prepare import prepare
from mvlib.experiment.profiles import Profile
from mvlib.experiment.runs import RunConfig, RunDir
from mvlib.instruments import stats

# The words a comparison on synthetic data ends with: a direction there, not a verdict on a
# claim the planted cue decides by construction (claims.synthetic_outcome).
SYNTHETIC = "on synthetic data"


def config(prof: Profile, model: str, lr: float, seed: int, experiment: str,
           epochs_override: int | None = None, paper_epochs: int = 100, **kw) -> RunConfig:
    """A run at the profile's budget (test windows; epochs scaled from the paper's
    `paper_epochs`: 100, or 150 for Modality Dropout and 50 for Pretraining)."""
    epochs = epochs_override or max(1, round(prof.epochs * paper_epochs / 100))
    knobs = {**prof.data_knobs, **kw.pop("knobs", {})}
    channels = kw.pop("channels", None) or input_channels(prof)
    kw.setdefault("threads", prof.threads)
    return RunConfig(model=model, lr=lr, seed=seed, epochs=epochs, profile=prof.name,
                     tta_windows=prof.tta_windows, experiment=experiment, dataset=prof.dataset,
                     data_root=prof.data_root, knobs=knobs, channels=channels, **kw)


def input_channels(prof: Profile) -> int:
    """Channels the profile's data set holds (3 = image + heatmaps; real sources without
    heatmaps are image only), capped at the 3 the models read by default."""
    if prof.dataset == "synthetic":
        return 3
    key = (prof.dataset, prof.name, prof.data_root, json.dumps(prof.data_knobs, sort_keys=True))
    if key not in _CHANNELS:
        data = prepare(prof.dataset, prof.name, prof.data_root, progress=False,
                       **prof.data_knobs)
        _CHANNELS[key] = min(3, len(data.channels))
    return _CHANNELS[key]


_CHANNELS: dict[tuple, int] = {}


def learning_rates(prof: Profile, kind: str) -> list[float]:
    return log_uniform(*LR_RANGES[kind], prof.lr_samples, seed={"uniview": 0, "variants": 1}[kind])


def lr_settings(prof: Profile, model: str, experiment: str, kind: str | None = None,
                **kw) -> list[dict]:
    """A group's search settings when only the learning rate is searched: the rates of
    `kind` ('uniview' or 'variants'; default: the experiment's name), and fixed fields `kw`."""
    return [dict(model=model, lr=lr, experiment=experiment, **kw)
            for lr in learning_rates(prof, kind or experiment)]


def search_then_repeat(prof: Profile, groups: dict[str, list[dict]],
                       executor: Executor | None = None, store: Path | None = None,
                       ) -> tuple[pd.DataFrame, dict[str, list[RunDir]]]:
    """Run every group's search, then its repetitions at the winning setting.

    `groups`: name -> settings, each the keyword arguments of `config` but the seed (model,
    lr, experiment and any regularizer fields). Returns the search table (one row per search
    run, with its group and setting index) and the final runs per group.
    """
    executor = executor or default_executor(prof)
    search = {name: [config(prof, seed=s, **setting)
                     for setting in settings for s in range(prof.search_seeds)]
              for name, settings in groups.items()}
    runs = sweep([c for cs in search.values() for c in cs], executor, store)
    by_cfg = {r.cfg.digest(): r for r in runs}
    tables = []
    for name, cfgs in search.items():
        t = results([by_cfg[c.digest()] for c in cfgs])
        t.insert(0, "group", name)
        t.insert(1, "setting", [i // prof.search_seeds for i in range(len(cfgs))])
        tables.append(t)
    table = pd.concat(tables, ignore_index=True)
    final = {name: [config(prof, seed=s,
                           **settings[winner(table[table.group == name], by="setting")])
                    for s in prof.seed_list(prof.seeds)]
             for name, settings in groups.items()}
    runs = sweep([c for cs in final.values() for c in cs], executor, store)
    by_cfg = {r.cfg.digest(): r for r in runs}
    return table, {name: [by_cfg[c.digest()] for c in cfgs] for name, cfgs in final.items()}


ENSEMBLE = 3  # models in the paper's ensembles


# Numeric columns of `summary` behind its displayed cells (the CSVs keep them; `shown` drops
# them for display). `runs` lists the runs' places in the store, ';'-separated.
NUMERIC = ("auc_mean", "auc_std", "auc_lo", "auc_hi", "ensemble", "ensemble_lo", "ensemble_hi",
           "runs")


def summary(final: dict[str, list[RunDir]], reference: dict[str, tuple]) -> pd.DataFrame:
    """Test AUC per group, ours beside the paper's: the mean over seeds with its 95% interval
    over seeds and test cases (`stats.recipe_ci`; a group of one run gets DeLong's interval
    of the test cases alone, and says so), the std over seeds, and the 3x ensemble (of the
    first three seeds, as the paper's ensembles three models) with its DeLong interval."""
    columns = ["group", "lr", "AUC (ours)", "std (ours)", "3x ensemble (ours)", "runs done",
               "AUC (paper)", "3x ensemble (paper)", *NUMERIC]
    rows = []
    for name, runs in final.items():
        done = [r for r in runs if r.done]
        ref = reference.get(name)
        row = {"group": name, "lr": runs[0].cfg.lr, "AUC (ours)": "-", "std (ours)": "-",
               "3x ensemble (ours)": "-", "runs done": f"{len(done)}/{len(runs)}",
               "AUC (paper)": f"{ref[0]:.3f} ± {ref[1]:.3f}" if ref else "-",
               "3x ensemble (paper)": ref[2] if ref else None,
               "runs": ";".join(r.ref for r in done)}
        if done:
            preds = [r.predictions() for r in done]
            s = summarise(preds)
            y, scores = preds[0].malignant, [p.p_malignant for p in preds]
            ens = ensemble(preds[:ENSEMBLE]).p_malignant  # the paper's 3x: the first three
            one = len(scores) == 1  # no seed spread to estimate: the test cases' interval
            mean, lo, hi = _interval(stats.auc_ci if one else stats.recipe_ci, y,
                                     scores[0] if one else scores, fallback=s["auc_mean"])
            e, elo, ehi = _interval(stats.auc_ci, y, ens, fallback=s["auc_ensemble"])
            row.update({"AUC (ours)": stats.interval_cell(mean, lo, hi)
                        + (" (1 seed: test cases only)" if one and lo == lo else ""),
                        "std (ours)": f"{s['auc_std']:.3f}",
                        "3x ensemble (ours)": stats.interval_cell(e, elo, ehi), "auc_mean": mean,
                        "auc_std": s["auc_std"], "auc_lo": lo, "auc_hi": hi, "ensemble": e,
                        "ensemble_lo": elo, "ensemble_hi": ehi})
        rows.append(row)
    return pd.DataFrame(rows, columns=columns).set_index("group")


def _interval(fn, y, scores, fallback: float) -> tuple[float, float, float]:
    """(estimate, lo, hi) from `fn`; NaN bounds when the test split cannot give an interval
    (fewer than 2 breasts of a class: small real data sets)."""
    try:
        return fn(y, scores)
    except ValueError:
        return fallback, math.nan, math.nan


def shown(table: pd.DataFrame) -> pd.DataFrame:
    """A summary table without its numeric columns, for display."""
    return table.drop(columns=[c for c in NUMERIC if c in table])


def final_runs(final: dict[str, list[RunDir]]) -> pd.DataFrame:
    """Each group's repetitions one by one: seed, best epoch, validation and test AUC."""
    cols = ["seed", "state", "best_epoch", "val_auc", "test_auc"]
    if not final:
        return pd.DataFrame(columns=cols)
    return pd.concat({g: results(runs).set_index("seed", drop=False)[cols]
                      for g, runs in final.items()}, names=["group", None]
                     ).reset_index(level=1, drop=True).round(3)


# The run groups later notebooks reuse as baselines: Table 1's (notebook 03) and Table 2's
# regularized Joint ResNets (notebook 04), found in the store once those notebooks ran.

# Table 1 groups: name -> (model, learning-rate range, experiment folder).
TABLE1_GROUPS = {"uni-view MLO": ("uni_mlo", "uniview"), "uni-view CC": ("uni_cc", "uniview"),
          "Split ResNet": ("split", "variants"), "Joint ResNet": ("joint", "variants"),
          "Shared ResNet": ("shared", "variants")}


def table1_final(prof: Profile, executor: Executor | None = None, store: Path | None = None,
                 names: tuple[str, ...] = tuple(TABLE1_GROUPS)) -> dict[str, list[RunDir]]:
    """The final runs of Table 1's groups (found in the store after notebook 03)."""
    groups = {n: lr_settings(prof, *TABLE1_GROUPS[n]) for n in names}
    return search_then_repeat(prof, groups, executor, store)[1]


def pretrained_views(prof: Profile, executor: Executor | None = None,
                     store: Path | None = None) -> dict[str, str]:
    """The best uni-view run of each view (highest validation AUC among Table 1's final
    runs): the store references that Pretraining initialises Joint ResNet from."""
    final = table1_final(prof, executor, store, ("uni-view CC", "uni-view MLO"))
    return {view: best_run(final[name], name).ref
            for view, name in (("cc", "uni-view CC"), ("mlo", "uni-view MLO"))}


def best_run(runs: list[RunDir], name: str) -> RunDir:
    """The finished run with the best validation AUC (ties: the lower loss), as the search
    picks its winner; RuntimeError naming the group when every run diverged."""
    done = [r for r in runs if r.done]
    if not done:
        raise RuntimeError(f"every {name} run diverged: nothing to pretrain from")
    return max(done, key=lambda r: selection_score(
        {"val_auc_malignant": r.status()["best_val_auc"],
         "val_loss": r.status().get("best_val_loss", math.inf)}))


def regularizer_groups(prof: Profile, init_from: dict[str, str]) -> dict[str, list[dict]]:
    """Table 2's searched groups: name -> settings (Appendix B)."""
    exp = "regularizers"
    return {
        "+ Pretraining": lr_settings(prof, "joint", exp, "variants", init_from=init_from,
                                     finetune="output", paper_epochs=50),
        "+ Pretraining (whole model)": lr_settings(prof, "joint", exp, "variants",
                                                   init_from=init_from, paper_epochs=50),
        "+ Split Learning Rates": [
            dict(model="joint", lr=base, group_lr=rates, experiment=exp)
            for i, base in enumerate(BASE_LRS)
            for rates in split_learning_rates(base, prof.hp_samples, seed=10 + i)],
        "+ Modality Dropout": [
            dict(model="joint", lr=base, view_dropout=rates, experiment=exp, paper_epochs=150)
            for i, base in enumerate(BASE_LRS)
            for rates in dropout_rates(prof.hp_samples, seed=20 + i)],
    }


def regularizers(prof: Profile, executor: Executor | None = None, store: Path | None = None
                 ) -> tuple[pd.DataFrame, dict[str, list[RunDir]]]:
    """Every regularizer group's search and repetitions: (search table, final runs)."""
    groups = regularizer_groups(prof, pretrained_views(prof, executor, store))
    return search_then_repeat(prof, groups, executor, store)
