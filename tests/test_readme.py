"""The README is a front door whose numbers come from files (mvlib.tools.readme), and the repository
says how to cite it and under which license."""

import json
import re
from pathlib import Path

import pandas as pd
import yaml

from mvlib.tools import readme

REPO = Path(__file__).resolve().parents[1]


def blocks(text: str) -> dict[str, str]:
    return dict(re.findall(r"<!-- mvlib:(\w+) -->\n(.*?)<!-- /mvlib:\1 -->", text, re.S))


def test_the_committed_readme_shows_what_the_committed_files_say():
    text = (REPO / "README.md").read_text()
    assert set(blocks(text)) == set(readme.BLOCKS)
    assert readme.render(text, REPO / "figures") == text, (
        "README.md lags figures/: run `python -m mvlib readme`")


def test_the_readme_is_a_front_door_without_dated_notes():
    """Short, and every date or measured figure inside a generated block."""
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) < 160
    typed = re.sub(r"<!-- mvlib:(\w+) -->\n.*?<!-- /mvlib:\1 -->", "", text, flags=re.S)
    assert not re.search(r"20\d\d-\d\d-\d\d", typed)
    assert not re.search(r"#\d\d\b", typed)  # no issue numbers
    for needed in ("not the paper's\nauthors' code", "CITATION.cff", "LICENSE", "make test",
                   "make reproduce", "EXECUTOR=slurm"):
        assert needed in text


def test_findings_and_timing_are_rendered_from_the_files(tmp_path):
    row = {"seeds (planted, control)": "3, 3", "AUC planted": 0.8, "AUC control": 0.9,
           "interaction lo": -0.2, "interaction hi": -0.05, "why": ""}
    pd.DataFrame([{**row, "recipe": "Joint ResNet", "interaction": -0.1, "verdict": "cost"},
                  {**row, "recipe": "A", "interaction": 0.1,
                   "verdict": "counteracts the planted cue"},
                  {**row, "recipe": "B", "interaction": 0.0,
                   "verdict": "no interaction detected at this budget"}]).to_csv(
        tmp_path / "interaction.csv", index=False)
    pd.DataFrame({"instrument": ["LCA: share", "dependence: s", "dependence: t"],
                  "verdict": ["not found at this budget", "found", "found"]}).to_csv(
        tmp_path / "testbed.csv", index=False)
    text = readme.findings(tmp_path)
    assert "costs Joint ResNet -0.100 test AUC** (95% interval [-0.200, -0.050]" in text
    assert "Counteract the cue" in text and ": A." in text
    assert "No interaction detected at this budget: B." in text
    assert "2 of 3 readings find the planted cause (dependence); not at this budget: LCA" in text
    pd.DataFrame({"claim": ["A beats B", readme.TESTBED_DEPENDENCE_CLAIM, "C beats D"],
                  "verdict": ["A > B on synthetic data", "found", "not testable at this budget"],
                  "diff": [0.1, 4.0, 0.0], "lo": [0.05, 3.0, -1.0], "hi": [0.2, 5.0, 1.0]}
                 ).to_csv(tmp_path / "verdicts.csv", index=False)
    text = readme.findings(tmp_path)
    assert "on the testbed** (Joint ResNet's output follows the planted MLO cue): found, " \
           "planted - control +4.000 [+3.000, +5.000]" in text
    assert "**The paper's claims** (2 in notebook 07's verdicts)" in text  # not the testbed's
    assert "(1 a direction, 1 not testable at this budget)" in text
    assert "Not yet timed" in readme.reproduce(tmp_path)
    (tmp_path / "reproduce.json").write_text(json.dumps({
        "date": "2030-01-02", "machine": {"cpu": "X", "cores": 2, "torch": "9"},
        "profile": "laptop", "dataset": "synthetic", "minutes": {"00_a.ipynb": 1.0,
                                                                 "01_b.ipynb": 2.5},
        "total_minutes": 3.5, "runs_in_store": 40, "runs_trained": 0}))
    timing = readme.reproduce(tmp_path)
    assert timing.startswith("The last `make reproduce`: **3.5 min**, every run reused")
    assert "2 cores: X, torch 9" in timing and "00 1.0, 01 2.5" in timing
    fresh = {**json.loads((tmp_path / "reproduce.json").read_text()), "runs_trained": 40,
             "total_minutes": 50.0}
    (tmp_path / "reproduce_fresh.json").write_text(json.dumps(fresh))
    both = readme.reproduce(tmp_path)
    assert both.startswith("`make reproduce` with every run trained (a fresh clone")
    assert "**50.0 min**, training 40 runs (" in both and "The last" in both
    page = "a\n<!-- mvlib:reproduce -->\nold\n<!-- /mvlib:reproduce -->\nb\n"
    assert readme.render(page, tmp_path) == (
        f"a\n<!-- mvlib:reproduce -->\n{both}\n<!-- /mvlib:reproduce -->\nb\n")


def test_citation_and_license():
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT"
    paper = cff["preferred-citation"]
    bib = (REPO / "notebooks" / "references.bib").read_text()
    title = re.search(r"@inproceedings\{wu2020,.*?title\s*=\s*\{(.*?)\},", bib, re.S).group(1)
    assert " ".join(paper["title"].split()) == " ".join(title.split())
    assert [a["family-names"] for a in paper["authors"]][:2] == ["Wu", "Jastrzębski"]
    assert "MIT License" in (REPO / "LICENSE").read_text()


def test_the_gpu_block_reads_the_step_agreement_check_and_the_earlier_one():
    new = {"profile": "laptop", "within": False,
           "cuda fp32": {"step": {"logits": 2e-6, "grads": 3e-5, "within": True},
                         "checkpoint": {"auc_change": 0.0, "within": True}},
           "cuda bf16": {"step": {"logits": 3e-2, "grads": 0.9, "within": False},
                         "checkpoint": {"auc_change": 0.004, "within": True}}}
    line = readme._agreement(new)
    assert "cuda fp32: logits 2.0e-06, gradients 3.0e-05, test AUC change 0.0000 (within)" \
        in line and "cuda bf16: logits 3.0e-02, gradients 9.0e-01" in line
    assert "(NOT within)" in line
    old = readme._agreement({"max_val_auc_gap": 0.1, "max_test_auc_gap": 0.05})
    assert "cannot tell a broken path from a correct one" in old


def test_the_gpu_block_reads_runs_per_gpu_or_says_they_were_not_measured():
    assert "not measured in this record" in readme._sharing({"training": {}})
    run = {"shared_gpu": {"by_k": {1: {"breasts_s": 90.0}, 2: {"breasts_s": 150.0},
                                   4: {"error": "OutOfMemoryError"}},
                          "best_k": 2, "paper_sweep_gpu_hours_at_best_k": 1200.0},
           "step_variants": {"default_steps_s": 20.0, "contiguous": 0.8, "compile": "Err"}}
    line = readme._sharing(run)
    assert "1: 90.0, 2: 150.0, 4: failed; best 2, the `paper` sweep about 1,200 GPU-hours" in line
    assert "contiguous 0.80x, compile failed" in line
