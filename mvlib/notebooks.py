"""Run the numbered notebooks with papermill and keep the committed copies readable."""

from __future__ import annotations

import os
from contextlib import contextmanager
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


@contextmanager
def _environment(**values: str | None):
    """Set (or, for None, unset) environment variables for the duration of the block."""
    def apply(pairs: dict[str, str | None]) -> None:
        for k, v in pairs.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    saved = {k: os.environ.get(k) for k in values}
    apply(values)
    try:
        yield
    finally:
        apply(saved)


def run(path: Path, profile: str, dataset: str = "synthetic", data_root: str | None = None,
        reseed: int = 0) -> Path:
    """Execute `path`; the output is replaced only when the whole run succeeded. `reseed`:
    the re-run with another seed list (`Profile.seed_list`), written beside its runs."""
    with _environment(MVLIB_PROFILE=profile, MVLIB_RESEED=str(reseed) if reseed else None):
        tag = profiles.get(profile, dataset, data_root).tag
        out = output_path(path, tag)
        tmp = paths.store() / "tmp" / f"{path.stem}.{tag}.running.ipynb"
        tmp.parent.mkdir(parents=True, exist_ok=True)
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
    return out


def reproduce(profile: str, dataset: str = "synthetic", data_root: str | None = None,
              reseed: int = 0) -> None:
    """Run every numbered notebook in order at `profile`, on `dataset` (with `reseed`, the
    seed list of `Profile.seed_list`)."""
    for path in numbered():
        print(f"[reproduce] {path.name} ({profile}, {dataset}, reseed {reseed})", flush=True)
        out = run(path, profile, dataset, data_root, reseed)
        print(f"[reproduce] -> {out}", flush=True)
