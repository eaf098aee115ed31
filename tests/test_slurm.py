"""mvlib.executors.slurm against a real SLURM cluster: the single-node one `.ci/slurm.sh start`
brings up (CI runs it before `make test`). No mocks: sbatch, squeue, scancel and the time limit are
SLURM's own."""

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from slurm_helpers import cfg, needs_slurm, same_as_in_process, wait_for

from mvlib.core.paths import REPO
from mvlib.executors import slurm
from mvlib.executors.sweep import sweep
from mvlib.experiment.runs import RunDir

pytestmark = needs_slurm


def test_a_sweep_matches_in_process_and_a_crash_is_reported_with_its_log(tmp_path):
    good = [cfg(), cfg(seed=1)]
    broken = cfg(model="joint", init_from={"cc": "nowhere/no-run"})  # raises in train
    with pytest.raises(RuntimeError, match=r"1 run\(s\) left the queue unfinished.*log "):
        sweep([*good, broken], slurm.Slurm(poll_s=0.5), tmp_path / "store")
    runs = [RunDir(c, tmp_path / "store") for c in good]
    for run in runs:
        assert run.status()["state"] == "done"
        info = json.loads((run.path / "slurm.json").read_text())
        assert run.status()["slurm_job"] == info["job"]  # the job that ran it, as submitted
        same_as_in_process(run, tmp_path)
    folder = RunDir(broken, tmp_path / "store").path
    log = json.loads((folder / "slurm.json").read_text())["log"]
    assert (folder / "slurm.out").resolve() == Path(log).resolve()  # linked from the run
    assert "nowhere/no-run" in (folder / "slurm.out").read_text() + \
        (folder / "slurm.err").read_text()


def test_runs_packed_into_one_job_share_it_and_a_crash_stops_none_of_the_others(tmp_path):
    good = [cfg(seed=7), cfg(seed=8)]
    broken = cfg(model="joint", init_from={"cc": "nowhere/no-run"})  # raises in train
    with pytest.raises(RuntimeError, match=r"1 run\(s\) left the queue unfinished"):
        sweep([good[0], broken, good[1]], slurm.Slurm(poll_s=0.5, runs_per_job=3),
              tmp_path / "store")
    runs = [RunDir(c, tmp_path / "store") for c in (good[0], broken, good[1])]
    jobs = {json.loads((r.path / "slurm.json").read_text())["job"] for r in runs}
    assert len(jobs) == 1  # one job ran the three
    for run in (runs[0], runs[2]):
        assert run.done and run.status()["slurm_job"] in jobs
        same_as_in_process(run, tmp_path)
    assert "nowhere/no-run" in (runs[1].path / "log.txt").read_text()


def test_scancel_mid_run_then_the_sweep_again_finishes_as_if_uninterrupted(tmp_path):
    # scancel sends SIGTERM, which submitit's job ignores (preemption sends it before the
    # requeue signal), then SIGKILL after the cluster's KillWait (2 s in .ci/slurm.sh)
    c, store = cfg(epochs=12), tmp_path / "store"
    run, errors = RunDir(c, store), []

    def drive():
        try:
            sweep([c], slurm.Slurm(poll_s=0.5), store)
        except RuntimeError as e:
            errors.append(e)

    driver = threading.Thread(target=drive)
    driver.start()
    wait_for(lambda: len(run.metrics()) >= 2)  # mid-run: epochs finished, more to come
    job = json.loads((run.path / "slurm.json").read_text())["job"]
    subprocess.run(["scancel", job], check=True)
    driver.join(120)
    assert errors and "left the queue unfinished" in str(errors[0])
    assert run.status()["state"] == "running" and 2 <= len(run.metrics()) < 12
    sweep([c], slurm.Slurm(poll_s=0.5), store)  # resubmitted: resumes from last.pt
    assert json.loads((run.path / "slurm.json").read_text())["job"] != job
    same_as_in_process(run, tmp_path)


def test_a_new_driver_waits_on_the_recorded_job_and_submits_nothing_twice(tmp_path):
    c, store = cfg(epochs=6), tmp_path / "store"
    code = ("import sys; from pathlib import Path; from mvlib.executors import slurm; "
            "from mvlib.experiment.runs import RunConfig; "
            "from mvlib.executors.sweep import sweep; import json; "
            f"sweep([RunConfig.from_dict(json.loads({json.dumps(json.dumps(c.to_dict()))}))], "
            f"slurm.Slurm(poll_s=0.5), Path({str(store)!r}))")
    driver = subprocess.Popen([sys.executable, "-c", code], cwd=REPO)
    run = RunDir(c, store)
    wait_for(lambda: (run.path / "slurm.json").exists())
    first = json.loads((run.path / "slurm.json").read_text())["job"]
    driver.kill()  # the driver dies; its job goes on
    driver.wait()
    assert first in slurm.queue()
    sweep([c], slurm.Slurm(poll_s=0.5), store)
    assert json.loads((run.path / "slurm.json").read_text())["job"] == first
    assert run.status()["state"] == "done" and run.status()["slurm_job"] == first
    same_as_in_process(run, tmp_path)


def test_slurm_options_come_from_the_profile_then_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MVLIB_SLURM_PARTITION", "gpu")
    monkeypatch.setenv("MVLIB_SLURM_MEM_GB", "7.5")
    monkeypatch.setenv("MVLIB_SLURM_SBATCH", '{"mail-type": "END"}')
    o = slurm.SlurmOptions.from_env({"time_min": 30, "partition": "debug"})
    assert (o.partition, o.time_min, o.mem_gb, o.sbatch) == ("gpu", 30, 7.5, {"mail-type": "END"})
    bad = tmp_path / "slurm.json"
    bad.write_text('{"partitoin": "x"}')
    monkeypatch.setenv("MVLIB_SLURM_CONFIG", str(bad))
    with pytest.raises(ValueError, match=r"unknown SLURM options \['partitoin'\]"):
        slurm.SlurmOptions.from_env()
    monkeypatch.delenv("MVLIB_SLURM_CONFIG")
    monkeypatch.setenv("MVLIB_SLURM_TIME_MIN", "1")  # the signal could beat the job's start
    with pytest.raises(ValueError, match="time_min=1 min with signal_delay_s=120"):
        slurm.SlurmOptions.from_env()

