"""The on-disk data set: validation, error messages, and resuming an interrupted build."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mvlib.profiles
import mvlib.synth.generate as gen
from mvlib.data.store import REQUIRED_COLUMNS, BreastDataset, DatasetError


def _smoke_cfg(train: int, val: int, test: int):
    return dataclasses.replace(mvlib.profiles.get("smoke").synthetic_config(),
                               patients={"train": train, "val": val, "test": test})


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A finished small data set; tests that damage it work on a copy."""
    data = gen.generate_dataset(_smoke_cfg(16, 8, 8), tmp_path_factory.mktemp("store"),
                                progress=False)
    return data.root


@pytest.fixture
def copy(built, tmp_path) -> Path:
    dst = tmp_path / built.name
    shutil.copytree(built, dst)
    return dst


def _open_fails_naming(root: Path, path: Path, match: str | None = None) -> None:
    """Opening `root` raises DatasetError whose message names `path` (and contains `match`)."""
    with pytest.raises(DatasetError) as info:
        BreastDataset.open(root)
    message = str(info.value)
    assert str(path) in message, message
    if match is not None:
        assert match in message, message


# --- a valid data set ----------------------------------------------------------------------

def test_open_validates_a_generated_set(built):
    data = BreastDataset.open(built)
    assert data.root == built
    assert data.meta["format_version"] == 1
    assert data.channels == ["image", "benign_heatmap", "malignant_heatmap"]
    n = len(data.manifest)
    assert n == 2 * (16 + 8 + 8)
    assert data.cc.shape == (n, *data.meta["shapes"]["cc"]) == (n, 3, 64, 48)
    assert data.mlo.shape == (n, *data.meta["shapes"]["mlo"]) == (n, 3, 72, 42)
    assert data.cc.dtype == np.float16 and data.mlo.dtype == np.float16
    assert set(REQUIRED_COLUMNS) <= set(data.manifest.columns)
    assert np.isfinite(data.cc[:4].astype(np.float32)).all()
    assert 0 <= data.cc[:4].min() and data.cc[:4].max() <= 1


def test_indices_and_labels(built):
    data = BreastDataset.open(built)
    split = data.manifest["split"].to_numpy()
    for s, n in (("train", 32), ("val", 16), ("test", 16)):
        idx = data.indices(s)
        assert len(idx) == n and (split[idx] == s).all()
    labels = data.labels()
    assert labels.dtype == np.int64 and labels.shape == (len(split), 2)
    np.testing.assert_array_equal(labels[:, 0], data.manifest["malignant"].to_numpy())
    np.testing.assert_array_equal(labels[:, 1], data.manifest["benign"].to_numpy())


def test_counts_match_the_manifest(built):
    data = BreastDataset.open(built)
    m = data.manifest
    counts = data.counts()
    assert list(counts.index) == ["train", "val", "test", "total"]
    assert list(counts.columns) == ["breasts", "patients", "malignant", "benign"]
    assert counts.loc["total"].tolist() == [len(m), m["patient_id"].nunique(),
                                            int(m["malignant"].sum()), int(m["benign"].sum())]
    for s, patients in (("train", 16), ("val", 8), ("test", 8)):
        part = m[m["split"] == s]
        assert counts.loc[s].tolist() == [len(part), patients, int(part["malignant"].sum()),
                                          int(part["benign"].sum())]
        assert part["patient_id"].nunique() == patients
    assert counts.loc["total", "patients"] == 32
    assert counts.loc["total", "malignant"] > 0 and counts.loc["total", "benign"] > 0


# --- damaged data sets -----------------------------------------------------------------------

def test_dataset_error_is_a_value_error():
    assert issubclass(DatasetError, ValueError)


def test_missing_folder(tmp_path):
    missing = tmp_path / "data" / "synthetic-nope"
    _open_fails_naming(missing, missing)


def test_corrupt_meta_json(copy):
    (copy / "meta.json").write_text('{"format_version": 1, "shapes": ')
    _open_fails_naming(copy, copy / "meta.json")


def test_missing_meta_json(copy):
    (copy / "meta.json").unlink()
    _open_fails_naming(copy, copy / "meta.json")


def test_wrong_format_version(copy):
    meta = json.loads((copy / "meta.json").read_text())
    meta["format_version"] = 99
    (copy / "meta.json").write_text(json.dumps(meta))
    _open_fails_naming(copy, copy / "meta.json", match="99")


@pytest.mark.parametrize("column", ["split", "benign", "patient_id"])
def test_manifest_missing_a_required_column(copy, column):
    path = copy / "manifest.csv"
    pd.read_csv(path).drop(columns=[column]).to_csv(path, index=False)
    _open_fails_naming(copy, path, match=column)


def test_patient_in_two_splits(copy):
    path = copy / "manifest.csv"
    m = pd.read_csv(path)
    assert m.loc[1, "patient_id"] == m.loc[0, "patient_id"] and m.loc[0, "split"] == "train"
    m.loc[1, "split"] = "val"  # patient 0's right breast moves to val, the left stays in train
    m.to_csv(path, index=False)
    _open_fails_naming(copy, path, match="several splits")


def test_unknown_split_value(copy):
    path = copy / "manifest.csv"
    m = pd.read_csv(path)
    m.loc[m["split"] == "test", "split"] = "holdout"
    m.to_csv(path, index=False)
    _open_fails_naming(copy, path, match="holdout")


def test_breast_ids_out_of_order(copy):
    path = copy / "manifest.csv"
    m = pd.read_csv(path)
    m.iloc[[0, 2]] = m.iloc[[2, 0]].to_numpy()  # swap two rows (same split, other patients)
    m.to_csv(path, index=False)
    _open_fails_naming(copy, path, match="breast_id")


@pytest.mark.parametrize("view", ["cc", "mlo"])
def test_array_of_the_wrong_shape(copy, view):
    path = copy / f"{view}.npy"
    good = np.load(path, mmap_mode="r").shape
    np.save(path, np.zeros((good[0], good[1], good[2] + 1, good[3]), np.float16))
    _open_fails_naming(copy, path, match="shape")


def test_array_with_too_few_rows(copy):
    path = copy / "mlo.npy"
    arr = np.load(path)
    np.save(path, arr[:-2])
    _open_fails_naming(copy, path)


def test_truncated_array_file(copy):
    path = copy / "cc.npy"
    path.write_bytes(path.read_bytes()[:1000])
    _open_fails_naming(copy, path)


# --- resuming an interrupted build ----------------------------------------------------------

class Interrupted(RuntimeError):
    pass


def _interrupt_then_resume(cfg, store: Path, monkeypatch) -> dict:
    """Build with generate_chunk failing after 2 chunks, then build again unpatched.

    Returns what the test needs: the progress file at the interruption, whether the final
    folder existed then, the chunks the second build generated, and the final root."""
    original = gen.generate_chunk
    calls: list[int] = []

    def crashing(cfg_, k):
        if k == 2:  # by index, not call order: chunks are generated in threads
            raise Interrupted(f"killed before chunk {k}")
        calls.append(k)
        return original(cfg_, k)

    monkeypatch.setattr(gen, "generate_chunk", crashing)
    with pytest.raises(Interrupted):
        gen.generate_dataset(cfg, store, progress=False, workers=1)
    root = gen.dataset_dir(cfg, store)
    partial = root.with_name(root.name + ".partial")
    state = {"root_existed": root.exists(), "partial": partial,
             "progress": json.loads((partial / "progress.json").read_text())}

    resumed_calls: list[int] = []

    def counting(cfg_, k):
        resumed_calls.append(k)
        return original(cfg_, k)

    monkeypatch.setattr(gen, "generate_chunk", counting)
    state["data"] = gen.generate_dataset(cfg, store, progress=False, workers=1)
    state["resumed_calls"] = resumed_calls
    monkeypatch.setattr(gen, "generate_chunk", original)
    return state


@pytest.fixture
def resume_cfg():
    cfg = _smoke_cfg(40, 16, 16)
    assert -(-gen.n_breasts(cfg) // gen.CHUNK) >= 4  # several chunks of 32 breasts
    return cfg


def test_interrupted_build_leaves_only_a_partial_folder_and_rebuilds_identically(
        resume_cfg, tmp_path, monkeypatch):
    state = _interrupt_then_resume(resume_cfg, tmp_path / "resumed", monkeypatch)
    assert not state["root_existed"]
    assert state["progress"]["done"] == [0, 1]
    assert state["progress"]["n"] == gen.n_breasts(resume_cfg)
    root = state["data"].root
    assert root.is_dir() and not state["partial"].exists()

    reference = gen.generate_dataset(resume_cfg, tmp_path / "uninterrupted", progress=False)
    assert reference.root.name == root.name
    for name in ("cc.npy", "mlo.npy", "manifest.csv", "findings.csv", "meta.json"):
        assert (root / name).read_bytes() == (reference.root / name).read_bytes(), name


def test_resume_generates_only_the_missing_chunks(resume_cfg, tmp_path, monkeypatch):
    state = _interrupt_then_resume(resume_cfg, tmp_path / "resumed", monkeypatch)
    n_chunks = -(-gen.n_breasts(resume_cfg) // gen.CHUNK)
    assert sorted(state["resumed_calls"]) == list(range(2, n_chunks))


def test_finished_set_is_opened_not_rebuilt(built, monkeypatch):
    store = built.parent.parent
    cfg = _smoke_cfg(16, 8, 8)
    assert gen.dataset_dir(cfg, store) == built

    def must_not_run(*args):
        raise AssertionError("generate_chunk called for a finished data set")

    monkeypatch.setattr(gen, "generate_chunk", must_not_run)
    assert gen.generate_dataset(cfg, store, progress=False, workers=1).root == built
