"""Closing boxes and the results page (mvlib.study.claims) on hand-made verdict tables."""

import json

import pandas as pd
import pytest

from mvlib.core.paths import REPO
from mvlib.experiment import profiles
from mvlib.study import claims


def verdict_rows(**over):
    base = {"claim": ["uni-view CC beats uni-view MLO", "Pretraining hurts Joint ResNet"],
            "paper (A vs B)": ["0.864 vs 0.789", "0.872 vs 0.830"],
            "ours (A vs B)": ["0.940 vs 0.620", "0.800 vs 0.900"],
            "diff": [0.32, -0.1], "lo": [0.2, -0.2], "hi": [0.4, -0.01], "p": [0.0, 0.02],
            "verdict": ["holds", "contradicted"], "why": ["x", "y"], "notebook": ["03", "04"]}
    return pd.DataFrame({**base, **over})


def test_the_anchor_is_mysts_heading_slug():
    assert claims.anchor("In closing") == "in-closing"
    assert claims.anchor("Figure 3's claim across seeds") == "figure-3s-claim-across-seeds"


def test_every_claim_carries_the_notebook_whose_closing_box_judges_it():
    home = {"Table 1": "03", "Table 2": "04", "Table 3": "06"}
    for c in claims.CLAIMS:
        table = c.b[0] if c.a[0] == "Table 1" and c.b[0] == "Table 3" else c.a[0]
        want = "05" if "Gradient Blending" in c.text else home[table]
        assert c.notebook == want, c.text
    undefined = pd.DataFrame({"w_joint": [float("nan")], "w_cc": [1.0], "w_mlo": [0.0]},
                             index=pd.MultiIndex.from_tuples([("loss", "[0, 100]")]))
    assert claims.weight_volatility(undefined)["notebook"] == "05"
    assert {r["notebook"] for r in claims.table5_claims({})} == {"05"}


def test_the_closing_box_shows_each_claim_with_its_interval_and_why_it_may_differ():
    prof = profiles.get("laptop")
    text = claims.closing_markdown(verdict_rows().set_index("claim"), prof, ("a note",))
    assert "**The paper's tables, on these data** (2 claim(s): 1 holds, 1 contradicted)." \
        in text and "not a verdict on the paper's NYU number" in text
    assert "| uni-view CC beats uni-view MLO | 0.864 vs 0.789 | 0.940 vs 0.620 | " \
           "+0.320 [+0.200, +0.400] | **holds** |" in text
    assert f"{prof.epochs} epochs per run (the paper's: 100)" in text
    assert "500 patients" in text and text.rstrip().endswith("a note.")
    paper = profiles.get("paper")
    assert "epochs per run" not in claims.closing_markdown(verdict_rows(), paper)
    empty = claims.closing_markdown(pd.DataFrame(columns=["claim", "verdict"]), prof)
    assert "No claim of the paper's tables is judged" in empty


def test_a_claim_without_the_papers_value_says_so_and_pipes_are_escaped():
    t7 = pd.DataFrame({"claim": ["OGM-GE improves Joint ResNet"], "ours (A vs B)": ["a | b"],
                       "diff": [0.1], "lo": [float("nan")], "hi": [float("nan")],
                       "verdict": ["descriptive"]})
    row = claims.claims_table(t7).iloc[0]
    assert row["the paper"] == "not in the paper" and row["difference [95% interval]"] == "+0.100"
    assert "a \\| b" in claims.closing_markdown(t7, profiles.get("paper"))


def test_the_results_page_reads_every_verdict_file_and_links_each_closing_box(tmp_path):
    verdict_rows().to_csv(tmp_path / "verdicts.csv", index=False)
    pd.DataFrame({"claim": ["OGM-GE improves Joint ResNet"], "ours (A vs B)": ["0.7 vs 0.8"],
                  "diff": [-0.1], "lo": [-0.2], "hi": [0.0], "p": [0.1], "notebook": [8],
                  "verdict": ["inconclusive at this budget"], "why": ["z"]}).to_csv(
        tmp_path / "table7_claims.csv", index=False)
    judged = claims.all_claims(tmp_path)
    assert list(judged.notebook) == ["03", "04", "08"]
    text = claims.results_markdown(claims.with_reseed(judged, tmp_path / "absent"))
    assert "[04](04_regularizers.ipynb#in-closing)" in text and "not re-run" in text
    assert "**3 claims judged:**" in text
    again = tmp_path / "again"
    again.mkdir()
    verdict_rows(verdict=["holds", "inconclusive at this budget"]).drop(
        columns="notebook").to_csv(again / "verdicts.csv", index=False)  # an older re-run
    seen = claims.with_reseed(judged, again).set_index("claim")["reseeded re-run"]
    assert seen["uni-view CC beats uni-view MLO"] == "kept (holds)"
    assert seen["Pretraining hurts Joint ResNet"] == "to undecided (inconclusive at this budget)"
    assert seen["OGM-GE improves Joint ResNet"] == "not in the re-run"
    assert claims.results_markdown(claims.all_claims(tmp_path / "absent")).startswith("No ")


def test_a_broken_verdict_file_is_named(tmp_path):
    (tmp_path / "verdicts.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"verdicts\.csv: a verdict table needs"):
        claims.all_claims(tmp_path)
    verdict_rows().drop(columns="notebook").to_csv(tmp_path / "verdicts.csv", index=False)
    with pytest.raises(ValueError, match=r"verdicts\.csv: no column notebook"):
        claims.all_claims(tmp_path)


def test_every_notebook_the_results_page_links_has_the_closing_heading():
    for stem in claims.NOTEBOOKS.values():
        nb = json.loads((REPO / "notebooks" / f"{stem}.ipynb").read_text())
        heads = [line for c in nb["cells"] if c["cell_type"] == "markdown"
                 for line in "".join(c["source"]).splitlines() if line.startswith("## ")]
        assert f"## {claims.CLOSING}" in heads, stem


def test_the_reseeded_figures_are_where_a_reseeded_profile_writes_them(tmp_path, monkeypatch):
    monkeypatch.setenv("MVLIB_STORE", str(tmp_path))
    laptop = profiles.get("laptop")
    assert claims.reseed_folder(laptop) == tmp_path / "laptop-reseed100" / "figures"
    rsna = profiles.get("laptop", "rsna", str(tmp_path / "rsna"))
    monkeypatch.setenv("MVLIB_RESEED", "100")
    again = profiles.get("laptop", "rsna", str(tmp_path / "rsna"))
    assert claims.reseed_folder(rsna) == tmp_path / again.tag / "figures"
    assert not claims.reseed_folder(rsna).exists()


def test_verdict_changes_count_what_moved_between_two_folders(tmp_path):
    before, after = tmp_path / "before", tmp_path / "after"
    for folder, verdicts in ((before, ["holds", "found", "opposite"]),
                             (after, ["inconclusive at this budget", "found",
                                      "not found at this budget"])):
        folder.mkdir()
        pd.DataFrame({"claim": ["A beats B"], "verdict": verdicts[:1]}).to_csv(
            folder / "verdicts.csv", index=False)
        pd.DataFrame({"instrument": ["LCA", "norms"], "verdict": verdicts[1:]}).to_csv(
            folder / "testbed.csv", index=False)
    pd.DataFrame({"claim": ["only after"], "verdict": ["holds"]}).to_csv(
        after / "table7_claims.csv", index=False)
    changes = claims.verdict_changes(after, before)
    assert len(changes) == 3 and changes.moved.sum() == 2
    text = claims.changes_markdown(changes)
    assert "Of 3 verdicts" in text and "**0 moved with the rules**" in text
    assert "**2 otherwise**" in text and "not the intervals' alone" in text
    assert "holds -> inconclusive at this budget (1): A beats B (verdicts)" in text
    assert "opposite -> not found at this budget (1): norms (testbed)" in text
    ruled = changes.assign(after=["not testable at this budget", "found", "opposite"],
                           moved=[True, False, False])
    assert "**1 moved with the rules** (" in claims.changes_markdown(ruled)
    assert "**0 otherwise**" in claims.changes_markdown(ruled)
    direction = changes.assign(after=["A > B on synthetic data", "found", "opposite"],
                               moved=[True, False, False])
    assert "**1 moved with the rules** (" in claims.changes_markdown(direction)
    assert claims.changes_markdown(claims.verdict_changes(after, tmp_path / "none")
                                    ).startswith("No record")


def test_the_results_page_puts_the_mechanism_first_and_the_tables_apart(tmp_path):
    pd.DataFrame({"recipe": ["Joint ResNet", "Shared ResNet"], "AUC planted": [0.8, 0.9],
                  "AUC control": [0.9, 0.9], "interaction": [-0.1, 0.1],
                  "interaction lo": [-0.15, 0.02], "interaction hi": [-0.05, 0.18],
                  "verdict": ["the cue's cost to Joint ResNet (planted - control)",
                              "counteracts the planted cue"]}).to_csv(
        tmp_path / "interaction.csv", index=False)
    pd.DataFrame({"instrument": ["cue test", "LCA"], "verdict": ["found", "not found"]}).to_csv(
        tmp_path / "testbed.csv", index=False)
    verdict_rows(claim=["uni-view CC beats uni-view MLO",
                        "Shared ResNet reduces Joint ResNet's reliance on MLO"],
                 notebook=["03", "07"]).to_csv(
        tmp_path / "verdicts.csv", index=False)
    judged = claims.all_claims(tmp_path)
    text = claims.mechanism_markdown(claims.mechanism_tables(tmp_path), judged)
    assert "1 counteracts the planted cue" in text
    assert "| Shared ResNet | 0.900 | 0.900 | +0.100 [+0.020, +0.180] | " \
           "**counteracts the planted cue** |" in text
    assert "1 of 2 find it: cue test." in text
    assert "Shared ResNet reduces Joint ResNet's reliance on MLO" in text
    assert "uni-view CC beats" not in text  # a paper table's comparison: the other part
    part = judged[~judged.claim.map(claims.is_mechanism)]
    assert part.claim.tolist() == ["uni-view CC beats uni-view MLO"]
    assert claims.real_data_sentence(part).startswith("* **Table 1** (1 comparison(s)): on a "
                                                       "real data set")
    assert "No interaction table" in claims.mechanism_markdown(
        claims.mechanism_tables(tmp_path / "absent"), judged.iloc[:0])


def test_a_closing_box_puts_the_mechanism_apart_from_the_papers_tables():
    prof = profiles.get("laptop")
    mech = pd.DataFrame({"effect planted": [0.1, -0.2], "effect planted lo": [0.05, -0.3],
                         "effect planted hi": [0.15, -0.1], "effect control": [0.0, -0.1],
                         "effect control lo": [-0.05, -0.2], "effect control hi": [0.05, 0.0],
                         "interaction": [0.1, -0.1], "interaction lo": [0.02, -0.3],
                         "interaction hi": [0.18, 0.1],
                         "verdict": ["counteracts the planted cue",
                                     "the cue's cost to Joint ResNet (planted - control)"]},
                        index=["Shared ResNet", "Joint ResNet"])
    rows = verdict_rows(claim=["uni-view CC beats uni-view MLO",
                               "Shared ResNet reduces Joint ResNet's reliance on MLO"])
    text = claims.closing_markdown(rows, prof, mechanism=mech)
    first, second = text.index("**The mechanism, on the testbed**"), text.index(
        "**The paper's tables, on these data** (1 claim(s): 1 holds).")
    assert first < second
    assert "| Shared ResNet | +0.100 [+0.050, +0.150] | +0.000 [-0.050, +0.050] | " \
           "+0.100 [+0.020, +0.180] | **counteracts the planted cue** |" in text
    assert "| Joint ResNet |" not in text  # its row is the cue's cost, not an effect
    assert text.index("reduces Joint ResNet's reliance") < second
    real = claims.closing_markdown(rows, profiles.get("paper", "rsna", "/data"))
    assert "not a verdict" not in real and "The mechanism" in real  # the reliance claim


def test_the_committed_study_judges_no_paper_claim_the_synthetic_data_decide():
    """The committed figures come from the synthetic data (notebook 00): a comparison of the
    paper's tables there is a direction, never holds, contradicted or consistent."""
    rows = []
    for name in ("verdicts", "table7_claims"):
        path = REPO / "figures" / f"{name}.csv"
        if path.exists():
            v = pd.read_csv(path)
            rows.append(v[~v.claim.map(claims.is_mechanism)])
    if not rows:
        pytest.skip("no committed verdict files")
    decided = pd.concat(rows)
    decided = decided[decided.verdict.isin(["holds", "contradicted", "consistent"])]
    assert decided.empty, decided[["claim", "verdict"]].to_string()
