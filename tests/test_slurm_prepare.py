"""A real source's preparation as a SLURM job array (mvlib.executors.slurm.Slurm.prepare) on the
single-node cluster `.ci/slurm.sh start` brings up; a file of its own so that pytest-xdist
runs it beside tests/test_slurm.py."""

import json
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import zarr
from slurm_helpers import needs_slurm, wait_for

from mvlib.data import build
from mvlib.data.adapters import examples
from mvlib.data.real import prepare_real
from mvlib.executors import slurm

pytestmark = needs_slurm


SMOKE_SIZES = {"cc": (64, 48), "mlo": (72, 42)}


def _stored(root: Path) -> dict:
    """Every zarr array's stored values and the tables of the data set at `root`."""
    out = {p.name: zarr.open_array(str(p), mode="r")[...] for p in root.glob("*.zarr")}
    return {**out, "manifest": (root / "manifest.csv").read_text(),
            "meta": (root / "meta.json").read_text().replace(str(root.parent.parent), "")}


def _same_store(a: Path, b: Path) -> None:
    assert a.name == b.name
    x, y = _stored(a), _stored(b)
    assert sorted(x) == sorted(y)
    for key in x:
        assert (np.array_equal(x[key], y[key]) and x[key].dtype == y[key].dtype
                if key.endswith(".zarr") else x[key] == y[key]), key


@pytest.fixture(scope="module")
def vindr(tmp_path_factory) -> Path:
    return examples.WRITERS["vindr"](tmp_path_factory.mktemp("downloads") / "vindr")


def test_a_preparation_as_a_slurm_array_equals_one_process(tmp_path, vindr):
    one = prepare_real("vindr", vindr, SMOKE_SIZES, tmp_path / "one", progress=False,
                       workers=1)
    jobs = prepare_real("vindr", vindr, SMOKE_SIZES, tmp_path / "array", progress=False,
                        run_slices=slurm.Slurm(poll_s=0.5).prepare)
    _same_store(one.root, jobs.root)
    logs = list((tmp_path / "array" / "slurm").glob("*/*_log.out"))
    assert len(logs) == 3  # a task for each of the three chunks


def test_a_cancelled_preparation_job_is_reported_then_a_rerun_finishes_it(tmp_path, vindr):
    store, errors = tmp_path / "array", []

    def drive():
        try:
            prepare_real("vindr", vindr, SMOKE_SIZES, store, progress=False,
                         run_slices=slurm.Slurm(poll_s=0.5).prepare)
        except RuntimeError as e:
            errors.append(e)

    driver = threading.Thread(target=drive)
    driver.start()
    record = lambda: list(store.glob("data/*.staging/slurm.json"))  # noqa: E731
    wait_for(lambda: record() and json.loads(record()[0].read_text()))
    first = json.loads(record()[0].read_text())[0]
    subprocess.run(["scancel", "--signal=KILL", "--full", first["job"]], check=True)
    driver.join(timeout=300)
    assert len(errors) == 1 and f"job {first['job']} (chunks {first['chunks']}" in str(errors[0])
    staging = record()[0].parent
    assert not all(build.chunk_done(staging, k) for k in first["chunks"])
    again = prepare_real("vindr", vindr, SMOKE_SIZES, store, progress=False,
                         run_slices=slurm.Slurm(poll_s=0.5).prepare)
    one = prepare_real("vindr", vindr, SMOKE_SIZES, tmp_path / "one", progress=False,
                       workers=1)
    _same_store(again.root, one.root)


def test_slurm_jobs_make_the_heatmaps_the_cache_lacks(tmp_path, patch_weights):
    # GPU jobs on a cluster with GPUs; this one has none, so the jobs run the classifier on
    # their CPU
    root = examples.write_vindr(tmp_path / "vindr", studies=3, shape=(420, 480))
    store = tmp_path / "store"
    one = prepare_real("vindr", root, SMOKE_SIZES, store, progress=False, workers=1,
                       patch_weights=patch_weights)
    made = {v: one_view[...] for v, one_view in (("cc", one.cc), ("mlo", one.mlo))}
    entries = sorted((store / "heatmaps").rglob("*.npz"))
    for entry in entries[::2]:  # half the images' outputs lost: the jobs make them again
        entry.unlink()
    shutil.rmtree(one.root)
    jobs = prepare_real("vindr", root, SMOKE_SIZES, store, progress=False,
                        run_slices=slurm.Slurm(poll_s=0.5).prepare, patch_weights=patch_weights)
    assert jobs.root.name == one.root.name and jobs.cc.shape[1] == 3
    assert sorted((store / "heatmaps").rglob("*.npz")) == entries
    assert len(list((store / "slurm").glob("*/*_log.out"))) == 1  # one chunk, one task
    for view, array in (("cc", jobs.cc), ("mlo", jobs.mlo)):
        np.testing.assert_array_equal(array[:, 0], made[view][:, 0])
        # the classifier's last bits may differ with the job's thread count
        np.testing.assert_allclose(array[:, 1:], made[view][:, 1:], atol=1e-3)
