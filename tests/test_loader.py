"""Batches from a small generated data set: items, training sampler, evaluation, model input,
and the same batches read per breast from the store by loader threads."""

from __future__ import annotations

import dataclasses
import shutil
import threading

import numpy as np
import pandas as pd
import pytest
import torch

import mvlib.data.store as store
import mvlib.experiment.profiles
from mvlib.data.loader import (
    BreastArrays,
    eval_loader,
    loader_threads,
    to_model_input,
    train_loader,
    view_input,
)
from mvlib.data.store import BreastDataset, DatasetError, ViewArray
from mvlib.data.windows import standardise
from mvlib.synth.generate import generate_dataset

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    cfg = dataclasses.replace(mvlib.experiment.profiles.get("smoke").synthetic_config(),
                              patients={"train": 16, "val": 8, "test": 8})
    return generate_dataset(cfg, tmp_path_factory.mktemp("store"), progress=False)


def _sizes(data) -> dict[str, tuple[int, int]]:
    return {view: tuple(data.meta["shapes"][view][1:]) for view in ("cc", "mlo")}


@pytest.mark.parametrize("channels", [3, 1])
def test_breast_arrays_items(data, channels):
    ds = BreastArrays(data, channels=channels)
    assert len(ds) == len(data.manifest) == 64
    sizes = _sizes(data)
    for i in (0, 17, len(ds) - 1):
        item = ds[i]
        assert item["index"] == i
        for view in ("cc", "mlo"):
            assert item[view].dtype == torch.float16
            assert tuple(item[view].shape) == (channels, *sizes[view])
            stored = getattr(data, view)[i, :channels]
            np.testing.assert_array_equal(item[view].numpy(), stored)
        row = data.manifest.iloc[i]
        assert item["labels"].dtype == torch.int64
        assert item["labels"].tolist() == [int(row["malignant"]), int(row["benign"])]


def test_labels_are_malignant_then_benign(data):
    ds = BreastArrays(data)
    m = data.manifest
    expected = np.stack([m["malignant"].to_numpy(), m["benign"].to_numpy()], axis=1)
    np.testing.assert_array_equal(ds.labels.numpy(), expected)
    # The order matters only if the two columns differ somewhere; make sure this set shows it.
    assert (m["malignant"] != m["benign"]).any()


def test_channels_must_be_1_or_3(data):
    with pytest.raises(ValueError):
        BreastArrays(data, channels=2)


def test_more_channels_than_stored_raises(data):
    image_only = dataclasses.replace(data, cc=data.cc[:, :1], mlo=data.mlo[:, :1])
    assert len(BreastArrays(image_only, channels=1)) == 64
    with pytest.raises(ValueError, match="channel"):
        BreastArrays(image_only, channels=3)


def test_train_loader_batches_come_from_train_split(data):
    loader = train_loader(data, seed=0, batch_size=4)
    train = set(data.indices("train").tolist())
    labels = data.labels()
    n_biopsied = int(labels[sorted(train)].any(axis=1).sum())
    loader.sampler.set_epoch(0)
    batches = list(loader)
    assert batches, "no training batches"
    assert all(len(b["index"]) == 4 for b in batches[:-1])
    assert 1 <= len(batches[-1]["index"]) <= 4
    seen = torch.cat([b["index"] for b in batches]).tolist()
    assert set(seen) <= train
    # Exams (patients here): every biopsied one and as many biopsy-free ones, both breasts.
    m = data.manifest.loc[sorted(train)]
    positive = m.groupby("patient_id")[["malignant", "benign"]].max().any(axis=1)
    n_exams = int(positive.sum()) + min(int(positive.sum()), int((~positive).sum()))
    assert len(seen) == len(set(seen)) == 2 * n_exams  # two breasts per synthetic exam
    assert labels[seen].any(axis=1).sum() == n_biopsied  # every biopsied breast
    for b in batches:
        np.testing.assert_array_equal(b["labels"].numpy(), labels[b["index"].numpy()])
        assert b["cc"].shape[1:] == (3, *_sizes(data)["cc"])


def test_train_loader_follows_set_epoch(data):
    loader = train_loader(data, seed=7, batch_size=4)
    orders = {}
    for epoch in (0, 1, 0):
        loader.sampler.set_epoch(epoch)
        seen = torch.cat([b["index"] for b in loader]).tolist()
        assert seen == loader.sampler.epoch_indices(epoch).tolist()
        orders.setdefault(epoch, seen)
        assert seen == orders[epoch]  # epoch 0 again gives the same order
    assert orders[0] != orders[1]


def test_train_loader_channels(data):
    loader = train_loader(data, seed=0, batch_size=4, channels=1)
    batch = next(iter(loader))
    assert batch["cc"].shape == (4, 1, *_sizes(data)["cc"])
    assert batch["mlo"].shape == (4, 1, *_sizes(data)["mlo"])


def test_eval_loader_covers_every_val_index_once(data):
    val = data.indices("val").tolist()
    assert len(val) == 16
    loader = eval_loader(data, "val", batch_size=5)  # a partial last batch
    batches = list(loader)
    seen = torch.cat([b["index"] for b in batches]).tolist()
    assert seen == val  # each once, in data set order
    assert [len(b["index"]) for b in batches] == [5, 5, 5, 1]
    default = torch.cat([b["index"] for b in eval_loader(data, "val")]).tolist()
    assert default == val


def test_to_model_input_float32_and_stored_sizes(data):
    batch = next(iter(eval_loader(data, "test", batch_size=6)))
    out = to_model_input(batch, CPU, augment=False)
    assert set(out) == {"cc", "mlo"}
    for view, size in _sizes(data).items():
        assert out[view].dtype == torch.float32
        assert out[view].device == CPU
        assert tuple(out[view].shape) == (6, 3, *size)
        # Evaluation: the whole crop, standardised.
        torch.testing.assert_close(out[view], standardise(batch[view].float()))
        torch.testing.assert_close(out[view][:, 0].mean(dim=(1, 2)), torch.zeros(6),
                                   atol=1e-4, rtol=0)


def test_to_model_input_augmentation(data):
    batch = next(iter(eval_loader(data, "test", batch_size=6)))
    plain = to_model_input(batch, CPU, augment=False)
    aug = to_model_input(batch, CPU, augment=True, generator=torch.Generator().manual_seed(0))
    again = to_model_input(batch, CPU, augment=True,
                           generator=torch.Generator().manual_seed(0))
    for view, size in _sizes(data).items():
        assert aug[view].dtype == torch.float32
        assert tuple(aug[view].shape) == (6, 3, *size)
        assert (aug[view] - plain[view]).abs().amax(dim=(1, 2, 3)).min() > 1e-2
        torch.testing.assert_close(aug[view], again[view], atol=0, rtol=0)
        assert aug[view][:, 1:].min() >= 0 and aug[view][:, 1:].max() <= 1


def test_to_model_input_single_channel(data):
    loader = eval_loader(data, "val", batch_size=4, channels=1)
    out = to_model_input(next(iter(loader)), CPU, augment=True,
                         generator=torch.Generator().manual_seed(1))
    for view, size in _sizes(data).items():
        assert tuple(out[view].shape) == (4, 1, *size)


# --- reads per breast from the store, by loader threads ------------------------------------

@pytest.fixture(scope="module")
def on_disk(data):
    """The same data set read per breast from its shards, as at the paper's size."""
    return BreastDataset.open(data.root, in_memory=False)


def _same_batches(a, b) -> None:
    a, b = list(a), list(b)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            assert x[k].dtype == y[k].dtype, k
            torch.testing.assert_close(x[k], y[k], atol=0, rtol=0)


@pytest.mark.parametrize("threads", [0, 1, 3])
def test_loader_threads_give_the_batches_of_the_in_memory_set(data, on_disk, threads):
    assert isinstance(on_disk.cc, ViewArray) and loader_threads(on_disk) >= 1
    assert loader_threads(data) == 0  # decoded into memory: nothing to decode
    for channels in (3, 1):
        want = train_loader(data, seed=3, batch_size=5, channels=channels)
        got = train_loader(on_disk, seed=3, batch_size=5, channels=channels, threads=threads)
        for loader in (want, got):
            loader.sampler.set_epoch(2)
        _same_batches(got, want)
        _same_batches(eval_loader(on_disk, "val", 6, channels, threads=threads),
                      eval_loader(data, "val", 6, channels))


def test_a_pass_draws_from_the_global_generator_as_torchs_dataloader_did(data):
    # runs recorded with torch's DataLoader replay: the noise layer draws right after
    torch.manual_seed(0)
    list(torch.utils.data.DataLoader(range(5), batch_size=2))
    want = torch.rand(3)
    torch.manual_seed(0)
    list(eval_loader(data, "val", batch_size=2))
    torch.testing.assert_close(torch.rand(3), want, atol=0, rtol=0)


def test_a_damaged_shard_fails_the_pass_naming_it_and_an_early_stop_ends_it(data, tmp_path):
    root = tmp_path / data.root.name
    shutil.copytree(data.root, root)
    damaged = BreastDataset.open(root, in_memory=False)
    loader = eval_loader(damaged, "test", batch_size=2, threads=2)
    it = iter(loader)
    next(it)
    it.close()  # the consumer stops early: queued reads are dropped, the threads end
    assert not [t for t in threading.enumerate() if t.name.startswith("mvlib-loader")]
    test = damaged.indices("test")
    shard = root / "mlo.zarr" / "c" / str(test[-1] // damaged.meta["shard"]) / "0/0/0"
    shard.write_bytes(shard.read_bytes()[:-8])  # the index's end lost
    with pytest.raises(DatasetError) as info:
        list(eval_loader(BreastDataset.open(root, in_memory=False), "test", 2, threads=2))
    assert str(shard) in str(info.value)


def test_a_uint16_image_becomes_on_the_device_what_numpy_reads(tmp_path):
    # every uint16 level: the device's conversion is the store's numpy read, bit for bit
    levels = np.arange(store.IMAGE_SCALE + 1, dtype=np.uint16)
    batch = {"cc": torch.from_numpy(levels.reshape(1, 1, 256, 256))}
    got = view_input(batch, "cc", CPU).numpy().ravel()
    want = store.image_values(levels)
    assert want.dtype == np.float32 and want[-1] == 1
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    heat = torch.rand(1, 2, 256, 256).half()
    both = view_input({**batch, "cc_heatmaps": heat}, "cc", CPU)
    assert both.shape == (1, 3, 256, 256) and torch.equal(both[:, 1:], heat.float())


def test_training_from_the_store_by_threads_matches_training_in_memory(tmp_path,
                                                                       monkeypatch):
    from mvlib.engine.train import train
    from mvlib.experiment.runs import RunConfig

    cfg = RunConfig(model="joint", lr=3e-4, epochs=2, profile="smoke", tta_windows=2,
                    knobs={"patients": {"train": 12, "val": 8, "test": 8}}, experiment="t")
    memory = train(cfg, tmp_path / "memory")
    monkeypatch.setattr(store, "IN_MEMORY_BYTES", 0)
    monkeypatch.setenv("MVLIB_LOADER_THREADS", "2")
    disk = train(cfg, tmp_path / "disk")
    pd.testing.assert_frame_equal(disk.metrics().drop(columns=["seconds"]),
                                  memory.metrics().drop(columns=["seconds"]))
    pd.testing.assert_frame_equal(disk.predictions(), memory.predictions())
