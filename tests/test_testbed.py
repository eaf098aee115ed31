"""mvlib.testbed: the instruments' readings per run and the planted-vs-control verdicts, on
run folders written with known readings (training itself is covered by test_train and by
notebook 02 under nbval)."""

import numpy as np
import pandas as pd
import pytest

from mvlib import testbed
from mvlib.runs import RunConfig, RunDir

N = 200  # breasts per split


def _run(store, cond: str, seed: int, kind: str, ratio: float, share: float,
         cue: float) -> RunDir:
    """A finished run folder whose gradient-norm ratio, LCA share and view reliance are set:
    `cue` is how strongly its MLO part tracks the label on the training split (and how much
    its CC part is weakened on the test split)."""
    knobs = testbed.experiments.CONDITIONS[cond]
    run = RunDir(RunConfig(model="joint", lr=1e-4, seed=seed, epochs=2, profile="smoke",
                           knobs=knobs, lca_every=4 if kind == "lca" else 0), store)
    run.create()
    run.set_status(state="done")
    rng = np.random.default_rng([seed, int(100 * cue), len(kind)])
    run.write_dynamics(0, "grad_norms", [{"epoch": 0, "iteration": i, "cc": 1.0,
                                          "mlo": ratio * rng.uniform(0.98, 1.02),
                                          "shared": 0.1} for i in range(20)])
    total = -1.0
    run.write_dynamics(0, "lca", [{"epoch": 0, "iteration": 3, "cc": total * (1 - share) / 2,
                                   "mlo": total * share, "shared": total * (1 - share) / 2}])
    y = np.tile([1, 0, 0, 0], N // 4)
    parts = []
    for split in ("test", "train"):
        noise = rng.normal(size=(3, N))
        mlo = noise[0] + (cue if split == "train" else 0.3) * 4 * y
        cc = noise[1] + (2.0 - cue if split == "test" else 1.0) * y
        parts.append(pd.DataFrame({"breast_id": np.arange(N), "malignant": y, "benign": 0,
                                   "p_full": cc + mlo, "p_cc_only": cc, "p_mlo_only": mlo,
                                   "split": split}))
    pd.concat(parts).to_csv(run.path / "reliance.csv", index=False)
    return run


def _testbed(store, planted: dict, control: dict, seeds: int = 3) -> dict:
    conds = {testbed.PLANTED: planted, testbed.CONTROL: control}
    return {kind: {(c, s): _run(store, c, s, kind, v["ratio"] + 0.05 * s,
                                v["share"] + 0.02 * s, v["cue"] + 0.02 * s)
                   for c, v in conds.items() for s in range(seeds)}
            for kind in ("norms", "lca")}


STRONG = {"ratio": 2.0, "share": 0.8, "cue": 1.0}
WEAK = {"ratio": 1.0, "share": 0.5, "cue": 0.1}


def test_readings_of_one_run(tmp_path):
    tb = _testbed(tmp_path, STRONG, WEAK, seeds=2)
    r = testbed.readings(tb["norms"][(testbed.PLANTED, 0)], tb["lca"][(testbed.PLANTED, 0)])
    assert r["grad ratio"] == pytest.approx(2.0, rel=0.03)
    assert r["LCA MLO share"] == pytest.approx(0.8)
    assert r["MLO-only train AUC"] > 0.9
    table = testbed.readings_table(tb)
    assert list(table.index) == [(c, s) for c in (testbed.PLANTED, testbed.CONTROL)
                                 for s in range(2)]


def test_a_planted_cause_is_found_by_every_instrument_and_the_mirror_is_opposite(tmp_path):
    found = testbed.verdicts(_testbed(tmp_path / "a", STRONG, WEAK))
    assert (found.verdict == "found").all(), found
    assert found.loc["LCA: MLO's share of the loss reduction", "diff"] == pytest.approx(0.3)
    mirror = testbed.verdicts(_testbed(tmp_path / "b", WEAK, STRONG))
    assert (mirror.verdict == "opposite").all(), mirror


def test_no_difference_is_not_found(tmp_path):
    found = testbed.verdicts(_testbed(tmp_path, STRONG, STRONG))
    assert (found.verdict == "not found at this budget").all(), found


def test_unfinished_runs_read_nan_and_leave_an_instrument_untested(tmp_path):
    tb = _testbed(tmp_path, STRONG, WEAK, seeds=2)
    for s in range(2):
        tb["lca"][(testbed.CONTROL, s)].set_status(state="diverged")
    assert np.isnan(testbed.readings(tb["norms"][(testbed.CONTROL, 0)],
                                     tb["lca"][(testbed.CONTROL, 0)])["LCA MLO share"])
    found = testbed.verdicts(tb)
    assert found.loc["LCA: MLO's share of the loss reduction", "verdict"].startswith(
        "not tested")
    assert found.loc["gradient norms: median |g_MLO| / |g_CC|", "verdict"] == "found"


def test_the_gradient_ratio_skips_iterations_where_a_view_was_held():
    norms = pd.DataFrame({"cc": [1.0, 2.0, 0.0, 4.0, 1.0], "mlo": [2.0, 2.0, 3.0, 0.0, 3.0]})
    assert testbed.grad_ratio(norms) == pytest.approx(2.0)  # median of 2, 1, 3
    assert np.isnan(testbed.grad_ratio(norms.assign(cc=0.0)))
