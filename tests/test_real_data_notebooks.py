"""Every numbered notebook runs unchanged on a real source (issue: "your own data"): an
RSNA-layout example download goes through notebooks 00-07 at the smoke profile, with the
outputs kept apart from the committed ones."""

import nbformat

from mvlib import notebooks, paths, profiles
from mvlib.data.adapters import examples


def test_every_notebook_runs_on_an_example_rsna_download(tmp_path, monkeypatch):
    monkeypatch.setenv("MVLIB_STORE", str(tmp_path / "store"))
    root = str(examples.write_rsna(tmp_path / "rsna", patients=16))
    tag = profiles.get("smoke", "rsna", root).tag
    for path in notebooks.numbered():
        out = notebooks.run(path, "smoke", "rsna", root)
        assert out == paths.store() / tag / "notebooks" / path.name
        nb = nbformat.read(out, as_version=4)
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert injected and "rsna" in injected[0].source  # the copy records its data set
    assert (paths.store() / tag / "figures" / "table1.csv").exists()
    assert not (paths.REPO / "figures" / tag).exists()
