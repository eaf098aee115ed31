"""The on-disk data set: validation, error messages, and resuming an interrupted build."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mvlib.data.store as store
import mvlib.experiment.profiles
import mvlib.synth.generate as gen
from mvlib.data.store import REQUIRED_COLUMNS, BreastDataset, DatasetError, ViewArray


def _smoke_cfg(train: int, val: int, test: int):
    return dataclasses.replace(mvlib.experiment.profiles.get("smoke").synthetic_config(),
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
    assert data.meta["format_version"] == 2
    assert isinstance(data.cc, np.ndarray) and not data.cc.flags.writeable  # small: in memory
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


def _rewrite(root: Path, view: str, arr: np.ndarray, shard: int) -> Path:
    """Replace a view's array with `arr` (same codecs, `shard` breasts per shard)."""
    path = root / f"{view}.zarr"
    shutil.rmtree(path)
    store.create_arrays(root, len(arr), {view: list(arr.shape[1:])}, shard)
    store.write_arrays(root, 0, {view: arr})
    return path


@pytest.mark.parametrize("view", ["cc", "mlo"])
def test_array_of_the_wrong_shape(copy, view):
    good = BreastDataset.open(copy)
    arr = getattr(good, view)
    wider = np.zeros((arr.shape[0], arr.shape[1], arr.shape[2] + 1, arr.shape[3]), np.float16)
    path = _rewrite(copy, view, wider, good.meta["shard"])
    _open_fails_naming(copy, path, match="shape")


def test_array_with_too_few_rows(copy):
    good = BreastDataset.open(copy)
    path = _rewrite(copy, "mlo", np.asarray(good.mlo[:-2]), good.meta["shard"])
    _open_fails_naming(copy, path, match="shape")


def _shard(root: Path, view: str, k: int) -> Path:
    return root / f"{view}.zarr" / "c" / str(k) / "0" / "0" / "0"


def test_truncated_shard(copy):
    path = _shard(copy, "cc", 1)
    path.write_bytes(path.read_bytes()[:1000])
    _open_fails_naming(copy, path, match="breasts 32-63")


def test_damaged_shard_is_named_not_misread(copy):
    # A few bytes flipped inside a breast's compressed chunk: its checksum fails.
    path = _shard(copy, "mlo", 0)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 3:len(raw) // 3 + 8] = bytes(b ^ 0xFF for b in raw[len(raw) // 3:
                                                                       len(raw) // 3 + 8])
    path.write_bytes(bytes(raw))
    _open_fails_naming(copy, path, match="breasts 0-31")


def test_missing_shard(copy):
    path = _shard(copy, "cc", 1)
    path.unlink()
    _open_fails_naming(copy, path, match="missing shard")


def test_missing_array(copy):
    shutil.rmtree(copy / "mlo.zarr")
    _open_fails_naming(copy, copy / "mlo.zarr", match="missing")


def test_large_sets_are_read_per_breast_and_name_a_damaged_shard(copy, monkeypatch):
    whole = BreastDataset.open(copy)
    monkeypatch.setattr(store, "IN_MEMORY_BYTES", 0)
    data = BreastDataset.open(copy)
    assert isinstance(data.cc, ViewArray) and data.cc.shape == whole.cc.shape
    np.testing.assert_array_equal(data.cc[3, :1], whole.cc[3, :1])
    idx = np.array([40, 2, 33])
    np.testing.assert_array_equal(data.mlo[idx], whole.mlo[idx])
    path = _shard(copy, "cc", 1)
    path.write_bytes(path.read_bytes()[:1000])
    np.testing.assert_array_equal(data.cc[0], whole.cc[0])  # other shards still read
    with pytest.raises(DatasetError) as info:
        data.cc[40]
    assert str(path) in str(info.value) and "breasts 32-63" in str(info.value)


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_per_breast_reads_work_in_loader_workers(copy, monkeypatch, start):
    # Each worker opens its own handle: forked after the parent used zarr, or spawned (the
    # ViewArray pickled without its handle).
    import pickle

    import torch

    from mvlib.data.loader import BreastArrays

    whole = BreastDataset.open(copy)
    monkeypatch.setattr(store, "IN_MEMORY_BYTES", 0)
    data = BreastDataset.open(copy)
    data.cc[0]  # the parent has used zarr before the workers start
    assert pickle.loads(pickle.dumps(data.cc))._arrays is None
    loader = torch.utils.data.DataLoader(
        BreastArrays(data), batch_size=8, num_workers=2,
        multiprocessing_context=torch.multiprocessing.get_context(start))
    got = torch.cat([b["cc"] for b in loader]).numpy()
    np.testing.assert_array_equal(got, whole.cc)


def test_a_data_set_in_the_old_format_is_rebuilt_saying_so(built, tmp_path):
    cfg = _smoke_cfg(16, 8, 8)
    root = gen.dataset_dir(cfg, tmp_path)
    root.mkdir(parents=True)
    (root / "meta.json").write_text(json.dumps({"format_version": 1, "shapes": {},
                                                "channels": []}))
    (root / "cc.npy").write_bytes(b"old")
    with pytest.warns(UserWarning, match="format 1"):
        data = gen.generate_dataset(cfg, tmp_path, progress=False, workers=1)
    assert data.meta["format_version"] == 2 and not (root / "cc.npy").exists()
    np.testing.assert_array_equal(data.cc, BreastDataset.open(built).cc)


def test_a_write_must_cover_whole_shards(copy):
    with pytest.raises(ValueError, match="shard boundary"):
        store.write_arrays(copy, 3, {"cc": np.zeros((1, 3, 64, 48), np.float16)})


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
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(reference.root) for p in reference.root.rglob("*")
                           if p.is_file())
    assert {"manifest.csv", "findings.csv", "meta.json"} <= {str(f) for f in files}
    for name in files:
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


def test_chunks_hold_one_breast_at_the_papers_size_and_several_small_ones():
    assert store.chunk_breasts((3, 2677, 1942), 8) == 1
    assert store.chunk_breasts((3, 96, 72), 32) == 16  # 41 kB each, up to 1 MiB, divides 32
    assert store.chunk_breasts((1, 64, 48), 8) == 8
    for shape, shard in (((3, 300, 200), 32), ((1, 500, 400), 8)):
        k = store.chunk_breasts(shape, shard)
        assert shard % k == 0 and (k == 1 or k * 2 * np.prod(shape) <= store.CHUNK_BYTES)


def _uint16_set(root: Path, views: dict[str, np.ndarray], shard: int) -> dict:
    """A finished data set's arrays with a uint16 image channel, as real sources store it."""
    n = len(views["cc"])
    meta = {"shapes": {v: list(a.shape[1:]) for v, a in views.items()}, "shard": shard,
            "image_dtype": "uint16", "channels": list(store.CHANNELS[:views["cc"].shape[1]])}
    root.mkdir(parents=True)
    store.create_arrays(root, n, meta["shapes"], shard, "uint16")
    for lo in range(0, n, shard):
        store.write_arrays(root, lo, {v: a[lo:lo + shard] for v, a in views.items()})
    return meta


def test_a_uint16_image_keeps_a_12_bit_mammogram_exactly_and_heatmaps_as_float16(tmp_path):
    rng = np.random.default_rng(0)
    n, shard = 6, 4  # two shards, the last one partial
    image = rng.integers(0, 4096, (n, 1, 10, 8)) / 4095  # 12-bit grey levels
    heat = rng.random((n, 2, 10, 8)).astype(np.float16)
    views = {v: np.concatenate([image, heat.astype(np.float64)], axis=1).astype(np.float32)
             for v in store.VIEWS}
    meta = _uint16_set(tmp_path / "d", views, shard)
    assert store.zarr.open_array(str(tmp_path / "d" / "cc.zarr")).dtype == np.uint16
    cc = ViewArray(tmp_path / "d" / "cc.zarr", n, meta)
    assert cc.dtype == np.float32 and cc.shape == (n, 3, 10, 8)
    got = cc.read_all()
    # every 12-bit level comes back to within the uint16 step (float16 would lose a bit)
    assert np.abs(got[:, :1] - image).max() <= 0.5 / store.IMAGE_SCALE + 1e-7
    assert np.round(got[:, :1] * 4095).astype(int).tolist() == \
        np.round(image * 4095).astype(int).tolist()
    assert np.abs(image.astype(np.float16) - image).max() > 0.5 / store.IMAGE_SCALE
    assert np.array_equal(got[:, 1:].astype(np.float16), heat)  # heatmaps exactly
    # the indexing the rest of mvlib uses
    assert np.array_equal(cc[2], got[2]) and np.array_equal(cc[2, :1], got[2, :1])
    assert np.array_equal(cc[2, 0], got[2, 0]) and np.array_equal(cc[[1, 5]], got[[1, 5]])
    assert np.array_equal(cc[1:5, 1:], got[1:5, 1:])


def test_an_image_only_read_does_not_decode_the_heatmaps(tmp_path):
    views = {v: np.random.default_rng(1).random((4, 3, 6, 5)).astype(np.float32)
             for v in store.VIEWS}
    meta = _uint16_set(tmp_path / "d", views, 4)
    cc = ViewArray(tmp_path / "d" / "cc.zarr", 4, meta)
    shard = tmp_path / "d" / "cc_heatmaps.zarr" / "c" / "0" / "0" / "0" / "0"
    shard.write_bytes(b"damaged" + shard.read_bytes()[7:])
    assert cc[0, :1].shape == (1, 6, 5)  # the loader's image-only read
    with pytest.raises(DatasetError, match="cc_heatmaps.zarr.*breasts 0-3"):
        cc[0]
