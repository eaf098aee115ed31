"""The paper's experiments as sweeps of runs: what notebooks 01 and 03 call.

Search protocol (Appendix B, scaled by profile): every group samples learning rates
log-uniformly, trains `search_seeds` repetitions of each, picks the rate with the best
mean validation AUC, and reports `seeds` repetitions at that rate (the search runs at
that rate are reused: a run is found by its config).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pandas as pd

from mvlib import paper, stats
from mvlib.data.loader import train_loader
from mvlib.data.prepare import prepare
from mvlib.dynamics import RK4, mlo_share
from mvlib.evaluate import auc, ensemble, summarise
from mvlib.profiles import Profile
from mvlib.reliance import run_reliance
from mvlib.runs import RunConfig, RunDir
from mvlib.search import LR_RANGES, log_uniform, results, winner
from mvlib.sweep import Executor, default_executor, sweep
from mvlib.train import selection_score

# Table 1 groups: name -> (model, learning-rate range, experiment folder).
TABLE1 = {"uni-view MLO": ("uni_mlo", "uniview"), "uni-view CC": ("uni_cc", "uniview"),
          "Split ResNet": ("split", "variants"), "Joint ResNet": ("joint", "variants"),
          "Shared ResNet": ("shared", "variants")}


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
    """Test AUC per group, ours beside the paper's: the mean over seeds with its seed x case
    95% interval (`stats.recipe_ci`), the std over seeds, and the 3x ensemble (of the first
    three seeds, as the paper's ensembles three models) with its DeLong interval."""
    columns = ["group", "lr", "AUC (ours)", "std (ours)", "3x ensemble (ours)", "runs done",
               "AUC (paper)", "3x ensemble (paper)", *NUMERIC]
    rows = []
    for name, runs in final.items():
        done = [r for r in runs if r.status()["state"] == "done"]
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
            mean, lo, hi = _interval(stats.recipe_ci, y, scores, fallback=s["auc_mean"])
            e, elo, ehi = _interval(stats.auc_ci, y, ens, fallback=s["auc_ensemble"])
            row.update({"AUC (ours)": stats.interval_cell(mean, lo, hi),
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


def val_test_gap(runs: list[RunDir]) -> pd.DataFrame:
    """Per finished run: its best validation AUC (whole crops), and the same checkpoint's test
    AUC on whole crops (scored as validation is) and with the test-time windows (what Tables
    1-5 report): whether a gap between validation and test comes from the windows or from the
    splits themselves."""
    rows = []
    for run in runs:
        status = run.status()
        if status["state"] != "done":
            continue
        rel = run_reliance(run)
        test = rel[rel.split == "test"]
        rows.append({"seed": run.cfg.seed, "val AUC": status["best_val_auc"],
                     "test AUC, whole crops": auc(test.malignant, test.p_full),
                     "test AUC, windows (reported)": status["test_auc"]})
    return pd.DataFrame(rows).set_index("seed")


def val_test_markdown(gap: pd.DataFrame, counts: pd.DataFrame) -> str:
    """One sentence on why validation and test AUCs differ, from `val_test_gap` and the data
    set's `counts()` (malignant breasts per split)."""
    below = int((gap["val AUC"] < gap["test AUC, windows (reported)"]).sum())
    total = (gap["test AUC, windows (reported)"] - gap["val AUC"]).mean()
    windows = (gap["test AUC, windows (reported)"] - gap["test AUC, whole crops"]).mean()
    return (f"Validation AUC is below the reported test AUC for {below} of {len(gap)} seeds "
            f"(test minus validation {total:+.3f} on average). Scoring the test split on whole "
            f"crops, as validation is scored, moves it by {-windows:+.3f}: the test-time windows "
            f"account for {windows:+.3f} of the gap and the splits themselves for "
            f"{total - windows:+.3f} (validation holds {counts.loc['val', 'malignant']} "
            f"malignant breasts, test {counts.loc['test', 'malignant']}: different cases, and "
            "each AUC on few positives).")


def table1(prof: Profile, executor: Executor | None = None, store: Path | None = None
           ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, list[RunDir]]]:
    """Table 1 (uni-view models and model variants): (summary, learning-rate search, the
    final runs per group)."""
    groups = {name: lr_settings(prof, model, exp) for name, (model, exp) in TABLE1.items()}
    search, final = search_then_repeat(prof, groups, executor, store)
    return summary(final, paper.TABLE1), search, final


def uniview_curves(prof: Profile, executor: Executor | None = None,
                   store: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Figure 3: per-epoch metrics of CC-only and MLO-only models over the sampled rates.

    Returns (long table of metrics with view, lr and seed, the runs' results table)."""
    cfgs = [config(prof, f"uni_{view}", lr, s, "uniview")
            for view in ("cc", "mlo") for lr in learning_rates(prof, "uniview")
            for s in range(prof.search_seeds)]
    runs = sweep(cfgs, executor or default_executor(prof), store)
    curves = []
    for run in runs:
        m = run.metrics()
        if m.empty:
            continue
        m.insert(0, "view", run.cfg.model.removeprefix("uni_").upper())
        m.insert(1, "lr", run.cfg.lr)
        m.insert(2, "seed", run.cfg.seed)
        curves.append(m)
    return pd.concat(curves, ignore_index=True), results(runs)
DYNAMICS_LRS = (1e-5, 1e-4, 1e-3)  # Figures 4-5, 6 and 7
CONDITIONS = {"MLO shortcut on (default)": {},
              "control: shortcut off": {"mlo": {"shortcut_strength": 0.0}}}
# Appendix A: LCA runs train on shrunken epochs (10% of the positive and of the negative
# exams of a regular epoch), for about six regular epochs' worth, with windows of 60
# iterations; the loss is measured on each shrunken epoch's own sample. Six of the paper's
# 100 epochs are the start of training: profiles that train fewer epochs record the first
# half of theirs (at least one).
LCA_FRACTION, LCA_REGULAR_EPOCHS, LCA_WINDOW = 0.1, 6, 60
LCA_WINDOWS_PER_EPOCH = 3  # at least this many windows per shrunken epoch


def lca_window(iterations: int) -> int:
    """k: the paper's 60 iterations, shortened on small profiles so that a shrunken epoch of
    `iterations` holds at least LCA_WINDOWS_PER_EPOCH windows (the paper's 970 exams make
    about 485 iterations: 9 windows, the last one shorter)."""
    return max(1, min(LCA_WINDOW, iterations // LCA_WINDOWS_PER_EPOCH))


def lca_setup(prof: Profile) -> dict:
    """The LCA runs' config fields at this profile: shrunken epochs, their number (the
    paper's share of training, six regular epochs' worth of 100, and at least one regular
    epoch's worth), the window k, and one validation per regular epoch's worth."""
    data = prepare(prof.dataset, prof.name, prof.data_root, progress=False, **prof.data_knobs)
    batches = len(train_loader(data, 0, channels=1, fraction=LCA_FRACTION))
    regular = max(1, round(prof.epochs * LCA_REGULAR_EPOCHS / 100))  # the paper: 6 of 100
    per_regular = round(1 / LCA_FRACTION)
    return dict(epoch_fraction=LCA_FRACTION, epochs_override=regular * per_regular,
                lca_every=lca_window(batches), val_every=per_regular)


def dynamics_runs(prof: Profile, executor: Executor | None = None, store: Path | None = None
                  ) -> dict[str, dict[tuple[str, float], RunDir]]:
    """Joint ResNet at the paper's three learning rates on the default data, and at 1e-4 on
    the control data (no MLO shortcut), twice: `norms`, regular runs over the profile's whole
    training (gradient norms, Figures 4a, 6a, 7a), and `lca`, the Appendix A runs on shrunken
    epochs with online LCA (Figures 4b-7b). Returns {"norms": {(condition, lr): run},
    "lca": {...}}."""
    default, control = CONDITIONS
    wanted = [(default, lr) for lr in DYNAMICS_LRS]
    if prof.dataset == "synthetic":  # the control switches a generator knob off
        wanted.append((control, 1e-4))
    setup = lca_setup(prof)
    cfgs = {"norms": {(c, lr): config(prof, "joint", lr, 0, "dynamics", knobs=CONDITIONS[c])
                      for c, lr in wanted},
            "lca": {(c, lr): config(prof, "joint", lr, 0, "dynamics", knobs=CONDITIONS[c],
                                    **setup) for c, lr in wanted}}
    runs = sweep([c for part in cfgs.values() for c in part.values()],
                 executor or default_executor(prof), store)
    by_cfg = {r.cfg.digest(): r for r in runs}
    return {kind: {key: by_cfg[c.digest()] for key, c in part.items()}
            for kind, part in cfgs.items()}


def dynamics_summary(runs: dict[str, dict[tuple[str, float], RunDir]]) -> pd.DataFrame:
    """Per condition and learning rate: how often and by how much MLO's gradient norm exceeds
    CC's over a whole regular run, each column's share of the loss reduction allocated by
    LCA in the shrunken-epoch run, the quadrature's accuracy and cost, and what RK4 alone
    (no refinement) would have allocated."""
    rows = []
    for key, lca_run in runs["lca"].items():
        norm_run = runs["norms"][key]
        g, w = norm_run.dynamics("grad_norms"), lca_run.dynamics("lca")
        if g.empty or w.empty:  # e.g. diverged in its first epoch
            for run in (norm_run, lca_run):
                warnings.warn(f"{run.path}: state {run.status()['state']!r}; the pair is left "
                              "out of the summary", stacklevel=2)
            continue
        cond, lr = key
        rows.append({"condition": cond, "lr": lr,
                     "iterations with |g_MLO| > |g_CC|": (g.mlo > g.cc).mean(),
                     "median |g_MLO| / |g_CC|": (g.mlo / g.cc).median(),
                     "LCA CC": w.cc.sum(), "LCA MLO": w.mlo.sum(), "LCA shared": w.shared.sum(),
                     "MLO share of the reduction": mlo_share(w),
                     "max |error|": w.error.abs().max(),
                     "mean Simpson sub-intervals": w.splits.mean(),
                     # What the windows would say without the refinement (RK4, 2 sub-intervals).
                     "MLO share, RK4 only": mlo_share(w, RK4),
                     "max |error|, RK4 only": (w[f"{RK4}error"].abs().max(skipna=False)
                                               if f"{RK4}error" in w else float("nan")),
                     "val AUC (best, regular run)": norm_run.status().get("best_val_auc"),
                     "val AUC (best, LCA run)": lca_run.status().get("best_val_auc")})
    return pd.DataFrame(rows).set_index(["condition", "lr"])


def uniview_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Figure 3's numbers per view: mean epoch of the best validation AUC over the runs, and
    the run with the best validation AUC (its AUCs and learning rate) beside the paper's
    test AUC. `runs` is the results table of `uniview_curves`."""
    done = runs[runs.state == "done"].assign(
        view=lambda t: t.model.str.removeprefix("uni_").str.upper())
    # Best validation AUC first; without one (single-class validation split), lowest loss.
    auc, loss = (done.reindex(columns=[c])[c].astype(float) for c in ("val_auc", "val_loss"))
    order = sorted(done.index, reverse=True, key=lambda i: selection_score(
        {"val_auc_malignant": auc[i], "val_loss": loss[i]}))
    best = done.loc[order].groupby("view").head(1).set_index("view")
    reference = {"CC": paper.TABLE1["uni-view CC"][0], "MLO": paper.TABLE1["uni-view MLO"][0]}
    return pd.DataFrame({
        "mean epoch of best val AUC (ours)": done.groupby("view").best_epoch.mean() + 1,
        "best val AUC (ours)": best.val_auc.round(3),
        "its test AUC (ours)": best.test_auc.round(3),
        "its learning rate": best.lr.map("{:.3g}".format),
        "test AUC (paper)": pd.Series(reference),
    })
