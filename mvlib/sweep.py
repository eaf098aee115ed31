"""Sweeps: many runs into the store through a small executor interface.

A sweep skips finished runs (done or diverged) and resumes interrupted ones. Executors
only decide where `train(cfg)` happens: `InProcess` here, `Subprocesses` as parallel
`python -m mvlib train <config.json>` jobs (the command a cluster job runs too). A
cluster executor implements the same `run(configs, store)`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Protocol

from tqdm import tqdm

from mvlib import paths
from mvlib.runs import RunConfig, RunDir
from mvlib.train import train


class Executor(Protocol):
    def run(self, configs: list[RunConfig], store: Path) -> None: ...


class InProcess:
    """Runs one after another in this process."""

    def run(self, configs: list[RunConfig], store: Path) -> None:
        for cfg in tqdm(configs, desc="runs", unit="run", leave=False, disable=None):
            train(cfg, store)


class Subprocesses:
    """`workers` runs at a time as `python -m mvlib train` jobs (each with its config's
    `threads`). On 2 CPU cores, two single-threaded runs do about 1.5x the work of one
    two-threaded run (measured on this project's 2-core machines). A job that crashes is
    reported after the others have finished.
    """

    def __init__(self, workers: int = 2):
        self.workers = workers

    def run(self, configs: list[RunConfig], store: Path) -> None:
        # One thread for other libraries' pools (BLAS in data loading); torch's comes from
        # the run's config.
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(paths.REPO)}
        queue, active, failed = list(configs), [], []
        bar = tqdm(total=len(configs), desc="runs", unit="run", leave=False, disable=None)
        while queue or active:
            while queue and len(active) < self.workers:
                run = RunDir(queue.pop(0), store)
                run.create()
                log = open(run.path / "log.txt", "a")  # noqa: SIM115 (closed when it ends)
                cmd = [sys.executable, "-m", "mvlib", "train", str(run.path / "config.json"),
                       "--store", str(store)]
                active.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                                env=env), run, log))
            time.sleep(0.2)
            for job in [j for j in active if j[0].poll() is not None]:
                proc, run, log = job
                log.close()
                active.remove(job)
                bar.update()
                if proc.returncode != 0:
                    failed.append(run.path / "log.txt")
        bar.close()
        if failed:
            raise RuntimeError(f"{len(failed)} run(s) crashed; see {[str(p) for p in failed]}")


def default_executor(workers: int) -> Executor:
    return Subprocesses(workers=workers) if workers > 1 else InProcess()


def sweep(configs: list[RunConfig], executor: Executor | None = None,
          store: Path | None = None) -> list[RunDir]:
    """Make sure every config has a finished run in the store; return their folders."""
    store = Path(store or paths.store())
    unique = list({c.digest(): c for c in configs}.values())
    todo = [c for c in unique if not RunDir(c, store).finished]
    if todo:
        (executor or InProcess()).run(todo, store)
    return [RunDir(c, store) for c in configs]
