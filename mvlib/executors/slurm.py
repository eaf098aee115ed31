"""Sweeps on a SLURM cluster, through submitit (facebookincubator/submitit).

Each run is one task of a job array that runs `mvlib.engine.train.train_file(<config.json>)` (what
`python -m mvlib train` runs, in the job's Python), with the resources of `SlurmOptions`. Its
log is the array task's submitit log (under `<store>/slurm/`), linked from the run's folder as
`slurm.out` and `slurm.err` and named in its `slurm.json` beside the job id (what the driver
submitted); the run's status names the job that ran it. A job that SLURM
preempts or stops at its time limit gets submitit's signal before it is killed, is requeued
(`TrainJob` is checkpointable) and resumes from the run's last finished epoch, so its metrics
are those of an uninterrupted run. With `runs_per_job` k > 1, each task runs k runs side by
side on its GPU (`TrainJobs`: one process each, one crashing stops none of the others): a
batch-4 step leaves most of a large GPU idle.

A real source's preparation runs the same way (`Slurm.prepare`): each slice of chunks one
task of an array (one CPU, no GPU) running `mvlib.data.build.prepare_slice`; a requeued or
re-run task redoes only the chunks it had not finished.

The driver can die: a new sweep over the same configs finds each recorded job that is still
queued or running and waits on it, skips finished runs, and resubmits only runs whose job has
left the queue unfinished. A job that ends without finishing its run (a crash, `scancel`) is
reported with its log after the others have finished. State comes from `squeue` and the run
store, not from `sacct`, so a cluster without accounting (no slurmdbd) works too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import submitit
from tqdm import tqdm

from mvlib.core.atomic import write_json
from mvlib.core.progress import report
from mvlib.data.build import chunk_done, prepare_slice
from mvlib.engine.train import train_file
from mvlib.experiment.runs import RunConfig, RunDir

ALIVE = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD",
         "REQUEUE_FED", "RESIZING", "SUSPENDED", "STAGE_OUT", "SIGNALING")


@dataclass
class SlurmOptions:
    """Resources of every job of a sweep (sbatch's options of the same names). `sbatch`: any
    other sbatch option, e.g. {"mail-type": "END"}; `array_parallelism`: at most this many
    tasks of an array run at once; `signal_delay_s`: how long before the time limit a job is
    told to requeue; `max_requeues`: time-limit requeues before a run is given up."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_min: int = 240
    gpus: int = 0
    cpus: int | None = None  # None: the largest `threads` of the sweep's configs
    mem_gb: float | None = None
    constraint: str | None = None
    sbatch: dict = field(default_factory=dict)
    array_parallelism: int = 64
    signal_delay_s: int = 120
    max_requeues: int = 3

    def __post_init__(self) -> None:
        # SLURM may send the signal up to 60 s before it is due (sbatch's --signal): leave a
        # minute beyond that, or it can come while the job is starting, before submitit's
        # handler is installed, and kill it instead of requeuing it.
        if self.time_min * 60 - self.signal_delay_s - 60 < 60:
            raise ValueError(
                f"SLURM options: time_min={self.time_min} min with signal_delay_s="
                f"{self.signal_delay_s} leaves the job under a minute before its requeue "
                "signal may come; raise time_min or lower signal_delay_s")

    @classmethod
    def from_env(cls, defaults: dict | None = None) -> SlurmOptions:
        """`defaults` (a profile's), overridden by MVLIB_SLURM_<FIELD> variables (numbers as
        numbers, `sbatch` as JSON), and by the JSON file MVLIB_SLURM_CONFIG if set."""
        values = dict(defaults or {})
        if path := os.environ.get("MVLIB_SLURM_CONFIG"):
            try:
                values.update(json.loads(Path(path).read_text()))
            except (OSError, json.JSONDecodeError) as e:
                raise ValueError(f"{path}: not a SLURM options file ({e})") from e
        for f in fields(cls):
            raw = os.environ.get(f"MVLIB_SLURM_{f.name.upper()}")
            if raw:
                values[f.name] = json.loads(raw) if f.name == "sbatch" else \
                    _number(raw) if f.type in ("int", "float | None", "int | None") else raw
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown SLURM options {unknown}; known: "
                             f"{[f.name for f in fields(cls)]}")
        return cls(**values)


def _number(text: str) -> int | float:
    return float(text) if "." in text else int(text)


def available() -> bool:
    """Whether this machine can submit jobs (sbatch and squeue on the PATH)."""
    return shutil.which("sbatch") is not None and shutil.which("squeue") is not None


def queue() -> dict[str, str]:
    """Every job in the queue, array tasks one by one: {job id: state}."""
    out = subprocess.run(["squeue", "--noheader", "--array", "--format=%i|%T"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return dict(line.split("|", 1) for line in out.split())


class TrainJob(submitit.helpers.Checkpointable):
    """One run as a job: `mvlib.engine.train.train_file`, what `python -m mvlib train` runs.
    Checkpointable: on preemption or timeout submitit requeues it with the same arguments, and
    training resumes from the run's last.pt."""

    def __call__(self, config: str, store: str) -> str:
        cfg = RunConfig.from_dict(json.loads(Path(config).read_text()))
        run = RunDir(cfg, Path(store))
        run.set_status(slurm_job=submitit.JobEnvironment().job_id)
        train_file(Path(config), Path(store))
        return config


class TrainJobs(submitit.helpers.Checkpointable):
    """Several runs as one job, side by side on its GPU: each its own `python -m mvlib
    train` process (its output in the run's log.txt), so that one crashing stops none of the
    others; the job fails after all have ended if any crashed. Requeued, each run resumes
    from its last.pt and a finished one returns at once."""

    def __call__(self, configs: list[str], store: str) -> list[str]:
        job = submitit.JobEnvironment().job_id
        procs = []
        for config in configs:
            cfg = RunConfig.from_dict(json.loads(Path(config).read_text()))
            run = RunDir(cfg, Path(store))
            run.set_status(slurm_job=job)
            with open(run.path / "log.txt", "a") as log:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "mvlib", "train", config, "--store", store],
                    stdout=log, stderr=subprocess.STDOUT))
        failed = [c for c, p in zip(configs, procs, strict=True) if p.wait() != 0]
        if failed:
            raise RuntimeError(f"{len(failed)} of the job's {len(configs)} runs crashed: "
                               + ", ".join(failed))
        return configs


class PrepareJob(submitit.helpers.Checkpointable):
    """A slice of a real source's preparation (`mvlib.data.build.prepare_slice`). Requeued on
    preemption or timeout, it redoes only the chunks it had not finished."""

    def __call__(self, staging: str, chunks: list[int]) -> str:
        prepare_slice(staging, chunks)
        return staging


class Slurm:
    """A sweep executor: each run an array task on SLURM (see the module docstring)."""

    def __init__(self, options: SlurmOptions | None = None, poll_s: float = 5.0,
                 runs_per_job: int = 1):
        if runs_per_job < 1:
            raise ValueError(f"runs_per_job must be at least 1, not {runs_per_job}")
        self.options = options or SlurmOptions()
        self.poll_s = poll_s
        self.runs_per_job = runs_per_job

    def executor(self, store: Path, cpus: int, gpus: int, name: str = "mvlib"
                 ) -> submitit.SlurmExecutor:
        o = self.options
        ex = submitit.SlurmExecutor(folder=store / "slurm" / "%j", max_num_timeout=o.max_requeues)
        params = dict(job_name=name, time=o.time_min, partition=o.partition,
                      account=o.account, qos=o.qos, constraint=o.constraint,
                      cpus_per_task=cpus, gpus_per_node=gpus or None,
                      mem=f"{int(o.mem_gb * 1024)}MB" if o.mem_gb else None,
                      array_parallelism=o.array_parallelism, signal_delay_s=o.signal_delay_s,
                      additional_parameters=dict(o.sbatch) or None)
        ex.update_parameters(**{k: v for k, v in params.items() if v is not None})
        return ex

    def run(self, configs: list[RunConfig], store: Path) -> None:
        store = Path(store)
        waiting, todo = {}, []
        queued = queue()
        for cfg in configs:
            run = RunDir(cfg, store)
            run.create()
            job = _recorded(run)
            if job and queued.get(job["job"]) in ALIVE:  # a driver before us submitted it
                waiting[run.path] = (run, job)
            else:
                todo.append(run)
        if todo:
            ex = self.executor(store, self.options.cpus or max(r.cfg.threads for r in todo),
                               self.options.gpus)
            k = self.runs_per_job
            packs = [todo[i:i + k] for i in range(0, len(todo), k)]
            with ex.batch():
                submitted = [ex.submit(TrainJob(), str(p[0].path / "config.json"), str(store))
                             if k == 1 else
                             ex.submit(TrainJobs(), [str(r.path / "config.json") for r in p],
                                       str(store)) for p in packs]
            jobs = [j for p, j in zip(packs, submitted, strict=True) for _ in p]
            for r, j in zip(todo, jobs, strict=True):
                info = {"job": j.job_id, "log": str(j.paths.stdout), "submitted": time.time(),
                        "options": asdict(self.options)}
                write_json(r.path / "slurm.json", info)
                for name, target in (("slurm.out", j.paths.stdout), ("slurm.err", j.paths.stderr)):
                    link = r.path / name  # the log, from the run's folder
                    link.unlink(missing_ok=True)
                    link.symlink_to(target)
                waiting[r.path] = (r, info)
        self._wait(waiting)

    def prepare(self, staging: Path, slices: list[list[int]]) -> None:
        """Prepare `slices` of chunks of a staging folder (mvlib.data.build) as an array, a
        task per slice: one CPU each, or, when the jobs make heatmaps with the patch
        classifier, the options' GPUs and CPUs. The jobs are recorded in the folder's
        `slurm.json`: a new driver waits on the ones still queued or running, then submits
        only the chunks still missing. A task that ends with chunks missing is reported with
        its log."""
        staging = Path(staging)
        record = staging / "slurm.json"
        jobs = json.loads(record.read_text()) if record.exists() else []
        states = queue()
        self._wait_jobs([j for j in jobs if states.get(j["job"]) in ALIVE])
        slices = [c for c in ([k for k in s if not chunk_done(staging, k)] for s in slices)
                  if c]
        if slices:
            heat = json.loads((staging / "job.json").read_text())["heatmaps"]
            o = self.options
            ex = self.executor(staging.parent.parent, (o.cpus or 1) if heat else 1,
                               o.gpus if heat else 0, name="mvlib-prepare")
            with ex.batch():
                submitted = [ex.submit(PrepareJob(), str(staging), s) for s in slices]
            new = [{"job": j.job_id, "log": str(j.paths.stdout), "chunks": s}
                   for j, s in zip(submitted, slices, strict=True)]
            write_json(record, jobs + new)
            self._wait_jobs(new)
            failed = [j for j in new if not all(chunk_done(staging, k) for k in j["chunks"])]
            if failed:
                raise RuntimeError(
                    f"{len(failed)} preparation job(s) left the queue with chunks missing: "
                    + "; ".join(f"job {j['job']} (chunks {j['chunks']}, log {j['log']})"
                                for j in failed[:5]))

    def _wait_jobs(self, jobs: list[dict]) -> None:
        """Until none of `jobs` is queued or running."""
        bar = tqdm(total=len(jobs), desc="preparation jobs (SLURM)", unit="job", leave=False,
                   disable=None or not jobs)
        while jobs:
            states = queue()
            jobs = [j for j in jobs if states.get(j["job"]) in ALIVE]
            bar.n = bar.total - len(jobs)
            bar.refresh()
            if jobs:
                time.sleep(self.poll_s)
        bar.close()

    def _wait(self, waiting: dict[Path, tuple[RunDir, dict]]) -> None:
        failed = []
        bar = tqdm(total=len(waiting), desc="runs (SLURM)", unit="run", leave=False,
                   disable=None)
        while waiting:
            states = queue()
            for path, (run, job) in list(waiting.items()):
                if states.get(job["job"]) in ALIVE:
                    continue
                del waiting[path]
                bar.update()
                if not run.finished:
                    failed.append(f"{run.path} (job {job['job']}, log {job['log']})")
            counts = [states.get(job["job"]) for _, job in waiting.values()]
            queued, running = (sum(s == "PENDING" for s in counts),
                               sum(s == "RUNNING" for s in counts))
            bar.set_postfix(queued=queued, running=running)
            report(bar.n, bar.total, queued=queued, running=running)
            if waiting:
                time.sleep(self.poll_s)
        bar.close()
        if failed:
            raise RuntimeError(f"{len(failed)} run(s) left the queue unfinished: "
                               + "; ".join(failed))


def _recorded(run: RunDir) -> dict | None:
    p = run.path / "slurm.json"
    return json.loads(p.read_text()) if p.exists() else None
