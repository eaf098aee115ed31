"""Beyond the paper (notebook 08, Table 7): the balancing methods later work built for this
imbalance, on Joint ResNet with the paper's protocol, beside Joint ResNet, Modality Dropout
and Shared ResNet.

  * OGM-GE (Peng et al., CVPR 2022; mvlib.methods.ogm), trained as its reference trains it: SGD with
    momentum 0.9, weight decay 1e-4 and a x0.1 step at 70% of the epochs (RunConfig.optimizer
    'sgd'; GeWu-Lab/OGM-GE_CVPR2022 main.py 246-247), its own learning rate searched
    log-uniformly in [1e-4, 1e-2] around the reference's 1e-3 (main.py 37) jointly with alpha
    in [0.05, 1], as many settings as Modality Dropout's search (`hp_samples` at each of two
    base rates). The Adam variant of earlier versions is not in Table 7: under Adam's
    per-parameter scaling a slowly varying k is largely normalised away, and a second row
    would cost as much as the first;
  * the greedy-learning re-balancing of Wu et al. (ICML 2022), our adaptation to sum fusion
    (mvlib.methods.rebalance, hold 'input': re-balancing steps train every parameter, only the
    caring view's cross-view input held, as the reference's): the reference's epsilon 0.01 and
    Q = 5, at Joint ResNet's winning learning rate (like Gradient Blending's fixed rate,
    nothing of its own is searched).
Each group's winner is repeated with the profile's `method_seeds` (else `seeds`). Without
heatmaps (unless the profile leaves it out: `method_image_only`), each method
keeps its winning setting; re-balancing trains at the image-only Joint ResNet's rate
(Table 3's search), OGM-GE at its own SGD rate (an Adam rate says nothing about SGD). On the
synthetic testbed, each winner and Joint ResNet's winner are trained again on the control
data (the MLO cue switched off) to see whether the method lets the planted cue in less than
Joint ResNet does, each at the rate Table 7 reports it at: re-balancing and Joint ResNet at
one rate.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mvlib.core import paper, paths
from mvlib.core.atomic import write_atomic
from mvlib.engine.search import BASE_LRS
from mvlib.executors.sweep import Executor, default_executor, sweep
from mvlib.experiment.profiles import Profile
from mvlib.experiment.runs import RunConfig, RunDir
from mvlib.instruments import reliance, stats
from mvlib.methods import ogm
from mvlib.methods.rebalance import EPSILON, STEPS, rebalancing_share
from mvlib.study import (
    mechanism,
    plots,
    protocol,
    testbed,
    without_heatmaps,
)
from mvlib.study.claims import Claim, verdict
from mvlib.study.plots import BELOW
from mvlib.study.protocol import SYNTHETIC, config, search_then_repeat, summary

EXPERIMENT = "balancing"
OGM, REBALANCE = "+ OGM-GE", "+ Re-balancing (adapted)"
SGD_JOINT = "Joint ResNet (SGD)"  # OGM-GE's own baseline: its optimiser, modulation off
METHODS = (OGM, REBALANCE)
BASELINES = ("Joint ResNet", "+ Modality Dropout", "Shared ResNet")
JOINT = BASELINES[0]  # its winning setting (Table 1): the testbed's comparison
OGM_LR_RANGE = (1e-4, 1e-2)  # SGD rates: a decade either side of the reference's 1e-3
OGM_OPTIMIZER = "sgd"  # the reference's (main.py 246; its --optimizer flag is never read)
REBALANCE_SETTING = {"epsilon": EPSILON, "steps": STEPS, "hold": "input"}


def ogm_settings(n: int, seed: int) -> list[tuple[float, float]]:
    """n (learning rate, alpha) pairs for OGM-GE, log-uniform in OGM_LR_RANGE and
    ogm.ALPHA_RANGE by Latin hypercube (each of n equal log-strata of each range holds one
    value, strata paired at random; 3 digits): with the laptop's 2 settings, one rate falls
    on each side of the reference's 1e-3, where independent draws could both miss it."""
    rng = np.random.default_rng(seed)
    lo, hi = np.log([OGM_LR_RANGE[0], ogm.ALPHA_RANGE[0]]), np.log([OGM_LR_RANGE[1],
                                                                    ogm.ALPHA_RANGE[1]])
    strata = np.stack([rng.permutation(n) for _ in range(2)], axis=1)
    u = (strata + rng.uniform(size=(n, 2))) / n
    return [(float(f"{lr:.3g}"), float(f"{a:.3g}")) for lr, a in np.exp(lo + u * (hi - lo))]


def method_groups(prof: Profile, joint_lr: float) -> dict[str, list[dict]]:
    """The two methods' settings (keyword arguments of `protocol.config`): OGM-GE with
    SGD, its rate and alpha searched (as many settings as Modality Dropout's search), and
    the re-balancing at Joint ResNet's winning rate `joint_lr` (it adds no hyperparameter we
    search: epsilon and Q are the reference's)."""
    n = len(BASE_LRS) * prof.hp_samples
    return {
        OGM: [dict(model="joint", lr=lr, ogm_alpha=a, optimizer=OGM_OPTIMIZER,
                   experiment=EXPERIMENT) for lr, a in ogm_settings(n, 32)],
        REBALANCE: [dict(model="joint", lr=joint_lr, experiment=EXPERIMENT,
                         rebalance=dict(REBALANCE_SETTING))],
    }


def sgd_baseline_group(prof: Profile) -> dict[str, list[dict]]:
    """OGM-GE's own baseline: Joint ResNet under OGM-GE's optimiser (SGD, the reference's
    momentum, weight decay and step) at the rates OGM-GE's search samples, modulation off,
    as the reference compares OGM-GE with a plain model trained alike."""
    n = len(BASE_LRS) * prof.hp_samples
    return {SGD_JOINT: [dict(model="joint", lr=lr, optimizer=OGM_OPTIMIZER,
                             experiment=EXPERIMENT) for lr, _ in ogm_settings(n, 32)]}


def methods(prof: Profile, executor: Executor | None = None, store: Path | None = None
            ) -> tuple[pd.DataFrame, dict[str, list[RunDir]]]:
    """Both methods' searches and repetitions: (search table, final runs). The search runs
    of OGM-GE's SGD baseline (`sgd_baseline`) and, on the synthetic data, Joint ResNet's
    testbed controls (`testbed_runs`) train beside them, whose sweep would otherwise leave a
    worker idle."""
    joint = protocol.table1_final(prof, executor, store, (JOINT,))[JOINT]
    groups = method_groups(prof, joint[0].cfg.lr)
    search = [config(prof, seed=s, **setting)
              for settings in {**groups, **sgd_baseline_group(prof)}.values()
              for setting in settings for s in range(prof.search_seeds)]
    seeds = set(prof.seed_list(prof.testbed_seeds))
    extra = ([mechanism.control_config(r.cfg) for r in joint if r.cfg.seed in seeds]
             if prof.dataset == "synthetic" else [])
    sweep(search + extra, executor or default_executor(prof), store)
    return search_then_repeat(method_profile(prof), groups, executor, store)


def sgd_baseline(prof: Profile, executor: Executor | None = None, store: Path | None = None
                 ) -> tuple[pd.DataFrame, dict[str, list[RunDir]]]:
    """OGM-GE's baseline (`sgd_baseline_group`) searched and repeated like OGM-GE:
    (search table, final runs)."""
    return search_then_repeat(method_profile(prof), sgd_baseline_group(prof), executor, store)


def method_profile(prof: Profile) -> Profile:
    """`prof` with the methods' repetitions (`method_seeds`, else `seeds`): the laptop
    profile repeats them with 3 seeds to stay inside its 60 minutes."""
    return replace(prof, seeds=prof.method_seeds or prof.seeds)


def _method_fields(cfg: RunConfig) -> dict:
    return dict(ogm_alpha=cfg.ogm_alpha, ogm_fc=cfg.ogm_fc, rebalance=cfg.rebalance,
                optimizer=cfg.optimizer)


def baselines(prof: Profile, executor: Executor | None = None, store: Path | None = None
              ) -> tuple[dict[str, list[RunDir]], dict[str, list[RunDir]]]:
    """Joint ResNet, Modality Dropout and Shared ResNet: their final runs with heatmaps
    (Tables 1-2) and without (Table 3; empty when the data set has no heatmaps)."""
    with_maps = {**protocol.table1_final(prof, executor, store,
                                            ("Joint ResNet", "Shared ResNet")),
                 "+ Modality Dropout": protocol.regularizers(prof, executor, store)[1][
                     "+ Modality Dropout"]}
    image_only = {n: [RunDir(c, store) for c in cs] for n, cs in
                  without_heatmaps.no_heatmap_settings(prof, executor, store).items()}
    return ({n: with_maps[n] for n in BASELINES},
            {n: image_only[n] for n in BASELINES if n in image_only})


def image_only(prof: Profile, final: dict[str, list[RunDir]],
               base_image_only: dict[str, list[RunDir]], executor: Executor | None = None,
               store: Path | None = None) -> dict[str, list[RunDir]]:
    """Each method's winning setting on the image channel alone, the profile's `seeds` seeds:
    Adam runs at the rate notebook 06 chose for the image-only Joint ResNet (in
    `base_image_only`), SGD runs (OGM-GE) at their own winning rate. Empty when there is no
    such baseline (a data set without heatmaps: every run above already read the image
    alone) or when the profile leaves them out (`method_image_only`: the laptop's budget)."""
    if not base_image_only.get("Joint ResNet") or not prof.method_image_only:
        return {}
    joint_lr = base_image_only["Joint ResNet"][0].cfg.lr

    def rate(cfg: RunConfig) -> float:
        return cfg.lr if cfg.optimizer != "adam" else joint_lr

    cfgs = {name: [config(prof, "joint", rate(runs[0].cfg), s, EXPERIMENT, channels=1,
                          epochs_override=runs[0].cfg.epochs, **_method_fields(runs[0].cfg))
                   for s in prof.seed_list(method_profile(prof).seeds)]
            for name, runs in final.items()}
    done = sweep([c for cs in cfgs.values() for c in cs], executor or default_executor(prof),
                 store)
    by_cfg = {r.cfg.digest(): r for r in done}
    return {name: [by_cfg[c.digest()] for c in cs] for name, cs in cfgs.items()}


def table7(with_maps: dict[str, list[RunDir]], without: dict[str, list[RunDir]]
           ) -> pd.DataFrame:
    """Table 7 (ours): per group, test AUC with and without heatmaps (mean over seeds, seed x
    case 95% interval) and view reliance with heatmaps (Table 6's columns: MLO's dependence
    share, CC only, MLO only, utilisation rates; mvlib.instruments.reliance.table6), numeric
    columns for the CSV."""
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
    for col, name in (("s_mlo (train)", "s_MLO, training split"),
                      ("s_mlo (test)", "s_MLO, test split"), ("cc_only", "CC only"),
                      ("mlo_only", "MLO only"), ("u(mlo|cc)", "u(mlo|cc)"),
                      ("u(cc|mlo)", "u(cc|mlo)"), ("d_util", "d_util")):
        if col in t:
            out[name] = cells(col, f"{col} lo", f"{col} hi")
    return out


def write_table7(t: pd.DataFrame, prof: Profile) -> list[Path]:
    """Table 7 as CSV (values and bounds as columns) and as a rendered PNG."""
    csv = paths.figures(prof.tag) / "table7.csv"
    write_atomic(csv, lambda p: t.to_csv(p))
    title = (f"Table 7 (ours): later balancing methods ({prof.dataset} data, "
             f"{prof.name} profile)")
    plots.savefig(plots.render_table(table7_display(t), title), "table7", prof,
                  close=True)
    return [csv, csv.with_suffix(".png")]


def table7_claims(t: pd.DataFrame, compared: pd.DataFrame | None,
                  store: Path | None = None) -> pd.DataFrame:
    """Table 7's computed verdicts: for each method, "improves Joint ResNet" with and without
    heatmaps (`mvlib.study.claims.verdict`: the interval of A - B over seeds and test cases;
    OGM-GE against Joint ResNet under its own SGD set-up where Table 7 has that row) and
    "reduces Joint ResNet's reliance on the planted MLO cue" (`reliance_claims`, from the
    testbed comparison `compared`; None on real data, where no testbed exists)."""
    runs = {"Table 7": t[["runs"]]}
    if t["image only runs"].notna().any():
        runs["Table 7, image only"] = t[["image only runs"]].rename(
            columns={"image only runs": "runs"})
    rows = []
    for m in METHODS:
        name = m.removeprefix("+ ")
        for table, prefix in (("Table 7", ""), ("Table 7, image only", "without heatmaps, ")):
            if table in runs and pd.notna(runs[table].loc[m, "runs"]):
                base = (SGD_JOINT if m == OGM and SGD_JOINT in runs[table].index
                        and pd.notna(runs[table].loc[SGD_JOINT, "runs"]) else "Joint ResNet")
                note = ("both under OGM-GE's SGD set-up, rates searched alike: the difference "
                        "is the modulation's" if base == SGD_JOINT else
                        "OGM-GE trains with its reference's SGD, Joint ResNet with Adam: the "
                        "difference is the method's and the optimizer's together"
                        if m == OGM else "")
                text = (f"{prefix}{name} improves Joint ResNet"
                        + (" under the same SGD set-up" if base == SGD_JOINT else ""))
                claim = Claim(text, (table, m), (table, base), "08", note=note)
                rows.append(verdict(claim, runs, store))
    auc = pd.DataFrame(rows).set_index("claim")
    if compared is None:
        rel = pd.DataFrame({"verdict": "not tested", "why": "no testbed on real data",
                            "ours (A vs B)": "-"}, index=pd.Index(
            [f"{m.removeprefix('+ ')} reduces Joint ResNet's reliance on the planted MLO cue"
             for m in METHODS], name="claim"))
    else:
        rel = testbed.reduces_reliance(compared, t, METHODS)
        rel["ours (A vs B)"] = "-"
        ogm = rel.index.str.startswith("OGM-GE") & ~rel.verdict.str.startswith("not ")
        rel.loc[ogm, "why"] = rel.loc[ogm, "why"] + (
            "; against Joint ResNet under Adam: OGM-GE's SGD baseline has no control runs, so "
            "the difference is the modulation's and the optimiser's together")
    return pd.concat([auc, rel]).assign(notebook="08")[
        ["notebook", "ours (A vs B)", "diff", "lo", "hi", "p", "verdict", "why"]]


TESTBED_JOINT = "Joint ResNet (notebook 02)"


def control_configs(prof: Profile, runs: list[RunDir]) -> list[RunConfig]:
    """The control-data runs of a group's winning setting (its first run's config), the
    first `testbed_seeds` seeds: `mechanism.control_config`, kept in this notebook's folder."""
    cfg = runs[0].cfg
    return [mechanism.control_config(replace(cfg, seed=s), experiment=EXPERIMENT)
            for s in prof.seed_list(prof.testbed_seeds)]


def testbed_runs(prof: Profile, final: dict[str, list[RunDir]],
                 executor: Executor | None = None, store: Path | None = None
                 ) -> dict[str, dict[str, dict]]:
    """Per group, Joint ResNet's winning setting (Table 1's final runs, group JOINT) first and
    then each method's: its final runs of the first `testbed_seeds` seeds on the planted data
    and the same seeds on the control data at the same setting, in the layout of
    `testbed.runs` (regular runs only: no LCA). Every group runs at the rate Table 7 reports
    it at; re-balancing trains at Joint ResNet's winning rate, so the two share one rate."""
    joint = protocol.table1_final(prof, executor, store, (JOINT,))[JOINT]
    groups = {JOINT: joint, **final}
    seeds = prof.seed_list(prof.testbed_seeds)
    control = {name: control_configs(prof, runs) for name, runs in final.items()}
    done = sweep([c for cs in control.values() for c in cs], executor or default_executor(prof),
                 store)
    by_cfg = {r.cfg.digest(): r for r in done}
    controls = {name: [by_cfg[c.digest()] for c in cs] for name, cs in control.items()}
    controls[JOINT] = mechanism.control_runs(prof, (JOINT,), executor, store)[JOINT]
    out = {}
    for name, runs in groups.items():
        planted = {r.cfg.seed: r for r in runs if r.cfg.seed in seeds}
        out[name] = {"norms": {**{(testbed.PLANTED, s): planted[s] for s in seeds},
                               **{(testbed.CONTROL, r.cfg.seed): r for r in controls[name]}},
                     "lca": {}}
    return out


def testbed_verdicts(runs: dict[str, dict[str, dict]], prof: Profile,
                     executor: Executor | None = None, store: Path | None = None
                     ) -> pd.DataFrame:
    """Per group (Joint ResNet's testbed of notebook 02 at its rate 1e-4, then the groups of
    `testbed_runs`) and instrument (gradient norms, view reliance): planted - control with
    its interval and whether the planted cue shows (`testbed.verdicts`)."""
    groups = {TESTBED_JOINT: testbed.runs(prof, executor=executor, store=store), **runs}
    parts = {name: testbed.verdicts(tb, instruments=testbed.REGULAR_RUN_INSTRUMENTS)
             for name, tb in groups.items()}
    return pd.concat(parts, names=["group", "instrument"])


CUE_TEST = testbed.CUE_TEST


def interaction(runs: dict[str, dict[str, dict]]) -> pd.DataFrame:
    """Table 7's rows of the mechanism (`mechanism.interaction_table`) from `testbed_runs`:
    each method's test AUC effect against Joint ResNet on the planted and the control data,
    and the interaction (each method at the setting Table 7 reports it at; OGM-GE under SGD
    against Joint ResNet under Adam, whose control runs these are)."""
    def runs_of(tb: dict, cond: str) -> list[RunDir]:
        return [r for (c, _), r in sorted(tb["norms"].items()) if c == cond]

    return mechanism.interaction_table({n: runs_of(tb, testbed.PLANTED) for n, tb in runs.items()},
                                       {n: runs_of(tb, testbed.CONTROL) for n, tb in runs.items()})


def testbed_comparison(runs: dict[str, dict[str, dict]], instruments: tuple[str, ...]
                       ) -> pd.DataFrame:
    """`testbed.compare_with_joint` of each method's testbed against Joint ResNet's winning
    setting (`runs[JOINT]`, the same seeds)."""
    return testbed.compare_with_joint({n: tb for n, tb in runs.items() if n != JOINT},
                                      runs[JOINT], instruments)


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


def dynamics_table(final: dict[str, list[RunDir]]) -> pd.DataFrame:
    """What the gradient norms and the methods' own records read on each method's seed-0
    run (rows: methods): the iterations where both views had a gradient, the share where
    MLO's norm exceeds CC's and the median MLO / CC ratio; OGM-GE's modulated steps, the share
    with CC dominant, the median rho_CC and k of the dominant view; the re-balancing's share
    of re-balanced steps (all, and after the first epoch), the steps holding each view and the
    last speed gap d."""
    rows = []
    for name, runs in final.items():
        run = runs[0]
        row = {"method": name, "state": run.state, "lr": run.cfg.lr}
        if run.done:
            g, b = run.dynamics("grad_norms"), run.dynamics("balance")
            both = g[(g.cc > 0) & (g.mlo > 0)]  # a re-balancing step holds one view
            row |= {"both views": len(both), "MLO above CC": (both.mlo > both.cc).mean(),
                    "median MLO/CC": testbed.grad_ratio(g)}
            if name == OGM:
                on = b[b.modulated.astype(bool)]
                row |= {"modulated": len(on), "CC dominant": (on.rho_cc > 1).mean(),
                        "median rho_CC": on.rho_cc.median(),
                        "median k dominant": on[["k_cc", "k_mlo"]].min(axis=1).median()}
            else:
                share = rebalancing_share(b)
                row |= {"re-balanced": b.rebalancing.astype(bool).mean(),
                        "re-balanced after epoch 0": _later_share(share),
                        "CC held": share["CC held"].sum(), "MLO held": share["MLO held"].sum(),
                        "last d": b.d.dropna().iloc[-1]}
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def dynamics_markdown(table: pd.DataFrame) -> str:
    """`dynamics_table` in words, a line per method."""
    lines = []
    for name, r in table.iterrows():
        if r.state != "done":
            lines.append(f"* **{name}**: the seed-0 run {r.state}.")
            continue
        text = (f"* **{name}** (seed 0, lr {r.lr:g}): in the {int(r['both views'])} iterations "
                f"where both views had a gradient, MLO's gradient norm exceeds CC's in "
                f"{r['MLO above CC']:.0%} (median ratio {r['median MLO/CC']:.2f})")
        if name == OGM:
            text += (f"; over the {int(r.modulated)} modulated steps CC was the dominant view in "
                     f"{r['CC dominant']:.0%} (median rho_CC {r['median rho_CC']:.2f}; "
                     f"median k of the dominant view {r['median k dominant']:.2f})")
        else:
            text += (f"; {r['re-balanced']:.0%} of the steps re-balanced, "
                     f"{_percent(r['re-balanced after epoch 0'])} after the first epoch (the "
                     f"faster view held at its mean in the slower view's loss: CC in "
                     f"{int(r['CC held'])}, MLO in {int(r['MLO held'])}); the last speed gap "
                     f"d = {r['last d']:+.3f}")
        lines.append(text + ".")
    return "\n".join(lines)


def _later_share(share: pd.DataFrame) -> float:
    """The share of re-balancing steps after the first epoch (NaN if none)."""
    later = share[share.index >= 1]
    return later.rebalancing.sum() / later.steps.sum() if later.steps.sum() else float("nan")


def _percent(x: float) -> str:
    return "-" if x != x else f"{x:.0%}"


def rebalancing_shares(runs: dict[str, list[RunDir]]) -> pd.DataFrame:
    """The share of re-balancing steps per epoch (rows) of each re-balancing run (columns:
    '<group>, seed <s>'), from its dynamics/balance_e*.csv (`rebalance.rebalancing_share`);
    runs that did not finish are left out."""
    cols = {f"{name}, seed {r.cfg.seed}": rebalancing_share(r.dynamics("balance")).share
            for name, rs in runs.items() for r in rs if r.done}
    return pd.DataFrame(cols).rename_axis("epoch")


def rebalancing_table(runs: dict[str, list[RunDir]]) -> pd.DataFrame:
    """What the re-balancing did in each run (rows: group, seed): the share of re-balancing
    steps after the first epoch, against the reference's ceiling Q / (Q + 1) while
    |d| > epsilon, the re-balanced steps of all steps, and the steps holding each view."""
    rows = []
    for name, rs in runs.items():
        for r in rs:
            row = {"group": name, "seed": r.cfg.seed, "state": r.state}
            if r.done:
                share = rebalancing_share(r.dynamics("balance"))
                q = r.cfg.rebalance["steps"]
                row |= {"after epoch 0": _later_share(share), "Q": q, "ceiling": q / (q + 1),
                        "re-balanced": share.rebalancing.sum(), "steps": share.steps.sum(),
                        "CC held": share["CC held"].sum(), "MLO held": share["MLO held"].sum()}
            rows.append(row)
    return pd.DataFrame(rows)


def rebalancing_markdown(table: pd.DataFrame) -> str:
    """`rebalancing_table` in words, a line per run."""
    lines = []
    for _, r in table.iterrows():
        if r["state"] != "done":
            lines.append(f"* **{r['group']}**, seed {r['seed']}: {r['state']}.")
            continue
        q = int(r["Q"])
        lines.append(f"* **{r['group']}**, seed {r['seed']}: {_percent(r['after epoch 0'])} of "
                     f"the steps after the first epoch re-balanced (ceiling {q}/{q + 1} = "
                     f"{r['ceiling']:.0%}), {int(r['re-balanced'])} of {int(r['steps'])} in "
                     f"all; CC held in {int(r['CC held'])}, MLO in {int(r['MLO held'])}.")
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
        "\nAgainst Joint ResNet's winning setting (the cue's effect under the method minus "
        "under Joint ResNet, the same seeds, 95% interval over seeds and breasts):",
        *lines(compared, lambda r: f"({r['rate (method)']} against Joint ResNet's "
                                   f"{r['rate (Joint ResNet)']}) effect "
                                   f"{r['effect (method)']:+.3f} against "
                                   f"{r['effect (Joint ResNet)']:+.3f}, difference "
                                   f"{r['diff']:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}], "
                                   f"p = {r.p:.3f}: **{r.verdict}**.")])


def synthesis_markdown(claims: pd.DataFrame, compared: pd.DataFrame | None = None) -> str:
    """Notebook 08's synthesis: per method, what its Table 7 claims (`claims`) and, on the
    synthetic data, its testbed comparison with Joint ResNet (`compared`) came to, and
    whether any method fixed the imbalance at this budget."""
    lines, held = [], []
    for m in METHODS:
        name = m.removeprefix("+ ")
        mine = claims[[name in c for c in claims.index]]
        parts = [f"{c.replace(m + ' ', '').replace(name + ' ', '')}: **{r.verdict}**"
                 + ("" if r["diff"] != r["diff"] else
                    f" ({r['diff']:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}])")
                 for c, r in mine.iterrows()]
        held += [c for c, r in mine.iterrows() if r.verdict in ("holds", "consistent")
                 or (r.verdict.endswith(SYNTHETIC) and " > " in r.verdict)]
        if compared is not None and len(compared):
            rows = compared[compared.index.get_level_values(0) == m]
            parts += [f"on the testbed, the cue's effect against Joint ResNet's ({inst}): "
                      f"**{r.verdict}**" for (_, inst), r in rows.iterrows()]
        lines.append(f"* **{name}**: " + ("; ".join(parts) if parts else "nothing judged")
                     + ".")
    lines.append("" if held else
                 "\nNo claim that a method improves Joint ResNet or reduces its reliance on MLO "
                 "holds at this budget (an inconclusive verdict means not detected at this "
                 "budget, not shown absent).")
    if held:
        lines.append("\nHolding at this budget: " + "; ".join(held) + ".")
    return "\n".join(lines).rstrip()


def balance_figure(ogm_run: RunDir, rebalance_run: RunDir, smooth: int = 10) -> plt.Figure:
    """Notebook 08: what each balancing method did during a run. (a) OGM-GE: rho_cc =
    s_cc / s_mlo per iteration and the coefficient k of each view (running mean over `smooth`
    iterations; the shaded epochs are modulated). (b) Re-balancing: the speed gap d =
    log10(mu_cc / mu_mlo) after each regular step (left axis), and the share of re-balancing
    steps per epoch by the view held at its mean (stacked bars, right axis)."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 3.8))
    shares = b.twinx()
    b.set_zorder(shares.get_zorder() + 1)  # the gap's line over the bars
    b.patch.set_visible(False)
    o, r = ogm_run.dynamics("balance"), rebalance_run.dynamics("balance")
    if not o.empty:
        x = o.epoch + o.iteration / o.epoch.map(o.groupby("epoch").iteration.max() + 1)
        a.plot(x, o.rho_cc.rolling(smooth, min_periods=1).mean(), color="black",
               label="rho_cc = s_CC / s_MLO")
        for v, color in (("cc", "tab:blue"), ("mlo", "tab:orange")):
            a.plot(x, o[f"k_{v}"].rolling(smooth, min_periods=1).mean(), color=color,
                   label=f"k_{v.upper()}")
        on = o[o.modulated.astype(bool)]
        if not on.empty:
            a.axvspan(0, on.epoch.max() + 1, color="gray", alpha=0.12, label="modulated")
    a.axhline(1, color="gray", lw=0.8, ls="--")
    a.set(xlabel="epoch", ylabel="rho_CC, k (1 = unmodulated)",
          title=f"(a) OGM-GE, alpha {ogm_run.cfg.ogm_alpha:g}")
    if not r.empty:
        reg = r[~r.rebalancing.astype(bool)]
        x = reg.epoch + reg.iteration / reg.epoch.map(r.groupby("epoch").iteration.max() + 1)
        b.plot(x, reg.d, color="black", label="d = log10(mu_CC / mu_MLO) (left)")
        steps = r.groupby("epoch").size()
        bottom = pd.Series(0.0, index=steps.index)
        for v, color in (("cc", "tab:blue"), ("mlo", "tab:orange")):
            held = (r[r.held.astype(str) == v].groupby("epoch").size() / steps)
            held = held.reindex(steps.index).fillna(0)
            shares.bar(held.index + 0.5, held, bottom=bottom, width=0.8, alpha=0.35,
                       color=color, label=f"re-balancing steps, {v.upper()} held (right)")
            bottom += held
        eps = rebalance_run.cfg.rebalance["epsilon"]
        b.axhspan(-eps, eps, color="gray", alpha=0.2, label=f"|d| <= epsilon = {eps:g}")
    b.axhline(0, color="gray", lw=0.8)
    b.set(xlabel="epoch", ylabel="speed gap d = log10(mu_CC / mu_MLO)",
          title="(b) re-balancing (adapted)")
    shares.set(ylabel="share of the epoch's steps", ylim=(0, 1.05))
    handles, labels = b.get_legend_handles_labels()
    more = shares.get_legend_handles_labels()
    a.legend(ncol=2, **BELOW)
    b.legend(handles + more[0], labels + more[1], ncol=2, **BELOW)
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def method_dynamics_figure(run: RunDir, title: str, smooth: int = 10) -> plt.Figure:
    """Notebook 08, one method's seed-0 run: (a) gradient norms of the CC and MLO groups per
    iteration (running mean over `smooth`), (b) view reliance after each epoch (validation AUC
    full / CC only / MLO only); notebook 02's figure without its LCA panel."""
    g = run.dynamics("grad_norms")
    if g.empty:  # a run that diverged before its first record
        fig, ax = plt.subplots(figsize=(6, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, f"{title}: no dynamics recorded (state {run.state})",
                ha="center", va="center")
        return fig
    x = g.epoch + g.iteration / g.epoch.map(g.groupby("epoch").iteration.max() + 1)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    for col, color in (("cc", "tab:blue"), ("mlo", "tab:orange")):
        a.plot(x, g[col].rolling(smooth, min_periods=1).mean().to_numpy(), color=color,
               label=col.upper())
    a.set(xlabel="epoch", ylabel="gradient norm", title=f"(a) gradient norms, {title}")
    plots.reliance_panel(b, run, "(b) view reliance (ours)")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend(ncol=4, **BELOW)
    fig.tight_layout()
    return fig


def rebalancing_share_figure(shares: pd.DataFrame, steps: int) -> plt.Figure:
    """Notebook 08: the share of re-balancing steps per epoch, one line per run (`shares`:
    epochs x runs, `balancing_methods.rebalancing_shares`), against the Q / (Q + 1) that the
    reference re-balances while the speed gap stays outside +-epsilon (Q = `steps`)."""
    fig, ax = plt.subplots(figsize=(6, 3.3))
    for col in shares.columns:
        ax.plot(shares.index + 1, shares[col], marker="o", alpha=0.7, label=col)
    ax.axhline(steps / (steps + 1), color="gray", ls="--", lw=0.8,
               label=f"Q / (Q + 1) = {steps}/{steps + 1}")
    ax.set(xlabel="epoch", ylabel="share of re-balancing steps", ylim=(-0.03, 1.03),
           title="re-balancing steps per epoch")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig
