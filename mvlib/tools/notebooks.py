"""Run the numbered notebooks with papermill and keep the committed copies readable."""

from __future__ import annotations

import datetime
import json
import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pandas as pd
import papermill
from tqdm import tqdm

from mvlib.core import paths
from mvlib.core.atomic import write_atomic
from mvlib.core.device import machine
from mvlib.experiment import profiles

NOTEBOOKS = paths.REPO / "notebooks"
REPRODUCE_RECORD = "reproduce.json"  # minutes per notebook of the last `reproduce`
FRESH_RECORD = "reproduce_fresh.json"  # ... of the last one that trained every run (a fresh store)


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
        reseed: int = 0, executor: str | None = None, data_knobs: dict | None = None) -> Path:
    """Execute `path`; the output is replaced only when the whole run succeeded. `reseed`:
    the re-run with another seed list (`Profile.seed_list`), written beside its runs;
    `executor`: where its runs train (None: $MVLIB_EXECUTOR, else "local"); `data_knobs`:
    the data set's knobs (mvlib.experiment.prepare's, e.g. patch_weights)."""
    data_knobs = dict(data_knobs or {})
    with _environment(MVLIB_PROFILE=profile):
        tag = profiles.get(profile, dataset, data_root, reseed=reseed, **data_knobs).tag
        out = output_path(path, tag)
        tmp = paths.store() / "tmp" / f"{path.stem}.{tag}.running.ipynb"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        try:
            papermill.execute_notebook(
                str(path), str(tmp), kernel_name="python3", cwd=str(path.parent),
                parameters={"profile": profile, "dataset": dataset, "data_root": data_root,
                            "executor": executor, "reseed": reseed, "data_knobs": data_knobs},
                progress_bar=sys.stderr.isatty(),  # cells, in a terminal only
                # the kernel's notice that it talks to papermill over local TCP, unencrypted
                extra_arguments=["--IPKernelApp.log_level=ERROR"])
            nb = clean(nbformat.read(tmp, as_version=4), keep_parameters=tag != "laptop")
            write_atomic(out, lambda p: nbformat.write(nb, str(p)))
        finally:
            tmp.unlink(missing_ok=True)
    return out


@contextmanager
def _sweep_progress(position: int):
    """A bar of the current sweep's runs (done / total, running, queued), read from the file
    that mvlib.core.progress.report writes inside the notebook's kernel; shown in a terminal
    only."""
    path = paths.store() / "tmp" / f"progress-{os.getpid()}.json"
    path.unlink(missing_ok=True)
    bar = tqdm(total=0, desc="  runs", unit="run", position=position, leave=False,
               disable=None)
    stop = threading.Event()

    def follow() -> None:
        while not stop.wait(1.0):
            try:
                p = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            bar.total, bar.n = p.pop("total"), p.pop("done")
            bar.set_postfix(p, refresh=True)

    watcher = threading.Thread(target=follow, daemon=True)
    if not bar.disable:
        watcher.start()
    try:
        with _environment(MVLIB_PROGRESS=str(path)):
            yield
    finally:
        stop.set()
        bar.close()
        path.unlink(missing_ok=True)


def reproduce(profile: str, dataset: str = "synthetic", data_root: str | None = None,
              reseed: int = 0, executor: str | None = None, data_knobs: dict | None = None
              ) -> pd.DataFrame:
    """Run every numbered notebook in order at `profile`, on `dataset` prepared with
    `data_knobs` (with `reseed`, the seed list of `Profile.seed_list`; runs trained by
    `executor`). In a terminal: a bar of
    notebooks (i of n, elapsed, estimate), papermill's bar of cells and one of the current
    sweep's runs. Then a summary: minutes per notebook, where the notebooks, figures and
    tables went, and the verdict counts, also written to the figures folder's
    reproduce.json, and to reproduce_fresh.json when the run store held no run before (a
    fresh clone: every run trained here; the README's timings are rendered from them).
    Returns the minutes per notebook."""
    tag = profiles.get(profile, dataset, data_root, reseed=reseed, **(data_knobs or {})).tag
    todo, minutes, runs_before = numbered(), {}, runs_in_store()
    bar = tqdm(todo, desc="notebooks", unit="notebook", disable=None)
    for i, path in enumerate(bar, 1):
        line = f"[reproduce] {i}/{len(todo)} {path.name} ({profile}, {dataset}" + \
            (f", reseed {reseed})" if reseed else ")")
        if bar.disable:
            print(line, flush=True)
        else:
            tqdm.write(line)
        start = time.perf_counter()
        with _sweep_progress(position=2):
            out = run(path, profile, dataset, data_root, reseed, executor, data_knobs)
        minutes[path.name] = (time.perf_counter() - start) / 60
    bar.close()
    table = pd.Series(minutes, name="minutes").to_frame()
    record = {"date": datetime.date.today().isoformat(), "machine": machine(),
              "profile": profile, "dataset": dataset, "reseed": reseed,
              "executor": executor or os.environ.get("MVLIB_EXECUTOR", "local"),
              "minutes": minutes, "total_minutes": sum(minutes.values()),
              "runs_in_store": (after := runs_in_store()), "runs_trained": after - runs_before}
    for name in (REPRODUCE_RECORD, FRESH_RECORD):
        if name == REPRODUCE_RECORD or runs_before == 0:  # an empty store: every run trained
            write_atomic(paths.figures(tag) / name,
                         lambda p: p.write_text(json.dumps(record, indent=1) + "\n"))
    print(summary(table, tag, out.parent), flush=True)
    return table


def runs_in_store() -> int:
    """How many run folders the run store holds, of every profile and data set that writes
    there (the smoke profile's live in their own folder)."""
    return sum(1 for _ in paths.store().glob("*/*/config.json"))


def summary(minutes: pd.DataFrame, tag: str, notebooks: Path) -> str:
    """The closing lines of `reproduce`."""
    lines = [f"[reproduce] done in {minutes.minutes.sum():.1f} min:"]
    lines += [f"  {name:34s} {m:6.1f} min" for name, m in minutes.minutes.items()]
    lines += [f"  notebooks: {notebooks}", f"  figures and tables: {paths.figures(tag)}"]
    for name in paths.VERDICT_FILES:
        csv = paths.figures(tag) / f"{name}.csv"
        if csv.exists():
            counts = pd.read_csv(csv).verdict.value_counts()
            lines.append(f"  {name}: " + ", ".join(f"{n} {v}" for v, n in counts.items()))
    return "\n".join(lines)
