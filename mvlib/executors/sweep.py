"""Sweeps: many runs into the store through a small executor interface.

A sweep skips finished runs (done or diverged) and resumes interrupted ones. Executors
only decide where `train(cfg)` happens: `InProcess` here, `Subprocesses` as parallel
`python -m mvlib train <config.json>` jobs, `mvlib.executors.slurm.Slurm` as SLURM array tasks
running that same command. `default_executor` picks one from the profile (`Profile.executor`:
"local" or "slurm").
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import torch
from tqdm import tqdm

from mvlib.core import paths
from mvlib.core.progress import report
from mvlib.engine.train import train
from mvlib.experiment.profiles import Profile
from mvlib.experiment.runs import RunConfig, RunDir


class Executor(Protocol):
    def run(self, configs: list[RunConfig], store: Path) -> None: ...


class InProcess:
    """Runs one after another in this process."""

    def run(self, configs: list[RunConfig], store: Path) -> None:
        for i, cfg in enumerate(tqdm(configs, desc="runs", unit="run", leave=False,
                                     disable=None)):
            report(i, len(configs), running=1)
            train(cfg, store)
        report(len(configs), len(configs))


class Subprocesses:
    """`workers` runs at a time as `python -m mvlib train` jobs (each with its config's
    `threads`). On 2 CPU cores, two single-threaded runs do about 1.5x the work of one
    two-threaded run (measured on this project's 2-core machines). With `gpus`, there are
    `runs_per_gpu` workers per GPU, each job seeing its GPU alone (CUDA_VISIBLE_DEVICES): a
    batch-4 step leaves most of a large GPU idle, so several runs share one. A job that
    crashes is reported after the others have finished.

    Hand-written rather than submitit's LocalExecutor: that one starts every submitted job
    at once (it has no limit on jobs side by side) and kills each at a timeout, so a sweep of
    twenty runs would put twenty on two cores.
    """

    def __init__(self, workers: int = 2, gpus: int = 0, runs_per_gpu: int = 1):
        if runs_per_gpu < 1:
            raise ValueError(f"runs_per_gpu must be at least 1, not {runs_per_gpu}")
        self.workers = gpus * runs_per_gpu or workers
        self.gpus, self.runs_per_gpu = gpus, runs_per_gpu

    def run(self, configs: list[RunConfig], store: Path) -> None:
        # One thread for other libraries' pools (BLAS in data loading); torch's comes from
        # the run's config.
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(paths.REPO)}
        queue, active, failed, last = list(configs), [], [], None
        bar = tqdm(total=len(configs), desc="runs", unit="run", leave=False, disable=None)
        while queue or active:
            while queue and len(active) < self.workers:
                run = RunDir(queue.pop(0), store)
                run.create()
                log = open(run.path / "log.txt", "a")  # noqa: SIM115 (closed when it ends)
                cmd = [sys.executable, "-m", "mvlib", "train", str(run.path / "config.json"),
                       "--store", str(store)]
                slot = min(set(range(self.workers)) - {j[3] for j in active})
                job_env = ({**env, "CUDA_VISIBLE_DEVICES": str(slot // self.runs_per_gpu)}
                           if self.gpus else env)
                active.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                                env=job_env), run, log, slot))
            if (now := (bar.n, len(active), len(queue))) != last:
                report(bar.n, len(configs), running=len(active), queued=len(queue))
                last = now
            time.sleep(0.2)
            for job in [j for j in active if j[0].poll() is not None]:
                proc, run, log, _ = job
                log.close()
                active.remove(job)
                bar.update()
                if proc.returncode != 0:
                    failed.append(run.path / "log.txt")
        bar.close()
        report(len(configs), len(configs))
        if failed:
            raise RuntimeError(f"{len(failed)} run(s) crashed; see {[str(p) for p in failed]}")


def runs_per_gpu(prof: Profile) -> int:
    """How many runs share one GPU: $MVLIB_RUNS_PER_GPU, else the profile's `runs_per_gpu`."""
    raw = os.environ.get("MVLIB_RUNS_PER_GPU") or prof.runs_per_gpu
    try:
        k = int(raw)
    except ValueError:
        raise ValueError(f"MVLIB_RUNS_PER_GPU={raw!r}: not a whole number") from None
    if k < 1:
        raise ValueError(f"runs per GPU must be at least 1, not {k}")
    return k


def default_executor(prof: Profile) -> Executor:
    """The profile's executor: "slurm" (options: the profile's `slurm`, overridden as
    mvlib.executors.slurm.SlurmOptions.from_env says; `runs_per_gpu` runs a job), or "local":
    `runs_per_gpu` runs on each GPU when there are GPUs (one at a time in this process for a
    single GPU and one run), else the profile's `workers` side by side."""
    k = runs_per_gpu(prof)
    if prof.executor == "slurm":
        from mvlib.executors.slurm import Slurm, SlurmOptions

        return Slurm(SlurmOptions.from_env(prof.slurm), runs_per_job=k)
    if prof.executor != "local":
        raise ValueError(f"unknown executor {prof.executor!r}; choose 'local' or 'slurm'")
    if (gpus := torch.cuda.device_count()) > 1 or (gpus and k > 1):
        return Subprocesses(gpus=gpus, runs_per_gpu=k)
    return Subprocesses(workers=prof.workers) if prof.workers > 1 else InProcess()


def preparation_jobs(prof: Profile) -> Callable[[Path, list[list[int]]], None] | None:
    """Where a real source's preparation jobs run (`run_slices` of mvlib.experiment.prepare): None
    for local processes (the preparation's own), or with the "slurm" executor a SLURM array of
    one-CPU tasks (the profile's SLURM options as `default_executor` reads them, no GPU)."""
    if prof.executor != "slurm":
        return None
    from mvlib.executors.slurm import Slurm, SlurmOptions

    return Slurm(SlurmOptions.from_env(prof.slurm)).prepare


def sweep(configs: list[RunConfig], executor: Executor | None = None,
          store: Path | None = None) -> list[RunDir]:
    """Make sure every config has a finished run in the store; return their folders."""
    store = Path(store or paths.store())
    unique = list({c.digest(): c for c in configs}.values())
    todo = [c for c in unique if not RunDir(c, store).finished]
    if todo:
        (executor or InProcess()).run(todo, store)
    return [RunDir(c, store) for c in configs]
