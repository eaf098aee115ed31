"""Section 6.2 and Appendix C, Tables 4-5 (notebook 05): Gradient Blending's weights
(Wang et al., CVPR 2020) estimated from per-view and joint learning curves, the blended
models they train, and the ablation of the estimate's choices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mvlib import blending, paper
from mvlib.profiles import Profile
from mvlib.runs import RunDir
from mvlib.study.protocol import (
    config,
    search_then_repeat,
    summary,
)
from mvlib.sweep import Executor, default_executor, sweep

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
        if run.status()["state"] != "done":
            raise RuntimeError(f"{run.path}: the {run.cfg.model} curve run "
                               f"{run.status()['state']}; Gradient Blending has no weights")
    return dict(zip(cfgs, runs, strict=True))


def blending_weights(runs: dict[str, RunDir]) -> pd.DataFrame:
    """Table 4 (whole validation set; both measures, both windows) and the 10%-subset
    estimates Table 5 uses. One row per estimate: the validation breasts it uses (and how many
    are malignant), the window's checkpoints, w_joint, w_cc, w_mlo at full precision (round
    only for display: a weight of 3e-4 is not 0), or NaN with the reason when the estimate is
    undefined (no model generalised over the window)."""
    sizes = validation_sizes(next(iter(runs.values())))
    rows = []
    for validation, measure, label, terms in blending_terms(runs):
        row = {"validation": validation, "measure": measure, "window": label,
               **sizes[validation]}
        if isinstance(terms, str):
            row.update({f"w_{k}": np.nan for k in ("joint", "cc", "mlo")}, note=terms)
        else:
            w = terms["weight"]
            guards = "; ".join(f"{k}: {g}" for k, g in terms.guard.items() if g)
            row.update({"from": int(terms["from"].iloc[0]), "to": int(terms["to"].iloc[0]),
                        **{f"w_{k}": float(w[k]) for k in ("joint", "cc", "mlo")}},
                       note=guards)
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
    """For every estimate (validation set, measure, window): the per-model G, O, unguarded
    G / O^2, guard and weight of `blending.window_terms`, or the reason it is undefined."""
    curves = {k: r.checkpoints() for k, r in runs.items()}
    subset = {k: blending.subset_curve(curves[k], r.val_predictions(), SUBSET)
              for k, r in runs.items()}
    out = []
    for validation, source, windows in (("whole", curves, blending.WINDOWS),
                                        ("10%", subset, {"[0, 100]": (0.0, 1.0)})):
        for measure in blending.MEASURES:
            for label, window in windows.items():
                try:
                    terms = blending.window_terms(source, measure, window)
                except ValueError as e:
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


def untrainable(weights: dict[str, float]) -> str:
    """Why a weight set trains no blended model ('' when it does): one rule for Tables 2 and
    5. Only an undefined estimate (no model generalised over the window) trains none; a
    w_joint of 0 trains at its limit w_joint -> 0+ (`heads.blended_loss`), so the joint head,
    which makes every prediction, learns in every blended model."""
    return "" if all(np.isfinite(v) for v in weights.values()) else "undefined estimate"


def blend_settings(weights: pd.DataFrame) -> list[dict]:
    """Table 2's Gradient Blending settings: one per defined Table 4 estimate, each distinct
    weight set once (estimates that agree train one model)."""
    table4 = weights[weights.validation == "whole"]
    settings: list[dict] = []
    for w in (_weights(r) for _, r in table4.iterrows()):
        if not untrainable(w) and blend_setting(w) not in settings:
            settings.append(blend_setting(w))
    return settings


def blended_models(prof: Profile, weights: pd.DataFrame, executor: Executor | None = None,
                   store: Path | None = None) -> tuple[pd.DataFrame, dict[str, list[RunDir]]]:
    """The '+ Gradient Blending' group of Table 2: one setting per defined Table 4 estimate
    (`blend_settings`), the winner by mean validation AUC repeated. Returns
    (search table, final runs); both empty when no estimate qualifies."""
    settings = blend_settings(weights)
    if not settings:
        return pd.DataFrame(), {}
    return search_then_repeat(prof, {"+ Gradient Blending": settings}, executor, store)


def ablation_settings(weights: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Table 5's weight sets: equal, and each 10%-subset estimate with CC and MLO swapped
    (whether each trains is `untrainable`'s rule, as for Table 2)."""
    sets = {"equal weights": {"joint": 1 / 3, "cc": 1 / 3, "mlo": 1 / 3}}
    for _, r in weights[(weights.validation == "10%") & weights.w_joint.notna()].iterrows():
        name = "loss" if r.measure == "loss" else "AUC"
        w = _weights(r)
        sets[name] = w
        sets[f"{name}, swapped"] = {**w, "cc": w["mlo"], "mlo": w["cc"]}
    return sets


def blending_ablation(prof: Profile, weights: pd.DataFrame, executor: Executor | None = None,
                      store: Path | None = None) -> pd.DataFrame:
    """Table 5: each weight set that trains a model (`untrainable`: the rule of Table 2)
    trained with `search_seeds` seeds; mean test AUC with its interval over seeds and
    test cases (with one seed, DeLong's of the test cases alone) beside the paper's. `note`
    says why a set was not trained, or that it repeats an earlier set's weights (then its
    runs are that set's: one config)."""
    sets = ablation_settings(weights)
    first: dict[tuple, str] = {}
    notes = {}
    for name, w in sets.items():
        key = tuple(w[k] for k in ("joint", "cc", "mlo"))
        why = untrainable(w)
        notes[name] = (f"not trained: {why}" if why else
                       f"the same weights as '{first[key]}': the same runs" if key in first
                       else "")
        first.setdefault(key, name)
    trained = {n: w for n, w in sets.items() if not untrainable(w)}
    cfgs = {name: [config(prof, seed=s, **blend_setting(w)) for s in range(prof.search_seeds)]
            for name, w in trained.items()}
    runs = sweep([c for cs in cfgs.values() for c in cs],
                 executor or default_executor(prof), store)
    by_cfg = {r.cfg.digest(): r for r in runs}
    rows = []
    for name, w in sets.items():
        ref = paper.TABLE5.get(name)
        row = {"weights": name, **{f"w_{k}": v for k, v in w.items()},
               "test AUC (ours)": "-", "runs done": "0/0", "note": notes[name],
               "weights (paper)": ", ".join(f"{v:.3f}" for v in ref[0]) if ref else "",
               "test AUC (paper)": ref[1] if ref else None,
               "auc_mean": np.nan, "auc_lo": np.nan, "auc_hi": np.nan, "runs": ""}
        if name in cfgs:
            s = summary({name: [by_cfg[c.digest()] for c in cfgs[name]]}, {}).iloc[0]
            row.update({"test AUC (ours)": s["AUC (ours)"], "runs done": s["runs done"],
                        "auc_mean": s.auc_mean, "auc_lo": s.auc_lo, "auc_hi": s.auc_hi,
                        "runs": s.runs})
        rows.append(row)
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


def blending_markdown(gb: dict, joint_final: dict[str, list[RunDir]]) -> str:
    """Notebook 05's closing text from `gradient_blending`'s result and Joint ResNet's final
    runs (`table1_final`): the estimates and the guards that fired, the blended model beside
    Joint ResNet, and Table 5 best first with what was not trained."""
    w = gb["weights"]
    lines = ["**Table 4, our estimates:** " + "; ".join(
        f"by {r.measure} over {r.window}: "
        + (f"w_joint {r.w_joint:.4g}, w_CC {r.w_cc:.4g}, w_MLO {r.w_mlo:.4g}"
           if r.w_joint == r.w_joint else "undefined")
        + (f" (guard: {r.note})" if r.note else "")
        for r in w[w.validation == "whole"].itertuples()) + "."]
    part = w[w.validation == "10%"].iloc[0]
    lines.append(f"**The 10% subset** holds {part.breasts} validation breasts, {part.malignant} "
                 "of them malignant: its estimates rest on that many cases.")
    fired = [f"{m} by {meas} over {win} ({val} validation set): {g}"
             for (val, meas, win, m), g in terms_table(gb["curves"]).guard.items() if g]
    lines.append("**Guards:** " + ("; ".join(fired) if fired else
                                    "none fired: every weight is G / O² normalised") + ".")
    joint = summary(joint_final, paper.TABLE1).iloc[0]
    if gb["final"]:
        blend = summary(gb["final"], paper.TABLE2).iloc[0]
        lines.append(
            f"**Blended model vs Joint ResNet** (test AUC, mean over seeds with its 95% "
            f"interval; 3x ensemble): {blend['AUC (ours)']} ({blend['3x ensemble (ours)']}) "
            f"against {joint['AUC (ours)']} ({joint['3x ensemble (ours)']}); the paper: 0.870 "
            "against 0.872. Notebook 07 judges the difference.")
        lines.extend(limit_markdown(gb["search"]))
    else:
        lines.append("**No blended model:** no Table 4 estimate is defined.")
    t5 = gb["ablation"]
    trained = t5.dropna(subset=["auc_mean"]).sort_values("auc_mean", ascending=False)
    if len(trained):
        lines.append("**Table 5, best first:** " + "; ".join(
            f"{k} {v}" for k, v in trained["test AUC (ours)"].items())
            + " (the paper: equal weights best, 0.870)." + (
                " One seed per weight set: its differences are single runs, not evidence."
                if trained["runs done"].str.endswith("/1").all() else ""))
    if skipped := [f"{k} ({n})" for k, n in t5.note.items() if n]:
        lines.append("**Table 5, noted:** " + "; ".join(skipped) + ".")
    return "\n\n".join(lines)


def limit_markdown(search: pd.DataFrame) -> list[str]:
    """What the limit w_joint -> 0+ leaves to train, for each searched weight set with
    w_joint = 0: the columns learn from their extra heads only, so a view whose weight is
    0 too keeps its column's initial weights."""
    lines = []
    for r in search.drop_duplicates(["w_joint", "w_cc", "w_mlo"]).itertuples():
        if r.w_joint != 0:
            continue
        still = [v.upper() for v in ("cc", "mlo") if getattr(r, f"w_{v}") == 0]
        lines.append(
            f"**w_joint = 0** (w_CC {r.w_cc:.4g}, w_MLO {r.w_mlo:.4g}) trained at its limit "
            "w_joint -> 0+: the joint head and FC layers learned from L_joint on the columns' "
            "features, the columns from their extra heads only"
            + (f"; the {' and '.join(still)} column's weights stayed at their initial values "
               "(its weight is 0 as well), so the joint head read it as a random feature map"
               if still else "") + ".")
    return lines
