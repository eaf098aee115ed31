"""Notebook 07's verdicts: computed from means, standard deviations and run counts."""

import pandas as pd
import pytest

from mvlib import tables
from mvlib.tables import Claim, verdict


def table(rows: dict[str, tuple[float, float, int]]) -> pd.DataFrame:
    return pd.DataFrame({name: {"auc_mean": m, "auc_std": s, "runs done": f"{n}/3"}
                         for name, (m, s, n) in rows.items()}).T


BEATS = Claim("Shared ResNet beats Joint ResNet", ("Table 1", "Shared ResNet"),
              ("Table 1", "Joint ResNet"))
NO_GAIN = Claim("Split Learning Rates do not improve Joint ResNet",
                ("Table 2", "+ Split Learning Rates"), ("Table 2", "Joint ResNet"), beats=False)


@pytest.mark.parametrize("shared, expected", [
    (0.95, "holds"),  # +0.05 against a standard error of sqrt(2 * 0.01^2 / 3) = 0.008
    (0.85, "does not hold here"),
    (0.905, "not comparable"),  # within one standard error
])
def test_a_beats_claim_needs_a_difference_beyond_one_standard_error(shared, expected):
    t = {"Table 1": table({"Shared ResNet": (shared, 0.01, 3), "Joint ResNet": (0.9, 0.01, 3)})}
    v = verdict(BEATS, t)
    assert v["verdict"] == expected
    assert v["paper (A vs B)"] == "0.879 vs 0.872"
    assert v["ours (A vs B)"] == f"{shared:.3f} vs 0.900"


@pytest.mark.parametrize("split_lrs, expected", [
    (0.85, "holds"), (0.95, "does not hold here"), (0.905, "not comparable")])
def test_a_no_gain_claim_is_judged_in_mirror(split_lrs, expected):
    t = {"Table 2": table({"+ Split Learning Rates": (split_lrs, 0.01, 3),
                           "Joint ResNet": (0.9, 0.01, 3)})}
    assert verdict(NO_GAIN, t)["verdict"] == expected


def test_missing_or_single_runs_are_not_comparable():
    one = {"Table 1": table({"Shared ResNet": (0.99, 0.0, 1), "Joint ResNet": (0.5, 0.0, 3)})}
    assert verdict(BEATS, one)["verdict"] == "not comparable"
    assert verdict(BEATS, {})["verdict"] == "not comparable"
    assert "fewer than 2" in verdict(BEATS, one)["why"]
    assert verdict(BEATS, {})["why"] == ("not run on this data set: Table 1 / Shared ResNet, "
                                         "Table 1 / Joint ResNet")


def test_weight_volatility_compares_the_windows_of_each_measure():
    t4 = pd.DataFrame({"measure": ["loss", "loss", "auc", "auc"],
                       "window": ["[0, 100]", "[90, 100]"] * 2,
                       "w_joint": [0.3, 0.3, 0.2, 0.6], "w_cc": [0.3, 0.4, 0.4, 0.2],
                       "w_mlo": [0.4, 0.3, 0.4, 0.2]}).set_index(["measure", "window"])
    v = tables.weight_volatility(t4)
    assert v["verdict"] == "holds" and v["ours (A vs B)"] == "0.400 vs 0.100"
    swapped = t4.rename(index={"loss": "auc", "auc": "loss"}, level=0)
    assert tables.weight_volatility(swapped)["verdict"] == "does not hold here"


def test_an_empty_table_renders_as_a_note():
    from mvlib import plots

    fig = plots.render_table(pd.DataFrame(columns=["AUC (ours)"]), "Table 3")
    assert "no rows" in fig.axes[0].texts[0].get_text()


def test_summary_markdown_states_each_groups_numbers_beside_the_papers():
    t = pd.DataFrame({"AUC (ours)": ["0.912 ± 0.031", "-"], "3x ensemble (ours)": [0.93, None],
                      "runs done": ["3/3", "0/3"], "AUC (paper)": ["0.872 ± 0.005", "-"],
                      "3x ensemble (paper)": [0.887, None]},
                     index=pd.Index(["Joint ResNet", "+ Pretraining (whole model)"],
                                    name="group"))
    seeds = pd.DataFrame({"state": ["done", "done", "diverged"],
                          "test_auc": [0.9, 0.95, float("nan")]},
                         index=pd.MultiIndex.from_tuples([("Joint ResNet", None)] * 3,
                                                         names=["group", None]))
    text = tables.summary_markdown(t, seeds).splitlines()
    assert text[0] == ("* **Joint ResNet**: ours 0.912 ± 0.031 (3x ensemble 0.930, 3/3 runs "
                       "done); per seed 0.900, 0.950, diverged; the paper 0.872 ± 0.005 "
                       "(3x ensemble 0.887).")
    assert text[1] == "* **+ Pretraining (whole model)**: ours not run; the paper none."


def test_verdicts_markdown_groups_the_claims_by_verdict():
    v = pd.DataFrame({"ours (A vs B)": ["0.9 vs 0.8", "0.8 vs 0.9", "0.85 vs 0.86"],
                      "verdict": ["holds", "does not hold here", "holds"],
                      "why": ["w1", "w2", "w3"]}, index=pd.Index(["a", "b", "c"], name="claim"))
    text = tables.verdicts_markdown(v).splitlines()
    assert text[0] == "Of the 3 claims: 2 holds, 1 does not hold here."
    assert text[1] == "* **holds:** a (0.9 vs 0.8; w1); c (0.85 vs 0.86; w3)."
    assert text[2] == "* **does not hold here:** b (0.8 vs 0.9; w2)."
