"""What the SLURM test files share: their skip marker, a smoke run config, a comparison with
the same run trained in-process, and a wait."""

import time

import pandas as pd
import pytest

from mvlib.executors import slurm
from mvlib.executors.sweep import InProcess, sweep
from mvlib.experiment.runs import RunConfig, RunDir

needs_slurm = pytest.mark.skipif(
    not slurm.available(),
    reason="no SLURM here: run `.ci/slurm.sh start` (as root; installs Debian's slurm-wlm)")

KNOBS = {"patients": {"train": 24, "val": 16, "test": 16}}


def cfg(**kw):
    base = dict(model="uni_cc", lr=3e-4, epochs=3, profile="smoke", tta_windows=3,
                knobs=KNOBS, experiment="t", threads=1)
    return RunConfig(**{**base, **kw})


def comparable(run: RunDir) -> tuple[pd.DataFrame, pd.DataFrame]:
    return run.metrics().drop(columns=["seconds"]), run.predictions()


def same_as_in_process(run: RunDir, tmp_path) -> None:
    ref = sweep([run.cfg], InProcess(), tmp_path / "in-process")[0]
    for a, b in zip(comparable(run), comparable(ref), strict=True):
        pd.testing.assert_frame_equal(a, b)


def wait_for(condition, timeout_s: float = 120) -> None:
    deadline = time.time() + timeout_s
    while not condition():
        assert time.time() < deadline, "timed out waiting"
        time.sleep(0.2)
