"""The paper's mechanism on the testbed (notebook 07): every recipe of Tables 1 and 2 on the
planted data (the default: an MLO cue that predicts cancer in the training split only) and on
the control data (the same generator, the cue drawn independently of the label in every
split), each at the setting the planted search chose, the first `testbed_seeds` seeds.

Synthetic data cannot decide an NYU comparison: a recipe that mutes MLO wins on the planted
data by construction. What they can decide is the mechanism (Wu et al. 2020, Sections 5-6):
does the cue make Joint ResNet worse than it would be without it, and does a recipe counteract
that? Per recipe R against Joint ResNet J, on the test AUC:
  effect on planted  = R_planted - J_planted,   effect on control = R_control - J_control,
  interaction        = effect on planted - effect on control
(`stats.compare_effects`: seeds independent, DeLong's covariance of all runs on the same test
breasts). R **counteracts the planted cue** when the interaction's 95% interval lies above 0,
**makes it worse** below 0, else **no interaction detected at this budget**; a recipe at
chance on either condition (`stats.at_chance`) tests nothing. The control effect says what R
costs or gains with no cue. Joint ResNet's own planted - control is what the cue costs it.

Settings are the planted searches' (no search on the control: it would double the budget).
Uni-view CC reads only CC images, which the control leaves unchanged (checked: the two data
sets' CC arrays are compared), so its planted runs are its control runs, and its interaction
is exactly Joint ResNet's control - planted (`stats.compare_recipes`: the same runs are not
counted twice). Pretraining on the
control starts from the control's best uni-view columns, as Appendix B on the planted data.
Gradient Blending has no control runs: with no usable weight estimate it trains no model.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from mvlib.executors.sweep import Executor, default_executor, sweep
from mvlib.experiment.prepare import prepare
from mvlib.experiment.profiles import Profile
from mvlib.experiment.runs import RunConfig, RunDir
from mvlib.instruments import dependence, reliance, stats
from mvlib.study import protocol, testbed, training_dynamics

PLANTED, CONTROL = training_dynamics.CONDITIONS
EXPERIMENT = "control"
JOINT, UNI_CC = "Joint ResNet", "uni-view CC"
TABLE1_RECIPES = (UNI_CC, "uni-view MLO", "Split ResNet", JOINT, "Shared ResNet")
TABLE2_RECIPES = (JOINT, "+ Pretraining", "+ Split Learning Rates", "+ Modality Dropout")
RECIPES = (*TABLE1_RECIPES, *TABLE2_RECIPES[1:])


def planted_runs(prof: Profile, names: tuple[str, ...] = RECIPES,
                 executor: Executor | None = None, store: Path | None = None
                 ) -> dict[str, list[RunDir]]:
    """The final runs of Tables 1 and 2 of the recipes `names`, the first `testbed_seeds`
    seeds (Table 2's searches are read only when a name needs them)."""
    t1 = tuple(n for n in names if n in TABLE1_RECIPES)
    final = dict(protocol.table1_final(prof, executor, store, t1)) if t1 else {}
    if any(n not in TABLE1_RECIPES for n in names):
        final.update(protocol.regularizers(prof, executor, store)[1])
    seeds = set(prof.seed_list(prof.testbed_seeds))
    return {n: [r for r in final[n] if r.cfg.seed in seeds] for n in RECIPES
            if n in names and n in final}


def control_knobs(knobs: dict) -> dict:
    """Data knobs with the MLO cue switched off, the other knobs kept."""
    return {**knobs, "mlo": {**knobs.get("mlo", {}),
                             **training_dynamics.CONDITIONS[CONTROL]["mlo"]}}


def control_config(cfg: RunConfig, init_from: dict[str, str] | None = None,
                   experiment: str = EXPERIMENT) -> RunConfig:
    """`cfg` on the control data: its knobs with the MLO cue off, in the control folder."""
    return replace(cfg, knobs=control_knobs(cfg.knobs), experiment=experiment,
                   init_from=init_from if init_from is not None else cfg.init_from)


def cc_unchanged(prof: Profile) -> bool:
    """Whether the control data set's CC images equal the planted one's (every split): then
    a CC-only model trains alike on both."""
    planted = prepare(prof.dataset, prof.name, prof.data_root, progress=False,
                      **prof.data_knobs)
    control = prepare(prof.dataset, prof.name, prof.data_root, progress=False,
                      **control_knobs(prof.data_knobs))
    return np.array_equal(np.asarray(planted.cc[:]), np.asarray(control.cc[:]))


def control_runs(prof: Profile, names: tuple[str, ...] = RECIPES,
                 executor: Executor | None = None, store: Path | None = None
                 ) -> dict[str, list[RunDir]]:
    """The control runs of `names` (the same settings and seeds as `planted_runs`), trained
    where the store lacks them. Pretraining's control fine-tunes the best control uni-view
    columns, so the uni-view models train first."""
    if prof.dataset != "synthetic":
        raise ValueError("the control data switch off the synthetic MLO cue: synthetic only")
    views = (UNI_CC, "uni-view MLO") if "+ Pretraining" in names else ()
    planted = planted_runs(prof, tuple(dict.fromkeys((*names, *views))), executor, store)
    executor = executor or default_executor(prof)
    same_cc = UNI_CC in planted and cc_unchanged(prof)
    first = [n for n in names if n != "+ Pretraining" and not (n == UNI_CC and same_cc)]
    if "+ Pretraining" in names:
        first += [n for n in ("uni-view MLO",) if n not in first]
        if not same_cc:
            first += [n for n in (UNI_CC,) if n not in first]
    cfgs = {n: [control_config(r.cfg) for r in planted[n]] for n in first if n in planted}
    done = sweep([c for cs in cfgs.values() for c in cs], executor, store)
    by_cfg = {r.cfg.digest(): r for r in done}
    out = {n: [by_cfg[c.digest()] for c in cs] for n, cs in cfgs.items()}
    if same_cc:
        out[UNI_CC] = planted[UNI_CC]
    if "+ Pretraining" in names and "+ Pretraining" in planted:
        views = {v: protocol.best_run(out[n], f"{n} (control)").ref
                 for v, n in (("cc", UNI_CC), ("mlo", "uni-view MLO"))}
        pre = [control_config(r.cfg, views) for r in planted["+ Pretraining"]]
        out["+ Pretraining"] = sweep(pre, executor, store)
    return {n: out[n] for n in names if n in out}


def interaction(prof: Profile, names: tuple[str, ...] = RECIPES,
                executor: Executor | None = None, store: Path | None = None
                ) -> pd.DataFrame | None:
    """`interaction_table` of the recipes `names` (Joint ResNet added: every effect is against
    it), training the control runs the store lacks; None on real data (no control there)."""
    if prof.dataset != "synthetic":
        return None
    names = tuple(dict.fromkeys((JOINT, *names)))
    return interaction_table(planted_runs(prof, names, executor, store),
                             control_runs(prof, names, executor, store))


def _ref(run: RunDir) -> str:
    return getattr(run, "ref", str(id(run)))


def _scores(runs: list[RunDir]) -> tuple[np.ndarray, list[np.ndarray]] | None:
    """Labels and each finished run's test scores (breast order), or None without one."""
    preds = [r.predictions().sort_values("breast_id") for r in runs
             if r.done]
    if not preds:
        return None
    ids = preds[0].breast_id.to_numpy()
    if any(not np.array_equal(p.breast_id.to_numpy(), ids) for p in preds):
        raise ValueError("runs scored on different test breasts")
    return preds[0].malignant.to_numpy(), [p.p_malignant.to_numpy() for p in preds]


def interaction_table(planted: dict[str, list[RunDir]], control: dict[str, list[RunDir]],
                      level: float = 0.95) -> pd.DataFrame:
    """Per recipe: test AUC on each condition (mean over seeds, interval), the effect against
    Joint ResNet on each (A - J), the interaction (planted effect - control effect) with its
    interval and p, the verdict on the mechanism and why. Joint ResNet's row holds the cue's
    cost to it (planted - control) in its interaction columns."""
    scored = {(n, c): _scores(runs) for c, group in ((PLANTED, planted), (CONTROL, control))
              for n, runs in group.items()}
    y = next(s[0] for s in scored.values() if s is not None)
    if any(s is not None and not np.array_equal(s[0], y) for s in scored.values()):
        raise ValueError("the planted and control runs were scored on different test breasts")
    rows = []
    for name in [*[n for n in RECIPES if n in planted], *[n for n in planted
                                                          if n not in RECIPES]]:
        row: dict = {"recipe": name, "seeds (planted, control)": "-"}
        p, c = scored.get((name, PLANTED)), scored.get((name, CONTROL))
        for cond, s in ((PLANTED, p), (CONTROL, c)):
            key = "planted" if cond == PLANTED else "control"
            if s is None:
                row.update({f"AUC {key}": np.nan, f"AUC {key} lo": np.nan,
                            f"AUC {key} hi": np.nan})
                continue
            m, lo, hi = stats.recipe_ci(y, s[1], level)
            row.update({f"AUC {key}": m, f"AUC {key} lo": lo, f"AUC {key} hi": hi})
        if p is None or c is None:
            rows.append({**row, "verdict": "not tested", "why": "a condition has no finished run"})
            continue
        row["seeds (planted, control)"] = f"{len(p[1])}, {len(c[1])}"
        chance = [f"{name} on the {k} data: {why}" for k, s in (("planted", p), ("control", c))
                  if (why := stats.at_chance(y, s[1], level))]
        jp, jc = scored.get((JOINT, PLANTED)), scored.get((JOINT, CONTROL))
        if name == JOINT:
            r = stats.compare_recipes(y, p[1], c[1], level)
            rows.append({**row, "interaction": r["diff"], "interaction lo": r["lo"],
                         "interaction hi": r["hi"], "p": r["p"],
                         "verdict": ("not tested: a condition has one run" if r["lo"] != r["lo"]
                                     else "the cue's cost to Joint ResNet (planted - control)"),
                         "why": "; ".join(chance)})
            continue
        if jp is None or jc is None:
            rows.append({**row, "verdict": "not tested", "why": "Joint ResNet has no runs"})
            continue
        chance += [f"{JOINT} on the {k} data: {why}" for k, s in (("planted", jp),
                                                                  ("control", jc))
                   if (why := stats.at_chance(y, s[1], level))]
        ep, ec = (stats.compare_recipes(y, a[1], b[1], level) for a, b in ((p, jp), (c, jc)))
        if [_ref(r) for r in planted[name]] == [_ref(r) for r in control[name]]:
            # the same runs on both conditions (uni-view CC): the interaction is exactly
            # Joint ResNet's control - planted, and must not count the runs' spread twice
            r = stats.compare_recipes(y, jc[1], jp[1], level)
        else:
            r = stats.compare_effects(y, (p[1], jp[1]), (c[1], jc[1]), level)
        row.update({"effect planted": ep["diff"], "effect planted lo": ep["lo"],
                    "effect planted hi": ep["hi"], "effect control": ec["diff"],
                    "effect control lo": ec["lo"], "effect control hi": ec["hi"],
                    "interaction": r["diff"], "interaction lo": r["lo"],
                    "interaction hi": r["hi"], "p": r["p"], "mdd": r["mdd"]})
        if chance:
            rows.append({**row, "verdict": "not testable at this budget",
                         "why": "; ".join(chance)})
            continue
        if r["lo"] != r["lo"]:
            rows.append({**row, "verdict": "not tested: a condition has one run (no seed "
                         "spread to estimate)", "why": ""})
            continue
        verdict = ("counteracts the planted cue" if r["lo"] > 0 else
                   "makes it worse" if r["hi"] < 0 else
                   "no interaction detected at this budget")
        rows.append({**row, "verdict": verdict, "why": (
            f"interaction {r['diff']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}], "
            f"{stats.p_text(r['p'])}; detectable with 80% power: {r['mdd']:.3f}")})
    return pd.DataFrame(rows).set_index("recipe")


def interaction_markdown(table: pd.DataFrame) -> str:
    """What the interaction table says, generated from it: the cue's cost to Joint ResNet,
    whether two views beat one with no cue (Joint ResNet - uni-view CC on the control), and
    each recipe's verdict with what it costs or gains with no cue."""
    def cell(r, col: str, sign: float = 1.0) -> str:
        if col.startswith("AUC"):
            return stats.interval_cell(r[col], r[f"{col} lo"], r[f"{col} hi"])
        lo, hi = sorted((sign * r[f"{col} lo"], sign * r[f"{col} hi"]))
        return f"{sign * r[col]:+.3f} [{lo:+.3f}, {hi:+.3f}]"

    head, lines = [], []
    j = table.loc[JOINT] if JOINT in table.index else None
    if j is not None and j.get("interaction lo", np.nan) == j.get("interaction lo", np.nan):
        side = ("lowers" if j["interaction hi"] < 0 else "raises" if j["interaction lo"] > 0
                else "does not detectably move")
        head.append(f"**The cue's cost to Joint ResNet:** test AUC {cell(j, 'AUC planted')} "
                    f"on the planted data against {cell(j, 'AUC control')} on the control, "
                    f"a difference of {cell(j, 'interaction')}: at this budget the planted "
                    f"cue {side} Joint ResNet's test AUC.")
    u = table.loc[UNI_CC] if UNI_CC in table.index else None
    if u is not None and u.get("effect control lo", np.nan) == u.get("effect control lo",
                                                                       np.nan):
        lo, hi = -u["effect control hi"], -u["effect control lo"]
        side = ("two views beat one" if lo > 0 else "uni-view CC beats Joint ResNet"
                if hi < 0 else "no difference is detected at this budget")
        head.append(f"**With no cue, do two views beat one?** On the control, Joint ResNet - "
                    f"uni-view CC = {cell(u, 'effect control', -1.0)}: {side}. On the planted "
                    f"data the same difference is {cell(u, 'effect planted', -1.0)}.")
    for name, r in table.iterrows():
        if name == JOINT:
            continue
        text = f"* **{name}**: {r.verdict}"
        if r.get("interaction lo", np.nan) == r.get("interaction lo", np.nan):
            gain = ("gains" if r["effect control lo"] > 0 else "costs" if
                    r["effect control hi"] < 0 else "neither gains nor costs detectably")
            text += (f" (interaction {cell(r, 'interaction')}); with no cue it {gain} against "
                     f"Joint ResNet ({cell(r, 'effect control')})")
        elif isinstance(r.why, str) and r.why:
            text += f" ({r.why})"
        lines.append(text + ".")
    return "\n\n".join([*head, "\n".join(lines)])


def interaction_figure(table: pd.DataFrame):
    """Each recipe's test AUC on the control (x) against the planted data (y), with 95%
    intervals; the diagonal is 'the cue changes nothing'; uni-view CC and Joint ResNet
    marked."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    t = table.dropna(subset=["AUC planted", "AUC control"])
    for name, r in t.iterrows():
        special = name in (JOINT, UNI_CC)
        ax.errorbar(r["AUC control"], r["AUC planted"],
                    xerr=[[r["AUC control"] - r["AUC control lo"]],
                          [r["AUC control hi"] - r["AUC control"]]],
                    yerr=[[r["AUC planted"] - r["AUC planted lo"]],
                          [r["AUC planted hi"] - r["AUC planted"]]],
                    fmt="s" if special else "o", ms=8 if special else 5, capsize=2,
                    color="C3" if name == JOINT else "C0" if name == UNI_CC else "0.35")
        ax.annotate(name, (r["AUC control"], r["AUC planted"]), textcoords="offset points",
                    xytext=(5, 4), fontsize=8, fontweight="bold" if special else "normal")
    lo = min(0.45, float(t[["AUC planted lo", "AUC control lo"]].min().min()) - 0.02)
    ax.plot([lo, 1], [lo, 1], color="0.6", lw=1, ls="--", label="planted = control")
    ax.axhline(0.5, color="0.85", lw=1)
    ax.axvline(0.5, color="0.85", lw=1)
    ax.set(xlim=(lo, 1), ylim=(lo, 1), xlabel="test AUC on the control data (no cue)",
           ylabel="test AUC on the planted data (MLO cue)",
           title="Each recipe on both conditions (mean over seeds, 95% intervals)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def reliance_comparison(prof: Profile, names: tuple[str, ...], found: pd.DataFrame,
                        executor: Executor | None = None, store: Path | None = None
                        ) -> pd.DataFrame:
    """Each recipe of `names` against Joint ResNet on the instruments the testbed validated
    (`found`: `testbed.verdicts` of notebook 02's testbed; `testbed.compared_instruments`):
    the planted cue's effect under the recipe minus under Joint ResNet, from their planted
    and control runs (`testbed.compare_with_joint`)."""
    both = tuple(dict.fromkeys((JOINT, *names)))
    planted = planted_runs(prof, both, executor, store)
    control = control_runs(prof, both, executor, store)
    tbs = {n: testbed.pair(planted[n], control[n]) for n in both}
    return testbed.compare_with_joint({n: tbs[n] for n in names}, tbs[JOINT],
                                      testbed.compared_instruments(found))


def correlation_by_condition(prof: Profile, reading: str = "s_mlo (train)",
                             executor: Executor | None = None, store: Path | None = None
                             ) -> pd.DataFrame:
    """Spearman's rank correlation of test AUC with the dependence `reading` across the
    two-view recipes' runs (`planted_runs` and `control_runs`, the first `testbed_seeds`
    seeds of each), on the planted and on the control data, each run read on its own data
    (`reliance.dependence_generalisation`; `dependence.rank_correlation`). The hypothesis
    predicts rho < 0 on the planted data (a decision that leans on the cue generalises worse)
    and no such relation on the control."""
    names = tuple(n for n in RECIPES if not n.startswith("uni-view"))
    rows = []
    for cond, groups in (("planted", planted_runs(prof, names, executor, store)),
                         ("control", control_runs(prof, names, executor, store))):
        per_run = reliance.dependence_generalisation(groups)
        r = dependence.rank_correlation(per_run[reading], per_run["test AUC"])
        rows.append({"condition": cond, "reading": reading, **r})
    return pd.DataFrame(rows).set_index("condition")


def correlation_markdown(table: pd.DataFrame) -> str:
    """The by-condition correlation in words, generated from it."""
    def side(r) -> str:
        if r.lo == r.lo:
            return ("negative" if r.hi < 0 else "positive" if r.lo > 0
                    else "not distinguishable from 0 at this budget")
        return ("distinguishable from 0" if r.p < 0.05 else
                "not distinguishable from 0 at this budget")

    parts = [f"on the {cond} data rho = {r.rho:+.2f} over {int(r.n)} runs"
             + (f" [{r.lo:+.2f}, {r.hi:+.2f}]" if r.lo == r.lo else "")
             + f", {stats.p_text(r.p)}: {side(r)}" for cond, r in table.iterrows()]
    return ("**Dependence against generalisation, by condition** (two-view recipes, "
            f"{table.reading.iloc[0]}): " + "; ".join(parts) + ". The hypothesis predicts a "
            "negative correlation on the planted data and none on the control.")
