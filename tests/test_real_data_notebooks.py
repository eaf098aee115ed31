"""Every numbered notebook runs unchanged on a real source (issue: "your own data"): an
RSNA-layout example download goes through every numbered notebook at the smoke profile, with the
outputs kept apart from the committed ones."""

import json

import nbformat

from mvlib.core import paths
from mvlib.data.adapters import examples
from mvlib.experiment import profiles
from mvlib.tools import notebooks

PATIENTS = 16


def test_every_notebook_runs_on_an_example_rsna_download(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MVLIB_STORE", str(tmp_path / "store"))
    root = str(examples.write_rsna(tmp_path / "rsna", patients=PATIENTS))
    knobs = {"seed": 1}  # a knob of the data set (its split draw) goes to every notebook
    tag = profiles.get("smoke", "rsna", root, **knobs).tag
    minutes = notebooks.reproduce("smoke", "rsna", root, data_knobs=knobs)  # `make reproduce`'s
    names = [p.name for p in notebooks.numbered()]
    assert list(minutes.index) == names
    printed = capsys.readouterr().out
    for i, name in enumerate(names, 1):  # each notebook announced, in order, none left out
        assert f"[reproduce] {i}/{len(names)} {name} (smoke, rsna)" in printed
    assert f"figures and tables: {paths.store() / tag / 'figures'}" in printed
    assert "verdicts: " in printed  # the closing summary counts them
    record = json.loads((paths.store() / tag / "figures" / notebooks.REPRODUCE_RECORD).read_text())
    assert list(record["minutes"]) == names and record["dataset"] == "rsna"
    assert record["total_minutes"] == sum(record["minutes"].values()) > 0
    assert record["runs_trained"] == record["runs_in_store"] > 0  # a fresh store: all trained
    for path in notebooks.numbered():
        out = paths.store() / tag / "notebooks" / path.name
        nb = nbformat.read(out, as_version=4)
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert injected and "rsna" in injected[0].source  # the copy records its data set
        assert 'data_knobs = {"seed": 1}' in injected[0].source
    assert (paths.store() / tag / "figures" / "table1.csv").exists()
    assert not (paths.REPO / "figures" / tag).exists()
