"""A SLURM job stopped by its time limit is requeued and resumes (mvlib.executors.slurm, on the
single-node cluster `.ci/slurm.sh start` brings up): a file of its own, started first on a
test worker of its own (tests/conftest.py), since it mostly waits on the cluster's clock."""

import json
import subprocess
import threading
import time

from slurm_helpers import cfg, needs_slurm, wait_for

from mvlib.executors import slurm
from mvlib.executors.sweep import sweep
from mvlib.experiment.runs import RunDir

pytestmark = needs_slurm


def test_a_job_stopped_by_its_time_limit_is_requeued_and_resumes(tmp_path):
    # Once the run is training (submitit's signal handler is in place), the test cuts the
    # job's time limit to 1 minute, as an admin would; SLURM sends the requeue signal 30 s
    # before it, and each requeue resumes from the last finished epoch. Submitting with a
    # 1-minute limit instead flaked: SLURM may send the signal up to 60 s early (sbatch's
    # --signal), so it could arrive while the job was still importing, before the handler.
    c, store = cfg(epochs=100), tmp_path / "store"
    options = slurm.SlurmOptions(time_min=10, signal_delay_s=30, max_requeues=6)
    run, errors = RunDir(c, store), []

    def drive():
        try:
            sweep([c], slurm.Slurm(options, poll_s=0.5), store)
        except RuntimeError as e:
            errors.append(e)

    def scontrol(*args: str, check: bool = True) -> None:
        subprocess.run(["scontrol", "update", *args], check=check, capture_output=True)

    driver = threading.Thread(target=drive)
    driver.start()
    wait_for(lambda: len(run.metrics()) >= 1)  # training, so the handler is installed
    job = json.loads((run.path / "slurm.json").read_text())["job"]
    scontrol(f"JobId={job}", "TimeLimit=1")
    deadline = time.time() + 300
    while driver.is_alive() and time.time() < deadline:
        # SLURM holds a requeued job back for about two minutes (its begin time): let it go,
        # with its time limit back to what was submitted
        if slurm.queue().get(job) == "PENDING":
            scontrol(f"JobId={job}", "StartTime=now", f"TimeLimit={options.time_min}", check=False)
        time.sleep(0.5)
    driver.join(1)
    assert not errors and run.status()["state"] == "done"
    assert len(run.metrics()) == 100
    log = json.loads((run.path / "slurm.json").read_text())["log"]
    text = open(log).read() + open(log.replace(".out", ".err")).read()
    assert "this job is timed-out" in text and "DUE TO JOB REQUEUE" in text
    # (that a resubmitted run equals the run trained in one go: tests/test_slurm.py's scancel
    # test; this one does not train the 100 epochs a second time to show it again)
