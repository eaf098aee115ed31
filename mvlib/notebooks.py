"""Run the numbered notebooks with papermill and keep the committed copies readable."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import papermill

from mvlib import paths, profiles
from mvlib.atomic import write_atomic

NOTEBOOKS = paths.REPO / "notebooks"


def numbered() -> list[Path]:
    """notebooks/NN_*.ipynb in order."""
    return sorted(p for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def clean(nb: nbformat.NotebookNode, keep_parameters: bool = False) -> nbformat.NotebookNode:
    """Drop papermill's timing metadata and (unless `keep_parameters`) its injected cell.

    In the committed notebooks the injected cell would pin the profile for anyone (nbval
    included) re-running them; the notebooks print the profile they ran with instead. Copies
    run on other profiles or data sets keep it, as a record of their parameters.
    """
    nb.metadata.pop("papermill", None)
    if not keep_parameters:
        nb.cells = [c for c in nb.cells
                    if "injected-parameters" not in c.metadata.get("tags", [])]
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    return nb


def output_path(path: Path, tag: str) -> Path:
    """Committed notebooks carry the laptop run on the synthetic data (tag `laptop`); other
    profiles and data sets (tags like `paper`, `laptop-rsna-1a2b3c`) write beside their runs."""
    if tag == "laptop":
        return path
    return paths.store() / tag / "notebooks" / path.name


def run(path: Path, profile: str, dataset: str = "synthetic", data_root: str | None = None
        ) -> Path:
    """Execute `path`; the output is replaced only when the whole run succeeded."""
    tag = profiles.get(profile, dataset, data_root).tag
    out = output_path(path, tag)
    tmp = paths.store() / "tmp" / f"{path.stem}.{tag}.running.ipynb"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    env_profile = os.environ.get("MVLIB_PROFILE")
    os.environ["MVLIB_PROFILE"] = profile
    try:
        papermill.execute_notebook(str(path), str(tmp),
                                   parameters={"profile": profile, "dataset": dataset,
                                               "data_root": data_root},
                                   kernel_name="python3", cwd=str(path.parent),
                                   progress_bar=False)
        nb = clean(nbformat.read(tmp, as_version=4), keep_parameters=tag != "laptop")
        write_atomic(out, lambda p: nbformat.write(nb, str(p)))
    finally:
        tmp.unlink(missing_ok=True)
        if env_profile is None:
            os.environ.pop("MVLIB_PROFILE", None)
        else:
            os.environ["MVLIB_PROFILE"] = env_profile
    return out


def reproduce(profile: str, dataset: str = "synthetic", data_root: str | None = None) -> None:
    """Run every numbered notebook in order at `profile`, on `dataset`."""
    tag = profiles.get(profile, dataset, data_root).tag
    for path in numbered():
        print(f"[reproduce] {path.name} ({tag}) -> {output_path(path, tag)}", flush=True)
        run(path, profile, dataset, data_root)
