"""Section 5's claims (the training-dynamics study) judged across seeds, as Tables 1-5's are.

Wu et al. 2020 state three observations from single runs (Figures 3 and 4), each judged here
by a 95% interval over seeds (Student's t on per-seed readings, `stats.one_sample`):
  * "the MLO models achieve their best validation AUC earlier than the CC models" (Fig. 3):
    the sign of CC minus MLO's epoch of the best validation AUC, paired by learning rate and
    seed over notebook 01's sampled rates, where censoring leaves it known (a run that peaks
    at its last epoch may peak later); an exact sign test (`fig3_claim`);
  * "||dL/d theta_MLO|| is larger than ||dL/d theta_CC|| for most of training iterations"
    (Fig. 4a): per Joint ResNet run, the share of iterations in which MLO's is larger,
    against one half;
  * MLO's columns "contribute over 50% of the loss reduction in the first 5 epochs"
    (Fig. 4b): MLO's share of the loss reduction allocated by LCA, against one half;
  * "the output of the model depends too strongly on the MLO view": on the synthetic
    testbed, the counterfactual cue test's planted - control for Joint ResNet (the known
    answer), the validated dependence reading's beside it (`dependence_claim`).
Figure 4's claims are judged at the paper's rate, 1e-5, and at 1e-4, each labelled, on
Joint ResNet's runs on the default (planted) data with the profile's `testbed_seeds` seeds at
each of the three rates (at 1e-4 the testbed's own runs). Appendix A's "MLO dominates at all
three learning rates" is judged across the three (`appendix_a_claim`). The LCA runs record
the start of training (Appendix A's shrunken epochs, six of the paper's 100 epochs' worth, at
least one regular epoch): a share of the loss reduction is read only from LCA runs that
learned their training data (`learned`: the last shrunken epoch's training AUC above one half
over seeds), since LCA allocates the training loss; on the planted data a model that learned
the cue does not generalise, so the validation AUC is shown beside it, not used. The uni-view
pairs train `testbed_seeds` seeds per rate.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from mvlib.engine.dynamics import mlo_share
from mvlib.executors.sweep import Executor, default_executor, sweep
from mvlib.experiment.profiles import Profile
from mvlib.instruments import stats
from mvlib.study import protocol, testbed, training_dynamics
from mvlib.study.protocol import SYNTHETIC

VERDICT_COLUMNS = ["claim", "notebook", "paper (A vs B)", "ours (A vs B)", "diff", "lo", "hi",
                   "p", "verdict", "why"]


def uniview_pairs(prof: Profile, executor: Executor | None = None, store: Path | None = None
                  ) -> pd.DataFrame:
    """Per sampled learning rate and seed (notebook 01's runs and `testbed_seeds` seeds in all):
    the epoch (from 1) of the best validation AUC of the CC-only and the MLO-only model, and
    whether each peaked at its last epoch (still improving when the budget ended)."""
    seeds = range(max(prof.search_seeds, prof.testbed_seeds))
    lrs = protocol.learning_rates(prof, "uniview")
    cfgs = {(v, lr, s): protocol.config(prof, f"uni_{v}", lr, s, "uniview")
            for v in ("cc", "mlo") for lr in lrs for s in seeds}
    done = sweep(list(cfgs.values()), executor or default_executor(prof), store)
    by_cfg = {r.cfg.digest(): r for r in done}
    rows = []
    for lr in lrs:
        for s in seeds:
            pair = {v: by_cfg[cfgs[(v, lr, s)].digest()] for v in ("cc", "mlo")}
            st = {v: r.status() for v, r in pair.items()}
            if any(not r.done or st[v].get("best_epoch") is None for v, r in pair.items()):
                continue  # a diverged run has no best epoch: the pair is left out
            best = {v: int(x["best_epoch"]) + 1 for v, x in st.items()}
            last = {v: b == cfgs[(v, lr, s)].epochs for v, b in best.items()}
            rows.append({"lr": lr, "seed": s, "best epoch CC": best["cc"],
                         "best epoch MLO": best["mlo"], "CC - MLO": best["cc"] - best["mlo"],
                         "at the last epoch": sum(last.values()),
                         "CC at the last epoch": last["cc"], "MLO at the last epoch": last["mlo"]})
    return pd.DataFrame(rows, columns=["lr", "seed", "best epoch CC", "best epoch MLO",
                                       "CC - MLO", "at the last epoch", "CC at the last epoch",
                                       "MLO at the last epoch"])


def censored_signs(pairs: pd.DataFrame) -> pd.Series:
    """The sign of CC - MLO's best epoch per pair, where it is known. A run that peaks at its
    last epoch is censored (its peak is that epoch or later): against an uncensored partner
    the sign is still known (CC censored: CC - MLO > 0; MLO censored: < 0); with both
    censored it is not (NaN). Ties are 0."""
    cc, mlo = pairs["CC at the last epoch"], pairs["MLO at the last epoch"]
    sign = np.sign(pairs["CC - MLO"]).astype(float)
    sign[cc & ~mlo] = 1.0
    sign[mlo & ~cc] = -1.0
    sign[cc & mlo] = np.nan
    return sign


PAPER_LR = 1e-5  # the paper's Figure 4 (Figures 6 and 7: 1e-4 and 1e-3)
TRAIN_AUC = "train AUC (LCA run, last shrunken epoch)"


def rate(lr: float) -> str:
    """A learning rate as the paper writes it: 1e-5, 1e-4, 3e-4."""
    mantissa, exponent = f"{lr:e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def reading_seeds(prof: Profile) -> list[int]:
    """The seeds of Joint ResNet's dynamics runs at each rate of Figures 4-7: the testbed's
    (`testbed_seeds`), so that a claim at any rate has a spread across seeds to judge by."""
    return prof.seed_list(prof.testbed_seeds)


def joint_readings(prof: Profile, executor: Executor | None = None, store: Path | None = None,
                   lr: float = testbed.LR) -> pd.DataFrame:
    """Per seed (`reading_seeds`) of Joint ResNet's runs at `lr` on the default data (at 1e-4
    the testbed's; on real data the same runs on the data as it is, with no control): the
    share of iterations with |g_MLO| > |g_CC| over a regular run (iterations where both views
    had a gradient), MLO's LCA share in its shrunken-epoch run, and that run's best
    validation AUC and its last shrunken epoch's training AUC (whether the model had learned
    the training data whose loss LCA allocates)."""
    seeds = reading_seeds(prof)
    setup = training_dynamics.lca_setup(prof)
    planted = training_dynamics.CONDITIONS[testbed.PLANTED]  # the data as it is (real data too)
    cfgs = {(kind, s): protocol.config(prof, "joint", lr, s, "dynamics",
                                          knobs=planted, **(setup if kind == "lca" else {}))
            for kind in ("norms", "lca") for s in seeds}
    done = sweep(list(cfgs.values()), executor or default_executor(prof), store)
    by_cfg = {r.cfg.digest(): r for r in done}
    rows = []
    for seed in seeds:
        run, lca = (by_cfg[cfgs[(kind, seed)].digest()] for kind in ("norms", "lca"))
        row = {"seed": seed, "share |g_MLO| > |g_CC|": math.nan, "LCA MLO share": math.nan,
               "val AUC (best, LCA run)": lca.status().get("best_val_auc"),
               TRAIN_AUC: math.nan}
        if run.done:
            g = run.dynamics("grad_norms")
            both = g[(g.cc > 0) & (g.mlo > 0)]
            row["share |g_MLO| > |g_CC|"] = float((both.mlo > both.cc).mean())
        if lca.done:
            row["LCA MLO share"] = mlo_share(lca.dynamics("lca"))
            row[TRAIN_AUC] = float(lca.metrics()["train_auc_malignant"].iloc[-1])
        rows.append(row)
    return pd.DataFrame(rows).set_index("seed")


def judge(claim: str, paper_says: str, ours: str, values: pd.Series, null: float,
          what: str, level: float = 0.95, unit: str = "seeds") -> dict:
    """A claim that per-seed `values` lie above `null`: **holds** when the interval of
    mean - null lies above 0, **contradicted** below, else inconclusive at this budget; not
    testable with one reading (no seed spread), not tested with none."""
    row = dict.fromkeys(VERDICT_COLUMNS, math.nan) | {"claim": claim,
                                                      "paper (A vs B)": paper_says}
    finite = values.dropna().to_numpy()
    if len(finite) == 1:  # a reading, but no spread across seeds to judge it by
        return row | {"ours (A vs B)": ours.format(mean=finite[0]),
                      "verdict": "not testable at this budget",
                      "why": f"{what}: {finite[0] - null:+.3f} from one {unit[:-1]}, no "
                             f"spread across {unit} to judge it by"}
    try:
        r = stats.one_sample(finite, null, level)
    except ValueError as e:
        return row | {"ours (A vs B)": "-", "verdict": "not tested", "why": str(e)}
    v = ("holds" if r["lo"] > 0 else "contradicted" if r["hi"] < 0
         else "inconclusive at this budget")
    return row | {"ours (A vs B)": ours.format(mean=r["mean"]), "diff": r["diff"],
                  "lo": r["lo"], "hi": r["hi"], "p": r["p"], "verdict": v,
                  "why": f"{what}: {r['diff']:+.3f}, 95% interval [{r['lo']:+.3f}, "
                         f"{r['hi']:+.3f}] (t over {r['n']} {unit}), {stats.p_text(r['p'])}"}


def fig3_claim(pairs: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Figure 3's claim judged from `uniview_pairs` (a verdict row, as `claims.verdicts`).
    A run still improving at its last epoch has a censored peak, so the epochs' mean
    difference is not a reading; the sign of CC - MLO is, where `censored_signs` knows it:
    an exact sign test (binomial, ties and unknown signs left out) on the share of pairs in
    which CC peaks later, against one half, with its Clopper-Pearson interval. Holds when
    that interval lies above one half."""
    claim = "MLO models reach their best validation AUC earlier than CC models (Fig. 3)"
    row = dict.fromkeys(VERDICT_COLUMNS, math.nan) | {"claim": claim, "notebook": "01",
                                                      "paper (A vs B)": "earlier (single runs)"}
    sign = censored_signs(pairs) if len(pairs) else pd.Series(dtype=float)
    known = sign.dropna()
    decided = known[known != 0]
    censored = int(pairs["at the last epoch"].sum()) if len(pairs) else 0
    note = (f"{censored} of {2 * len(pairs)} runs peaked at their last epoch (censored); the "
            f"sign is unknown in {int(sign.isna().sum())} pair(s) (both censored) and tied in "
            f"{int((known == 0).sum())}")
    if len(decided) < 2:
        return pd.DataFrame([row | {"ours (A vs B)": "-", "verdict": "not testable at this "
                                    "budget", "why": f"fewer than 2 pairs with a known, "
                                    f"untied sign: {note}"}],
                            columns=VERDICT_COLUMNS).set_index("claim")
    k, n = int((decided > 0).sum()), len(decided)
    test = binomtest(k, n, 0.5)
    ci = test.proportion_ci(confidence_level=level, method="exact")
    lo, hi = ci.low - 0.5, ci.high - 0.5
    v = ("holds" if lo > 0 else "contradicted" if hi < 0 else "inconclusive at this budget")
    row |= {"ours (A vs B)": f"CC later in {k} of {n} pairs", "diff": k / n - 0.5, "lo": lo,
            "hi": hi, "p": float(test.pvalue), "verdict": v,
            "why": f"share of pairs (rate and seed) in which CC peaks later, minus one half: "
                   f"{k / n - 0.5:+.3f}, {level:.0%} interval [{lo:+.3f}, {hi:+.3f}] (exact "
                   f"sign test over {n} pairs), {stats.p_text(float(test.pvalue))}; {note}"}
    return pd.DataFrame([row], columns=VERDICT_COLUMNS).set_index("claim")


def learned(readings: pd.DataFrame, level: float = 0.95) -> tuple[bool, str]:
    """Whether the LCA runs of `readings` learned their training data: the one-sample t
    interval of the last shrunken epoch's training AUC minus one half lies above 0 (a share
    of the loss reduction of a model at chance allocates noise). Returns the answer and a
    sentence saying what the runs reached."""
    auc = readings[TRAIN_AUC].astype(float).dropna()
    val = readings["val AUC (best, LCA run)"].astype(float).dropna()
    if len(auc) < 2:
        return False, (f"one LCA run's last training AUC, {auc.iloc[0]:.2f}, no spread across "
                       "seeds" if len(auc) else "no LCA run has a training AUC")
    r = stats.one_sample(auc.to_numpy(), 0.5, level)
    text = (f"last training AUC {auc.min():.2f}-{auc.max():.2f} (minus one half "
            f"{r['diff']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}])")
    if len(val):
        text += f", best validation AUC {val.min():.2f}-{val.max():.2f}"
    return bool(r["lo"] > 0), text


def fig4_claims(readings: pd.DataFrame, level: float = 0.95, lr: float = testbed.LR
                ) -> pd.DataFrame:
    """Figure 4's two claims judged from `joint_readings` at `lr`, the rate named in the
    claim (the paper's Figure 4 is at 1e-5). The LCA claim is not testable where the LCA
    runs had not learned their training data (`learned`)."""
    tag = f"lr {rate(lr)}" + (", the paper's" if lr == PAPER_LR else "")
    ok, how_far = learned(readings, level)
    lca = judge(f"MLO contributes over 50% of the loss reduction early in training (Fig. 4b, "
                f"{tag})", "over 50% in the first 5 epochs (one run at 1e-5)",
                "MLO share {mean:.3f}", readings["LCA MLO share"], 0.5,
                f"LCA share minus one half, Joint ResNet at lr {rate(lr)} (its LCA runs' "
                f"{how_far})", level)
    if not ok and lca["verdict"] not in ("not tested", "not testable at this budget"):
        lca |= {"diff": math.nan, "lo": math.nan, "hi": math.nan, "p": math.nan,
                "verdict": "not testable at this budget",
                "why": f"the LCA runs had not learned their training data: {how_far}; "
                       f"MLO's LCA share {readings['LCA MLO share'].mean():.3f}, not judged"}
    rows = [
        judge(f"|dL/d theta_MLO| > |dL/d theta_CC| for most iterations (Fig. 4a, {tag})",
              "most iterations (one run at 1e-5)", "MLO larger in {mean:.0%} of iterations",
              readings["share |g_MLO| > |g_CC|"], 0.5,
              f"share of iterations minus one half, Joint ResNet at lr {rate(lr)}", level),
        lca,
    ]
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS).assign(notebook="02").set_index("claim")


def appendix_a_claim(by_lr: dict[float, pd.DataFrame], level: float = 0.95) -> pd.DataFrame:
    """Appendix A: "MLO dominates" the loss reduction at all three learning rates (Figures 4b,
    6b, 7b). MLO's LCA share against one half at each rate (`joint_readings`): holds when it
    holds at every rate, contradicted when it is contradicted at one, not testable when a rate
    has fewer than two seeds or LCA runs that had not learned (`learned`), else inconclusive."""
    claim = "MLO's columns dominate the loss reduction at all three learning rates (Appendix A)"
    row = dict.fromkeys(VERDICT_COLUMNS, math.nan) | {
        "claim": claim, "notebook": "02", "paper (A vs B)": "at 1e-5, 1e-4 and 1e-3 (one run each)"}
    parts = {lr: judge("", "", "{mean:.3f}", r["LCA MLO share"], 0.5, "", level)
             for lr, r in sorted(by_lr.items())}
    ours = ", ".join(f"{rate(lr)}: {p['ours (A vs B)']}" for lr, p in parts.items())
    few = [rate(lr) for lr, r in sorted(by_lr.items()) if r["LCA MLO share"].notna().sum() < 2]
    unlearned = {rate(lr): learned(r, level)[1] for lr, r in sorted(by_lr.items())
                 if rate(lr) not in few and not learned(r, level)[0]}
    if few or unlearned:
        why = "; ".join([f"fewer than two seeds at lr {', '.join(few)}"] * bool(few)
                        + [f"at lr {k} the LCA runs had not learned their training data: {t}"
                           for k, t in unlearned.items()])
        return pd.DataFrame([row | {"ours (A vs B)": ours, "verdict": "not testable at this "
                                    "budget", "why": f"{why} (MLO's LCA share per rate: {ours})"}],
                            columns=VERDICT_COLUMNS).set_index("claim")
    verdicts = [p["verdict"] for p in parts.values()]
    v = ("holds" if all(x == "holds" for x in verdicts) else "contradicted"
         if "contradicted" in verdicts else "inconclusive at this budget")
    weakest = min(parts, key=lambda lr: parts[lr]["lo"])
    w = parts[weakest]
    row |= {"ours (A vs B)": ours, "diff": w["diff"], "lo": w["lo"], "hi": w["hi"],
            "p": w["p"], "verdict": v,
            "why": "MLO's LCA share minus one half per rate: " + "; ".join(
                f"{rate(lr)}: {p['diff']:+.3f} [{p['lo']:+.3f}, {p['hi']:+.3f}], {p['verdict']}"
                for lr, p in parts.items()) + f" (the row's interval: lr {rate(weakest)})"}
    return pd.DataFrame([row], columns=VERDICT_COLUMNS).set_index("claim")


DEPENDENCE_CLAIM = "The model's output depends too strongly on the MLO view (Section 5)"
# On the testbed the hypothesis is a reading of the mechanism, not of the paper's NYU models.
TESTBED_DEPENDENCE_CLAIM = ("On the testbed, Joint ResNet's output follows the planted MLO cue "
                            "(Section 5's hypothesis)")


def dependence_claim(validated: tuple[str | None, str], found: pd.DataFrame | None = None
                     ) -> pd.DataFrame:
    """"The output of the model depends too strongly on the MLO view" (Section 5's reading of
    Figures 4-7), made measurable. On the synthetic testbed (`found`: `testbed.verdicts` of
    Joint ResNet's planted and control runs) by the known answer: the counterfactual cue
    test's planted - control (does the planted model's decision move with the MLO cue more
    than the control's?), with the validated dependence reading's planted - control beside it;
    a threshold on one model's share would rest on nothing validated. That is a statement
    about the planted mechanism (the generator made the cue learnable), so the row is named
    and worded as the testbed's: **found** when the interval of planted - control lies above
    0, **opposite** below, else not found at this budget (the testbed's verdict on the cue
    test). Without a testbed (real data) it is not judged: no reading is validated there."""
    reading, why = validated
    row = dict.fromkeys(VERDICT_COLUMNS, math.nan) | {
        "claim": DEPENDENCE_CLAIM, "notebook": "07", "paper (A vs B)": "hypothesis (not measured)",
        "ours (A vs B)": "-"}
    cue = testbed.CUE_TEST
    if found is None or cue not in found.index or found.loc[cue, "diff"] != found.loc[
            cue, "diff"]:
        row |= {"verdict": "not judged", "why": why if found is None else
                "the testbed has no cue-test reading"}
        return pd.DataFrame([row], columns=VERDICT_COLUMNS).set_index("claim")
    r = found.loc[cue]
    text = (f"the marker's logit effect on Joint ResNet, planted - control: {r['diff']:+.3f}, "
            f"95% interval [{r.lo:+.3f}, {r.hi:+.3f}], {stats.p_text(r.p)}")
    named = [n for n, x in found.iterrows() if x.reading == reading]
    if named:
        x = found.loc[named[0]]
        text += (f"; {reading}, planted - control: {x['diff']:+.3f} [{x.lo:+.3f}, "
                 f"{x.hi:+.3f}] ({x.verdict})")
    row |= {"claim": TESTBED_DEPENDENCE_CLAIM,
            "ours (A vs B)": f"cue effect {r.planted:.3f} planted vs {r.control:.3f} control",
            "diff": r["diff"], "lo": r.lo, "hi": r.hi, "p": r.p,
            "verdict": r["verdict"], "why": text}
    return pd.DataFrame([row], columns=VERDICT_COLUMNS).set_index("claim")


def claims(pairs: pd.DataFrame, readings: pd.DataFrame | dict[float, pd.DataFrame],
           level: float = 0.95) -> pd.DataFrame:
    """The verdict rows of Section 5's claims from `uniview_pairs` and `joint_readings`
    (one table at 1e-4, or one per learning rate: Figure 4 at the paper's 1e-5 and at 1e-4,
    and Appendix A across all three)."""
    by_lr = readings if isinstance(readings, dict) else {testbed.LR: readings}
    return pd.concat([fig3_claim(pairs, level), dynamics_claims(by_lr, level)])


def dynamics_claims(by_lr: dict[float, pd.DataFrame], level: float = 0.95) -> pd.DataFrame:
    """Figure 4's claims at the paper's 1e-5 and at 1e-4 (where `by_lr` has readings), and
    Appendix A's across all three rates (when it has three)."""
    parts = [fig4_claims(by_lr[lr], level, lr) for lr in (PAPER_LR, testbed.LR) if lr in by_lr]
    if len(by_lr) > 2:
        parts.append(appendix_a_claim(by_lr, level))
    return pd.concat(parts)


def as_data(verdicts: pd.DataFrame, prof: Profile) -> pd.DataFrame:
    """Figure claims as the profile's data can state them: on synthetic data `on_synthetic`'s
    directions, on real data the verdicts."""
    if prof.dataset != "synthetic":
        return verdicts
    return verdicts.assign(verdict=verdicts.verdict.map(on_synthetic))


def rate_readings(prof: Profile, executor: Executor | None = None, store: Path | None = None
                  ) -> dict[float, pd.DataFrame]:
    """`joint_readings` at each of Figures 4-7's learning rates (1e-5, 1e-4, 1e-3)."""
    return {lr: joint_readings(prof, executor, store, lr) for lr in training_dynamics.DYNAMICS_LRS}


def verdicts_markdown(verdicts: pd.DataFrame) -> str:
    """Verdict rows as Markdown lines: the claim, the paper's and our reading, the verdict
    and its interval."""
    return "\n".join(f"* **{claim}**: the paper {r['paper (A vs B)']}; ours {r['ours (A vs B)']}: "
                     f"**{r.verdict}** ({r.why})." for claim, r in verdicts.iterrows())


def section5(prof: Profile, table6: pd.DataFrame, validated: tuple[str | None, str],
             executor: Executor | None = None, store: Path | None = None
             ) -> dict[str, pd.DataFrame]:
    """Section 5 judged: the uni-view pairs, the Joint ResNet readings and the verdicts of its
    four claims (the dependence claim from `table6` and the testbed's `validated` reading)."""
    pairs = uniview_pairs(prof, executor, store)
    readings = rate_readings(prof, executor, store)
    found = (testbed.verdicts(testbed.runs(prof, executor=executor, store=store),
                              instruments=testbed.REGULAR_RUN_INSTRUMENTS)
             if prof.dataset == "synthetic" else None)
    figures = as_data(claims(pairs, readings), prof)  # the dependence claim is a verdict
    verdicts = pd.concat([figures, dependence_claim(validated, found)])
    return {"pairs": pairs, "readings": readings, "verdicts": verdicts}


def on_synthetic(verdict: str) -> str:
    """A Section 5 verdict as what the synthetic data can say: the generator makes MLO's cue
    fast to learn, so the reading's side of its threshold there is by construction, not a
    verdict on the paper's NYU runs (the testbed's planted - control judges the instruments)."""
    return {"holds": f"above the threshold {SYNTHETIC}",
            "contradicted": f"below the threshold {SYNTHETIC}"}.get(verdict, verdict)
