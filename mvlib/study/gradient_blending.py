"""Section 6.2 and Appendix C, Tables 4-5 (notebook 05): Gradient Blending's weights
(Wang et al., CVPR 2020) estimated from per-view and joint learning curves, the blended
models they train, and the ablation of the estimate's choices."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from mvlib.core import paper
from mvlib.executors.sweep import Executor, default_executor, sweep
from mvlib.experiment.profiles import Profile
from mvlib.experiment.runs import RunDir
from mvlib.instruments import blending
from mvlib.study.plots import BELOW
from mvlib.study.protocol import (
    config,
    search_then_repeat,
    summary,
)

# Chance level of the training loss, the sum of two binary cross-entropies (malignant and
# benign; mvlib.models.heads.loss_fn) at p = 0.5: 2 ln 2.
CHANCE_LOSS = 2 * np.log(2)


BLEND_LR = 1e-4  # Appendix C: every Gradient Blending run uses this rate

SUBSET = 0.1  # Table 5: weights estimated on 10% of the validation set


def blending_curves(prof: Profile, executor: Executor | None = None,
                    store: Path | None = None) -> dict[str, RunDir]:
    """CC-only, MLO-only and Joint ResNet trained separately at 1e-4: the curves the
    weights are estimated from."""
    models = {"cc": "uni_cc", "mlo": "uni_mlo", "joint": "joint"}
    cfgs = {k: config(prof, m, BLEND_LR, 0, "blending", checkpoint_curves=True)
            for k, m in models.items()}
    runs = sweep(list(cfgs.values()), executor or default_executor(prof), store)
    for run in runs:
        if not run.done:
            raise RuntimeError(f"{run.path}: the {run.cfg.model} curve run "
                               f"{run.state}; Gradient Blending has no weights")
    return dict(zip(cfgs, runs, strict=True))


def blending_weights(runs: dict[str, RunDir]) -> pd.DataFrame:
    """Table 4 (whole validation set; both measures, both windows) and the 10%-subset
    estimates Table 5 uses. One row per estimate: the validation breasts it uses (and how many
    are malignant), the window's checkpoints, G / O^2's weights w_joint, w_cc, w_mlo at full
    precision (round only for display), NaN where the formula gives none, and `note`: why
    the estimate trains no model ('' when it trains one): undefined (a model with G <= 0 or
    O = 0) or at noise level (a G whose interval reaches 0; `blending.at_noise`)."""
    sizes = validation_sizes(next(iter(runs.values())))
    rows = []
    for validation, measure, label, terms in blending_terms(runs):
        if isinstance(terms, str):
            rows.append({"validation": validation, "measure": measure, "window": label,
                         **sizes[validation], "from": math.nan, "to": math.nan,
                         **{f"w_{k}": math.nan for k in ("joint", "cc", "mlo")},
                         "note": f"undefined: {terms}"})
            continue
        row = {"validation": validation, "measure": measure, "window": label,
               **sizes[validation], "from": int(terms["from"].iloc[0]),
               "to": int(terms["to"].iloc[0]),
               **{f"w_{k}": float(terms.weight[k]) for k in ("joint", "cc", "mlo")}}
        if why := blending.undefined(terms):
            row["note"] = f"undefined: {why}"
        elif why := blending.at_noise(terms):
            row["note"] = f"at noise level: {why}"
        else:
            row["note"] = ""
        rows.append(row)
    return pd.DataFrame(rows)


def validation_sizes(run: RunDir) -> dict[str, dict[str, int]]:
    """Breasts and malignant breasts of the whole validation set and of Table 5's fixed 10%
    subset (the same breasts for every model: they share the validation split)."""
    preds = run.val_predictions()
    whole = preds[preds.epoch == preds.epoch.min()]
    part = blending.subset_breasts(preds, SUBSET)
    return {name: {"breasts": len(t), "malignant": int(t.malignant.sum())}
            for name, t in (("whole", whole), ("10%", part))}


def blending_terms(runs: dict[str, RunDir]) -> list[tuple[str, str, str, pd.DataFrame | str]]:
    """For every estimate (validation set, measure, window): the per-model G with its
    interval, O, G / O^2 and weight of `blending.window_terms`, or why it cannot be
    computed."""
    curves = {k: r.checkpoints() for k, r in runs.items()}
    preds = {k: r.val_predictions() for k, r in runs.items()}
    subset = {k: blending.subset_curve(curves[k], preds[k], SUBSET) for k in runs}
    subset_preds = {k: blending.subset_predictions(preds[k], SUBSET) for k in runs}
    out = []
    for validation, source, pr, windows in (
            ("whole", curves, preds, blending.WINDOWS),
            ("10%", subset, subset_preds, {"[0, 100]": (0.0, 1.0)})):
        for measure in blending.MEASURES:
            for label, window in windows.items():
                try:
                    terms = blending.window_terms(source, measure, window, pr)
                except ValueError as e:  # e.g. no malignant validation breast: no AUC
                    terms = str(e)
                out.append((validation, measure, label, terms))
    return out


def terms_table(runs: dict[str, RunDir]) -> pd.DataFrame:
    """`blending_terms` as one table (rows: estimate and model), for notebook 05."""
    parts = {(v, m, w): t for v, m, w, t in blending_terms(runs) if not isinstance(t, str)}
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, names=["validation", "measure", "window", "model"])


def _weights(row) -> dict[str, float]:
    return {k: float(row[f"w_{k}"]) for k in ("joint", "cc", "mlo")}


def blend_setting(weights: dict[str, float]) -> dict:
    return dict(model="joint_blend", lr=BLEND_LR, blend_weights=weights, experiment="blending")


def blend_settings(weights: pd.DataFrame) -> list[dict]:
    """Table 2's Gradient Blending settings: one per Table 4 estimate that trains a model
    (empty `note`), each distinct weight set once (estimates that agree train one model)."""
    table4 = weights[(weights.validation == "whole") & (weights.note == "")]
    settings: list[dict] = []
    for w in (_weights(r) for _, r in table4.iterrows()):
        if blend_setting(w) not in settings:
            settings.append(blend_setting(w))
    return settings


def untestable(weights: pd.DataFrame) -> str:
    """Why Table 2 has no Gradient Blending model ('' when it has one): every Table 4
    estimate undefined or at noise level, each with its reason. `weights`: the estimates of
    `blending_weights`, or `table4`'s."""
    table4 = (weights[weights.validation == "whole"] if "validation" in weights
              else weights.reset_index())
    if (table4.note == "").any():
        return ""
    return ("no Table 4 estimate gives G / O^2 weights to train on: " + "; ".join(
        f"by {r.measure} over {r.window}, {r.note}" for r in table4.itertuples()))


def blended_models(prof: Profile, weights: pd.DataFrame, executor: Executor | None = None,
                   store: Path | None = None) -> tuple[pd.DataFrame, dict[str, list[RunDir]]]:
    """The '+ Gradient Blending' group of Table 2: one setting per usable Table 4 estimate
    (`blend_settings`), the winner by mean validation AUC repeated. Returns
    (search table, final runs); both empty when no estimate is usable (`untestable`)."""
    settings = blend_settings(weights)
    if not settings:
        return pd.DataFrame(), {}
    return search_then_repeat(prof, {"+ Gradient Blending": settings}, executor, store)


def ablation_settings(weights: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Table 5's weight sets: the paper's five (equal weights, its loss and AUC estimates and
    both swapped: they need no estimate of ours), then each of our 10%-subset estimates that
    trains a model (empty `note`) and its swap."""
    sets = {name: dict(zip(("joint", "cc", "mlo"), w, strict=True))
            for name, (w, _) in paper.TABLE5.items()}
    sets["equal weights"] = {"joint": 1 / 3, "cc": 1 / 3, "mlo": 1 / 3}
    for _, r in weights[(weights.validation == "10%") & (weights.note == "")].iterrows():
        name = "loss (ours)" if r.measure == "loss" else "AUC (ours)"
        w = _weights(r)
        sets[name] = w
        sets[f"{name}, swapped"] = {**w, "cc": w["mlo"], "mlo": w["cc"]}
    return sets


def ablation_seeds(prof: Profile) -> int:
    """Seeds per Table 5 weight set: the profile's `method_seeds`, else `seeds` (a single
    seed leaves Table 5's statements untested)."""
    return prof.method_seeds or prof.seeds


def blending_ablation(prof: Profile, weights: pd.DataFrame, executor: Executor | None = None,
                      store: Path | None = None) -> pd.DataFrame:
    """Table 5: each weight set of `ablation_settings` trained with `ablation_seeds` seeds;
    mean test AUC with its interval over seeds and test cases beside the paper's. `note` says
    when a set repeats an earlier set's weights (then its runs are that set's: one config)."""
    sets = ablation_settings(weights)
    first: dict[tuple, str] = {}
    notes = {}
    for name, w in sets.items():
        key = tuple(w[k] for k in ("joint", "cc", "mlo"))
        notes[name] = (f"the same weights as '{first[key]}': the same runs" if key in first
                       else "")
        first.setdefault(key, name)
    cfgs = {name: [config(prof, seed=s, **blend_setting(w))
                   for s in prof.seed_list(ablation_seeds(prof))]
            for name, w in sets.items()}
    runs = sweep([c for cs in cfgs.values() for c in cs],
                 executor or default_executor(prof), store)
    by_cfg = {r.cfg.digest(): r for r in runs}
    rows = []
    for name, w in sets.items():
        ref = paper.TABLE5.get(name)
        s = summary({name: [by_cfg[c.digest()] for c in cfgs[name]]}, {}).iloc[0]
        rows.append({"weights": name, **{f"w_{k}": v for k, v in w.items()},
                     "test AUC (ours)": s["AUC (ours)"], "runs done": s["runs done"],
                     "note": notes[name],
                     "weights (paper)": ", ".join(f"{v:.3f}" for v in ref[0]) if ref else "",
                     "test AUC (paper)": ref[1] if ref else None,
                     "auc_mean": s.auc_mean, "auc_lo": s.auc_lo, "auc_hi": s.auc_hi,
                     "runs": s.runs})
    return pd.DataFrame(rows).set_index("weights")


def table4(weights: pd.DataFrame) -> pd.DataFrame:
    """Table 4: our whole-validation-set estimates beside the paper's."""
    t = weights[weights.validation == "whole"].copy()
    t["paper (w_joint, w_cc, w_mlo)"] = [", ".join(f"{w:.3f}" for w in paper.TABLE4[(m, w)])
                                        for m, w in zip(t.measure, t.window, strict=True)]
    return t.drop(columns="validation").set_index(["measure", "window"])


def gradient_blending(prof: Profile, executor: Executor | None = None,
                      store: Path | None = None) -> dict:
    """The whole of Appendix C: curves, weights, blended models and the ablation."""
    runs = blending_curves(prof, executor, store)
    weights = blending_weights(runs)
    search, final = blended_models(prof, weights, executor, store)
    return {"curves": runs, "weights": weights, "search": search, "final": final,
            "ablation": blending_ablation(prof, weights, executor, store)}


def blended_vs_joint(gb: dict, joint_final: dict[str, list[RunDir]]) -> pd.DataFrame:
    """The test AUC summaries (`protocol.summary`) of Joint ResNet's final runs
    (`table1_final`) and, where Gradient Blending trained a model, of the blended model's:
    what notebook 05's text compares."""
    parts = [summary(joint_final, paper.TABLE1).iloc[:1]]
    if gb["final"]:
        parts.append(summary(gb["final"], paper.TABLE2).iloc[:1])
    return pd.concat(parts)


def blending_markdown(gb: dict, versus: pd.DataFrame) -> str:
    """Notebook 05's closing text from `gradient_blending`'s result and `blended_vs_joint`:
    each estimate's G / O^2 weights and why it trains no model where it does not, the blended
    model beside Joint ResNet (or why there is none), and Table 5 best first."""
    w = gb["weights"]
    lines = ["**Table 4, our estimates** (w_joint, w_CC, w_MLO from G / O², normalised): "
             + "; ".join(
                 f"by {r.measure} over {r.window}: "
                 + (f"{r.w_joint:.3g}, {r.w_cc:.3g}, {r.w_mlo:.3g}"
                    if r.w_joint == r.w_joint else "no weights")
                 + (f" ({r.note})" if r.note else " (trains a model)")
                 for r in w[w.validation == "whole"].itertuples()) + "."]
    part = w[w.validation == "10%"].iloc[0]
    lines.append(f"**The 10% subset** holds {part.breasts} validation breasts, {part.malignant} "
                 "of them malignant: " + "; ".join(
                     f"by {r.measure}: " + (f"{r.w_joint:.3g}, {r.w_cc:.3g}, {r.w_mlo:.3g}"
                                            if r.w_joint == r.w_joint else "no weights")
                     + (f" ({r.note})" if r.note else "")
                     for r in w[w.validation == "10%"].itertuples()) + ".")
    joint = versus.iloc[0]
    if len(versus) > 1:
        blend = versus.iloc[1]
        lines.append(
            f"**Blended model vs Joint ResNet** (test AUC, mean over seeds with its 95% "
            f"interval; 3x ensemble): {blend['AUC (ours)']} ({blend['3x ensemble (ours)']}) "
            f"against {joint['AUC (ours)']} ({joint['3x ensemble (ours)']}); the paper: 0.870 "
            "against 0.872. Notebook 07 judges the difference.")
    else:
        lines.append("**No blended model for Table 2:** " + untestable(w)
                     + ". Gradient Blending's Table 2 claim is not testable at this budget.")
    t5 = gb["ablation"]
    trained = t5.dropna(subset=["auc_mean"]).sort_values("auc_mean", ascending=False)
    if len(trained):
        lines.append("**Table 5, best first** (mean test AUC over "
                     f"{trained['runs done'].iloc[0].split('/')[1]} seeds, 95% interval): "
                     + "; ".join(f"{k} {v}" for k, v in trained["test AUC (ours)"].items())
                     + " (the paper: equal weights best, 0.870). Notebook 07 judges Table 5's "
                     "two statements.")
    if noted := [f"{k} ({n})" for k, n in t5.note.items() if n]:
        lines.append("**Table 5, noted:** " + "; ".join(noted) + ".")
    return "\n\n".join(lines)


def blending_curves_figure(runs: dict[str, RunDir]) -> plt.Figure:
    """The curves Gradient Blending's weights come from: train and validation loss and
    malignant AUC per epoch of the CC-only, MLO-only and joint models. The training curve is
    the checkpoint's evaluation of the training split (as the estimate uses) when the run has
    one, else the running training loss. The loss sums two cross-entropies (malignant and
    benign), so chance (p = 0.5 for both) is `CHANCE_LOSS` = 2 ln 2, drawn as a thin line."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    colors = {"cc": "tab:blue", "mlo": "tab:orange", "joint": "tab:green"}
    for name, run in runs.items():
        m = run.checkpoints()  # from the untrained model (epoch 0) where it was evaluated
        train = "train_eval" if "train_eval_loss" in m else "train"
        for ax, what in zip(axes, ("loss", "auc_malignant"), strict=True):
            ax.plot(m.epoch + 1, m[f"{train}_{what}"], ":", color=colors[name])
            ax.plot(m.epoch + 1, m[f"val_{what}"], "-", color=colors[name],
                    label=f"{name.upper()} (val solid, train dotted)")
    axes[0].axhline(CHANCE_LOSS, color="gray", lw=0.8,
                    label=f"chance: 2 ln 2 = {CHANCE_LOSS:.2f}")
    axes[1].axhline(0.5, color="gray", lw=0.8, label="chance: AUC 0.5")
    axes[0].set(xlabel="epoch", title="loss",
                ylabel=f"loss (sum of two cross-entropies;\n2 ln 2 = {CHANCE_LOSS:.2f} at chance)")
    axes[1].set(xlabel="epoch", ylabel="malignant AUC", title="AUC")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(ncol=2, **BELOW)
    fig.tight_layout()
    return fig
