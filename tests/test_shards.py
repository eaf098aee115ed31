"""The loader's read of a breast straight from its shard file (mvlib.data.shards): the same
values as zarr's, in the stored dtypes, and a damaged file named, never misread."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.codecs import ZstdCodec

import mvlib.data.store as store
from mvlib.data.shards import EMPTY, ChunkError, ShardLayout, ShardReader
from mvlib.data.store import DatasetError, ViewArray


def _set(root: Path, views: dict[str, np.ndarray], shard: int, image_dtype: str,
         monkeypatch=None, one_per_chunk: bool = False) -> dict:
    """A data set's arrays written as the store writes them."""
    if one_per_chunk:  # as at the paper's size: one breast per chunk
        monkeypatch.setattr(store, "CHUNK_BYTES", 0)
    n = len(views["cc"])
    meta = {"shapes": {v: list(a.shape[1:]) for v, a in views.items()}, "shard": shard,
            "image_dtype": image_dtype}
    root.mkdir(parents=True)
    store.create_arrays(root, n, meta["shapes"], shard, image_dtype)
    for lo in range(0, n, shard):
        store.write_arrays(root, lo, {v: a[lo:lo + shard] for v, a in views.items()})
    return meta


def _views(n: int = 7, c: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {v: rng.random((n, c, 12, 9)).astype(np.float32) for v in store.VIEWS}
    out["cc"][2] = 0  # a breast equal to the fill value: zarr writes no chunk for it
    return out


def _stored(arr: ViewArray, i: int, channels: int) -> list[np.ndarray]:
    outs = [np.full(shape, 7, dtype) for _, shape, dtype in arr.stored_parts(channels)]
    arr.read_stored(i, outs)
    return outs


@pytest.mark.parametrize("one_per_chunk", [True, False])
@pytest.mark.parametrize("image_dtype", ["float16", "uint16"])
@pytest.mark.parametrize("channels", [3, 1])
def test_stored_reads_equal_zarrs(tmp_path, monkeypatch, one_per_chunk, image_dtype, channels):
    views = _views()
    meta = _set(tmp_path / "d", views, 4, image_dtype, monkeypatch, one_per_chunk)
    for view in store.VIEWS:
        arr = ViewArray(tmp_path / "d" / f"{view}.zarr", 7, meta)
        assert all(r is not None for r in arr.readers)  # the fast path, not zarr's
        per_chunk = arr.readers[0].layout.chunk_shape[0]
        assert (per_chunk == 1) == one_per_chunk
        if one_per_chunk and view == "cc":  # breast 2 is zeros: read as the fill value
            assert (arr.readers[0].index(0)[2] == EMPTY).all()
        for i in range(7):
            parts = _stored(arr, i, channels)
            if image_dtype == "uint16":
                assert parts[0].dtype == np.uint16 and len(parts) == (2 if channels > 1 else 1)
                image = store.image_values(parts[0])
                got = np.concatenate([image, *[p.astype(np.float32) for p in parts[1:]]])
            else:
                assert len(parts) == 1 and parts[0].dtype == np.float16
                got = parts[0]
            np.testing.assert_array_equal(got, arr[i, :channels])


def test_a_layout_zarr_alone_reads_is_read_by_zarr(tmp_path):
    # zstd without a checksum per chunk: not the store's layout, so zarr reads it
    a = np.random.default_rng(1).random((5, 3, 4, 4)).astype(np.float16)
    path = tmp_path / "d" / "cc.zarr"
    zarr.create_array(str(path), shape=a.shape, dtype=a.dtype, chunks=(1, 3, 4, 4),
                      shards=(4, 3, 4, 4), compressors=ZstdCodec(), fill_value=0)
    zarr.open_array(str(path), mode="r+")[:] = a
    assert ShardLayout.of(path) is None
    arr = ViewArray(path, 5, {"shapes": {"cc": [3, 4, 4]}, "shard": 4})
    assert arr.readers == [None]
    for i in range(5):
        np.testing.assert_array_equal(_stored(arr, i, 3)[0], a[i])


def _shard(root: Path, view: str, k: int) -> Path:
    return root / f"{view}.zarr" / "c" / str(k) / "0" / "0" / "0"


@pytest.fixture
def paper_like(tmp_path, monkeypatch) -> tuple[Path, dict]:
    meta = _set(tmp_path / "d", _views(n=8), 4, "float16", monkeypatch, one_per_chunk=True)
    return tmp_path / "d", meta


def _read_fails_naming(root: Path, meta: dict, i: int, path: Path, match: str) -> None:
    arr = ViewArray(root / "mlo.zarr", 8, meta)
    with pytest.raises(DatasetError) as info:
        _stored(arr, i, 3)
    message = str(info.value)
    assert str(path) in message and f"breasts {4 * (i // 4)}-{4 * (i // 4) + 3}" in message
    assert match in message, message


def test_a_flipped_byte_in_a_chunk_fails_its_checksum(paper_like):
    root, meta = paper_like
    path = _shard(root, "mlo", 1)
    arr = ViewArray(root / "mlo.zarr", 8, meta)
    offset, nbytes = arr.readers[0].index(1)[1]  # breast 5's chunk
    raw = bytearray(path.read_bytes())
    raw[int(offset) + int(nbytes) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    _read_fails_naming(root, meta, 5, path, "CRC32C")
    _stored(arr, 4, 3)  # the shard's other chunks still read


def test_a_damaged_index_is_named(paper_like):
    root, meta = paper_like
    path = _shard(root, "mlo", 0)
    raw = bytearray(path.read_bytes())
    raw[-10] ^= 0xFF
    path.write_bytes(bytes(raw))
    _read_fails_naming(root, meta, 1, path, "index")


def test_a_truncated_shard_is_named(paper_like):
    root, meta = paper_like
    path = _shard(root, "mlo", 1)
    path.write_bytes(path.read_bytes()[:30])
    _read_fails_naming(root, meta, 6, path, "too short")


def test_the_reader_wants_an_output_of_the_chunks_shape(paper_like):
    root, _ = paper_like
    reader = ShardReader(root / "cc.zarr", ShardLayout.of(root / "cc.zarr"))
    with pytest.raises(ValueError, match="C-contiguous"):
        reader.read_into(0, np.empty((1, 3, 12, 8), np.float16))
    with pytest.raises(ChunkError, match="cannot open"):
        reader.read_into(40, np.empty((1, 3, 12, 9), np.float16))  # no shard 10


def test_a_frame_shorter_than_the_chunk_is_refused_not_left_half_written(paper_like):
    # Blosc would fill the first half of a larger buffer and leave the rest as it was
    root, _ = paper_like
    layout = ShardLayout.of(root / "cc.zarr")
    wider = dataclasses.replace(layout, chunk_shape=(1, 3, 12, 18), shard_shape=(4, 3, 12, 18))
    with pytest.raises(ChunkError, match="does not decode"):
        ShardReader(root / "cc.zarr", wider).read_into(0, np.empty((1, 3, 12, 18), np.float16))


def test_shards_split_beyond_whole_breasts_are_read_by_zarr(tmp_path):
    a = np.random.default_rng(2).random((5, 3, 12, 9)).astype(np.float16)
    path = tmp_path / "d" / "cc.zarr"
    zarr.create_array(str(path), shape=a.shape, dtype=a.dtype, chunks=(1, 3, 6, 9),
                      shards=(4, 3, 12, 9), compressors=store.COMPRESSORS, fill_value=0)
    zarr.open_array(str(path), mode="r+")[:] = a
    assert ShardLayout.of(path) is None
    arr = ViewArray(path, 5, {"shapes": {"cc": [3, 12, 9]}, "shard": 4})
    np.testing.assert_array_equal(_stored(arr, 4, 3)[0], a[4])


def test_a_breast_past_the_end_is_an_index_error(paper_like):
    root, meta = paper_like
    arr = ViewArray(root / "cc.zarr", 8, meta)
    for i in (8, -1):
        with pytest.raises(IndexError, match="cc.zarr"):
            _stored(arr, i, 3)
