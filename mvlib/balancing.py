"""Beyond the paper (notebook 08, Table 7): the balancing methods later work built for this
imbalance, on Joint ResNet with the paper's protocol, beside Joint ResNet, Modality Dropout
and Shared ResNet.

  * OGM-GE (Peng et al., CVPR 2022; mvlib.ogm): alpha searched log-uniformly in [0.05, 1],
    `hp_samples` values at each of the base rates 1e-5 and 1e-4, as Modality Dropout's rates
    are (Appendix B);
  * the greedy-learning re-balancing of Wu et al. (ICML 2022), our adaptation to sum fusion
    (mvlib.rebalance): the reference's epsilon 0.01 and Q = 5, at Joint ResNet's winning
    learning rate (like Gradient Blending's fixed rate, nothing of its own is searched).
Each group's winner is repeated with the profile's `seeds`. Without heatmaps, each method
keeps its winning setting and trains at the image-only Joint ResNet's rate (Table 3's
search). On the synthetic testbed, each winner is trained again on the control data (the
MLO cue switched off) to see whether the method still lets the planted cue in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mvlib import (
    experiments,
    ogm,
    paper,
    paths,
    plots,
    regularized,
    reliance,
    stats,
    tables,
    testbed,
)
from mvlib.atomic import write_atomic
from mvlib.dynamics import mlo_share
from mvlib.experiments import config, search_then_repeat, summary
from mvlib.profiles import Profile
from mvlib.rebalance import EPSILON, STEPS
from mvlib.runs import RunConfig, RunDir
from mvlib.search import BASE_LRS, log_uniform
from mvlib.sweep import Executor, default_executor, sweep

EXPERIMENT = "balancing"
OGM, REBALANCE = "+ OGM-GE", "+ Re-balancing (adapted)"
METHODS = (OGM, REBALANCE)
BASELINES = ("Joint ResNet", "+ Modality Dropout", "Shared ResNet")


def ogm_alphas(n: int, seed: int) -> list[float]:
    """n values of OGM-GE's alpha, log-uniform in ogm.ALPHA_RANGE (3 digits)."""
    return log_uniform(*ogm.ALPHA_RANGE, n, seed)


def method_groups(prof: Profile, joint_lr: float) -> dict[str, list[dict]]:
    """The two methods' settings (keyword arguments of `experiments.config`): OGM-GE's
    searched alphas, and the re-balancing at Joint ResNet's winning rate `joint_lr` (it adds
    no hyperparameter we search: epsilon and Q are the reference's)."""
    return {
        OGM: [dict(model="joint", lr=base, ogm_alpha=a, experiment=EXPERIMENT)
              for i, base in enumerate(BASE_LRS) for a in ogm_alphas(prof.hp_samples, 30 + i)],
        REBALANCE: [dict(model="joint", lr=joint_lr, experiment=EXPERIMENT,
                         rebalance={"epsilon": EPSILON, "steps": STEPS})],
    }


def methods(prof: Profile, executor: Executor | None = None, store: Path | None = None
            ) -> tuple[pd.DataFrame, dict[str, list[RunDir]]]:
    """Both methods' searches and repetitions: (search table, final runs)."""
    joint = regularized.table1_final(prof, executor, store, ("Joint ResNet",))["Joint ResNet"]
    return search_then_repeat(prof, method_groups(prof, joint[0].cfg.lr), executor, store)


def _method_fields(cfg: RunConfig) -> dict:
    return dict(ogm_alpha=cfg.ogm_alpha, ogm_fc=cfg.ogm_fc, rebalance=cfg.rebalance)


def baselines(prof: Profile, executor: Executor | None = None, store: Path | None = None
              ) -> tuple[dict[str, list[RunDir]], dict[str, list[RunDir]]]:
    """Joint ResNet, Modality Dropout and Shared ResNet: their final runs with heatmaps
    (Tables 1-2) and without (Table 3; empty when the data set has no heatmaps)."""
    with_maps = {**regularized.table1_final(prof, executor, store,
                                            ("Joint ResNet", "Shared ResNet")),
                 "+ Modality Dropout": regularized.regularizers(prof, executor, store)[1][
                     "+ Modality Dropout"]}
    image_only = {n: [RunDir(c, store) for c in cs] for n, cs in
                  regularized.no_heatmap_settings(prof, executor, store).items()}
    return ({n: with_maps[n] for n in BASELINES},
            {n: image_only[n] for n in BASELINES if n in image_only})


def image_only(prof: Profile, final: dict[str, list[RunDir]],
               base_image_only: dict[str, list[RunDir]], executor: Executor | None = None,
               store: Path | None = None) -> dict[str, list[RunDir]]:
    """Each method's winning setting on the image channel alone, at the rate notebook 06 chose
    for the image-only Joint ResNet (in `base_image_only`), the profile's `seeds` seeds. Empty
    when there is no such baseline (a data set without heatmaps: every run above already read
    the image alone)."""
    if not base_image_only.get("Joint ResNet"):
        return {}
    joint_lr = base_image_only["Joint ResNet"][0].cfg.lr
    cfgs = {name: [config(prof, "joint", joint_lr, s, EXPERIMENT, channels=1,
                          epochs_override=runs[0].cfg.epochs, **_method_fields(runs[0].cfg))
                   for s in prof.seed_list(prof.seeds)]
            for name, runs in final.items()}
    done = sweep([c for cs in cfgs.values() for c in cs], executor or default_executor(prof),
                 store)
    by_cfg = {r.cfg.digest(): r for r in done}
    return {name: [by_cfg[c.digest()] for c in cs] for name, cs in cfgs.items()}


def table7(with_maps: dict[str, list[RunDir]], without: dict[str, list[RunDir]]
           ) -> pd.DataFrame:
    """Table 7 (ours): per group, test AUC with and without heatmaps (mean over seeds, seed x
    case 95% interval) and view reliance with heatmaps (CC only, MLO only, utilisation rates,
    MLO only on the training split; mvlib.reliance.table6), numeric columns for the CSV."""
    auc = summary(with_maps, {})
    img = summary(without, {}) if without else pd.DataFrame()
    rel = reliance.table6(with_maps)
    out = pd.DataFrame(index=pd.Index(list(with_maps), name="group"))
    for prefix, t in (("", auc), ("image only ", img)):
        for col in ("auc_mean", "auc_lo", "auc_hi", "runs"):
            out[prefix + col] = t[col].reindex(out.index) if col in t else float("nan")
    return out.join(rel.drop(columns="runs"))


def table7_display(t: pd.DataFrame) -> pd.DataFrame:
    """Table 7 with each value and its interval in one cell, for display, and the paper's
    mean AUCs where it has the row (the methods are not in the paper)."""
    def cells(col: str, lo: str, hi: str) -> list[str]:
        return [stats.interval_cell(v, a, b) for v, a, b in zip(t[col], t[lo], t[hi], strict=True)]

    def reference(source: dict) -> list[str]:
        return [f"{source[g][0]:.3f}" if g in source else "-" for g in t.index]

    out = pd.DataFrame(index=t.index)
    out["AUC"] = cells("auc_mean", "auc_lo", "auc_hi")
    out["AUC (paper)"] = reference({**paper.TABLE1, **paper.TABLE2})
    out["AUC, image only"] = cells("image only auc_mean", "image only auc_lo",
                                   "image only auc_hi")
    out["image only (paper)"] = reference(paper.TABLE3)
    for col, name in (("cc_only", "CC only"), ("mlo_only", "MLO only"),
                      ("u(mlo|cc)", "u(mlo|cc)"), ("u(cc|mlo)", "u(cc|mlo)"),
                      ("d_util", "d_util")):
        out[name] = cells(col, f"{col} lo", f"{col} hi")
    return out


def write_table7(t: pd.DataFrame, prof: Profile) -> list[Path]:
    """Table 7 as CSV (values and bounds as columns) and as a rendered PNG."""
    csv = paths.figures(prof.tag) / "table7.csv"
    write_atomic(csv, lambda p: t.to_csv(p))
    title = (f"Table 7 (ours): later balancing methods ({prof.dataset} data, "
             f"{prof.name} profile)")
    plots.savefig(plots.render_table(table7_display(t), title), "table7", prof)
    return [csv, csv.with_suffix(".png")]


def claims(t: pd.DataFrame, with_maps: dict[str, list[RunDir]], store: Path | None = None
           ) -> pd.DataFrame:
    """Table 7's computed verdicts: for each method, "improves Joint ResNet" with and without
    heatmaps (`tables.verdict`: the seed x case interval of A - B) and "reduces Joint
    ResNet's reliance on MLO" (a lower d_util; `reliance.reliance_claims`)."""
    runs = {"Table 7": t[["runs"]]}
    if t["image only runs"].notna().any():
        runs["Table 7, image only"] = t[["image only runs"]].rename(
            columns={"image only runs": "runs"})
    rows = []
    for m in METHODS:
        name = m.removeprefix("+ ")
        for table, prefix in (("Table 7", ""), ("Table 7, image only", "without heatmaps, ")):
            if table in runs:
                claim = tables.Claim(f"{prefix}{name} improves Joint ResNet", (table, m),
                                     (table, "Joint ResNet"))
                rows.append(tables.verdict(claim, runs, store))
    auc = pd.DataFrame(rows).set_index("claim")
    rel = reliance.reliance_claims({g: with_maps[g] for g in ("Joint ResNet", *METHODS)
                                    if g in with_maps}, reducers=METHODS)
    rel["ours (A vs B)"] = "-"
    rel["why"] = ["" if r["diff"] != r["diff"] else
                  f"d_util A - B {r['diff']:+.3f}, 95% interval [{r.lo:+.3f}, {r.hi:+.3f}], "
                  f"p = {r.p:.3f}" for _, r in rel.iterrows()]
    return pd.concat([auc, rel])[["ours (A vs B)", "diff", "lo", "hi", "p", "verdict", "why"]]


def testbed_runs(prof: Profile, final: dict[str, list[RunDir]],
                 executor: Executor | None = None, store: Path | None = None
                 ) -> dict[str, dict[str, dict]]:
    """Per method: its winning setting on the planted data (its final runs, the first
    `testbed_seeds` seeds) and on the control data (the same seeds), in the layout of
    `testbed.runs` (regular runs only: no LCA)."""
    seeds = prof.seed_list(prof.testbed_seeds)
    control = {name: [config(prof, "joint", runs[0].cfg.lr, s, EXPERIMENT,
                             knobs=experiments.CONDITIONS[testbed.CONTROL],
                             epochs_override=runs[0].cfg.epochs, **_method_fields(runs[0].cfg))
                      for s in seeds] for name, runs in final.items()}
    done = sweep([c for cs in control.values() for c in cs], executor or default_executor(prof),
                 store)
    by_cfg = {r.cfg.digest(): r for r in done}
    out = {}
    for name, runs in final.items():
        planted = {r.cfg.seed: r for r in runs if r.cfg.seed in seeds}
        out[name] = {"norms": {**{(testbed.PLANTED, s): planted[s] for s in seeds},
                               **{(testbed.CONTROL, c.seed): by_cfg[c.digest()]
                                  for c in control[name]}},
                     "lca": {}}
    return out


TESTBED_JOINT = "Joint ResNet (notebook 02)"


def testbed_verdicts(runs: dict[str, dict[str, dict]], prof: Profile,
                     executor: Executor | None = None, store: Path | None = None
                     ) -> pd.DataFrame:
    """Per group (Joint ResNet's testbed of notebook 02, then each method) and instrument
    (gradient norms, view reliance): planted - control with its interval and whether the
    planted cue shows (`testbed.verdicts`)."""
    groups = {TESTBED_JOINT: testbed.runs(prof, executor=executor, store=store), **runs}
    parts = {name: testbed.verdicts(tb, instruments=testbed.REGULAR_RUN_INSTRUMENTS)
             for name, tb in groups.items()}
    return pd.concat(parts, names=["group", "instrument"])


def testbed_comparison(runs: dict[str, dict[str, dict]], prof: Profile,
                       executor: Executor | None = None, store: Path | None = None
                       ) -> pd.DataFrame:
    """Per method and view-reliance reading: does the method let the planted cue in less
    than Joint ResNet? The cue's effect (planted - control) under the method minus under
    Joint ResNet (`stats.compare_effects`); the method keeps the cue out **better** when that
    interval lies on the side of a smaller effect (MLO-only training AUC: below 0; CC-only
    test AUC, which the cue lowers: above 0), **worse** on the other, else inconclusive."""
    joint = testbed.runs(prof, executor=executor, store=store)
    rows = []
    for name, tb in runs.items():
        for instrument in ("view reliance: MLO-only AUC, training split",
                           "view reliance: CC-only AUC, test split"):
            col, sign = testbed.INSTRUMENTS[instrument]
            row = {"group": name, "instrument": instrument}
            try:
                y, m = testbed.reliance_scores(tb, col)
                y_j, j = testbed.reliance_scores(joint, col)
                if not np.array_equal(y, y_j):
                    raise ValueError("the method's and Joint ResNet's runs were scored on "
                                     "different breasts")
                r = stats.compare_effects(y, (m[testbed.PLANTED], m[testbed.CONTROL]),
                                          (j[testbed.PLANTED], j[testbed.CONTROL]))
            except ValueError as e:
                rows.append({**row, "verdict": f"not tested: {e}"})
                continue
            lo, hi = sign * r["lo"], sign * r["hi"]
            verdict = ("better than Joint ResNet" if max(lo, hi) < 0 else
                       "worse than Joint ResNet" if min(lo, hi) > 0
                       else "inconclusive at this budget")
            rows.append({**row, "effect (method)": r["effect_a"],
                         "effect (Joint ResNet)": r["effect_b"], "diff": r["diff"],
                         "lo": r["lo"], "hi": r["hi"], "p": r["p"], "verdict": verdict})
    cols = ["group", "instrument", "effect (method)", "effect (Joint ResNet)", "diff", "lo",
            "hi", "p", "verdict"]
    return pd.DataFrame(rows, columns=cols).set_index(["group", "instrument"])


def lca_runs(prof: Profile, final: dict[str, list[RunDir]], executor: Executor | None = None,
             store: Path | None = None) -> dict[str, RunDir]:
    """One LCA run per method (its winning setting, seed 0, notebook 02's shrunken epochs)
    for the gradient-norm and LCA figures."""
    setup = experiments.lca_setup(prof)
    cfgs = {name: config(prof, "joint", runs[0].cfg.lr, 0, EXPERIMENT,
                         **_method_fields(runs[0].cfg), **setup)
            for name, runs in final.items()}
    done = sweep(list(cfgs.values()), executor or default_executor(prof), store)
    by_cfg = {r.cfg.digest(): r for r in done}
    return {name: by_cfg[c.digest()] for name, c in cfgs.items()}


# --- the notebook's computed prose ---------------------------------------------------------

def claims_markdown(claims: pd.DataFrame) -> str:
    """Table 7's verdicts as Markdown, one line per claim, with the count tested at once."""
    tested = int(claims.p.notna().sum())
    lines = [f"{tested} claims tested at once, each at 95%: were no difference real, about "
             f"{0.05 * tested:.1f} of them would still come out holds or contradicted."]
    for claim, r in claims.iterrows():
        detail = "" if r.verdict.startswith("not tested") else f" ({r.why})"
        lines.append(f"* **{claim}:** {r.verdict}{detail}.")
    return "\n".join(lines)


def dynamics_markdown(final: dict[str, list[RunDir]], lca: dict[str, RunDir]) -> str:
    """What the instruments and the methods' own records read on each method's seed-0 run."""
    lines = []
    for name, runs in final.items():
        run = runs[0]
        if run.status()["state"] != "done":
            lines.append(f"* **{name}**: the seed-0 run {run.status()['state']}.")
            continue
        g, b = run.dynamics("grad_norms"), run.dynamics("balance")
        both = g[(g.cc > 0) & (g.mlo > 0)]  # a re-balancing step holds one view
        text = (f"* **{name}** (seed 0, lr {run.cfg.lr:g}): in the {len(both)} iterations where "
                f"both views had a gradient, MLO's gradient norm exceeds CC's in "
                f"{(both.mlo > both.cc).mean():.0%} (median ratio "
                f"{testbed.grad_ratio(g):.2f})")
        if lca[name].status()["state"] == "done":
            share = mlo_share(lca[name].dynamics("lca"))
            text += f"; MLO takes {share:.0%} of the loss reduction LCA allocates"
        if name == OGM:
            on = b[b.modulated.astype(bool)]
            text += (f"; over the {len(on)} modulated steps CC was the dominant view in "
                     f"{(on.rho_cc > 1).mean():.0%} (median rho_CC {on.rho_cc.median():.2f}; "
                     f"median k of the dominant view "
                     f"{on[['k_cc', 'k_mlo']].min(axis=1).median():.2f})")
        else:
            held = b[b.rebalancing.astype(bool)].held.astype(str)
            text += (f"; {b.rebalancing.astype(bool).mean():.0%} of the steps re-balanced "
                     f"(CC held in {(held == 'cc').sum()}, MLO in {(held == 'mlo').sum()}); "
                     f"the last speed gap d = {b.d.dropna().iloc[-1]:+.3f}")
        lines.append(text + ".")
    return "\n".join(lines)


def testbed_markdown(found: pd.DataFrame | None, compared: pd.DataFrame | None) -> str:
    """The testbed's readings per group, then each method's comparison with Joint ResNet."""
    if found is None:
        return "No testbed on real data."

    def lines(table: pd.DataFrame, text) -> list[str]:
        return [f"* **{group}**, {instrument}: " + (
            f"{r.verdict}." if str(r.verdict).startswith("not tested") else text(r))
            for (group, instrument), r in table.iterrows()]

    return "\n".join([
        *lines(found, lambda r: f"planted {r.planted:.3f}, control {r.control:.3f}, difference "
                                f"{r['diff']:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}]: the cue's "
                                f"effect is **{r.verdict}**."),
        "\nAgainst Joint ResNet (the cue's effect under the method minus under Joint ResNet, "
        "seed x case interval):",
        *lines(compared, lambda r: f"effect {r['effect (method)']:+.3f} against "
                                   f"{r['effect (Joint ResNet)']:+.3f}, difference "
                                   f"{r['diff']:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}], "
                                   f"p = {r.p:.3f}: **{r.verdict}**.")])
