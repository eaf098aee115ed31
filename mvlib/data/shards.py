"""One chunk of a sharded zarr v3 array, decoded straight into the caller's buffer.

The store's arrays (`mvlib.data.store`) keep one breast per chunk at the paper's size, in
shard files laid out by the zarr v3 sharding codec (zarr specification v3, "sharding_indexed":
the chunks' encoded bytes, then an index of (offset, nbytes) per chunk, little-endian
uint64, with its CRC32C, at the end of the file). zarr decodes a chunk into a buffer of its
own and copies it out, through its asynchronous pipeline: about a third of the rate of the
codec alone on a full-size breast (`make bench`). This reader reads the chunk's bytes at
their offset, checks their CRC32C and lets Blosc decompress them into the batch's memory.
It reads only the layout the store writes (`ShardLayout.of`); any other array is read by
zarr (`mvlib.data.store.ViewArray`).
"""

from __future__ import annotations

import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import google_crc32c
import numpy as np
from numcodecs import blosc

EMPTY = 2**64 - 1  # the index's offset and nbytes of a chunk never written (fill value)


class ChunkError(ValueError):
    """A shard file that is missing, truncated or fails its checksum."""


@dataclass(frozen=True)
class ShardLayout:
    """What a reader needs of an array's zarr.json: chunk shape, chunks per shard, dtype."""

    chunk_shape: tuple[int, ...]
    shard_shape: tuple[int, ...]
    dtype: np.dtype
    fill_value: float

    @classmethod
    def of(cls, array: Path) -> ShardLayout | None:
        """The layout of the zarr v3 array at `array` when it is one shard codec over
        little-endian bytes, Blosc and CRC32C per chunk (what the store writes) with the
        index, checksummed, at the end; else None (read it with zarr)."""
        try:
            meta = json.loads((Path(array) / "zarr.json").read_text())
            (codec,) = meta["codecs"]
            conf = codec["configuration"]
            inner = [c["name"] for c in conf["codecs"]]
            index = [c["name"] for c in conf["index_codecs"]]
            little = all(c.get("configuration", {}).get("endian", "little") == "little"
                         for c in conf["codecs"] + conf["index_codecs"])
            ok = (codec["name"] == "sharding_indexed" and inner == ["bytes", "blosc", "crc32c"]
                  and index == ["bytes", "crc32c"] and little and sys.byteorder == "little"
                  and conf.get("index_location", "end") == "end"
                  and meta["chunk_key_encoding"] == {"name": "default",
                                                     "configuration": {"separator": "/"}}
                  and meta["data_type"] in ("float16", "uint16"))
            chunk = tuple(conf["chunk_shape"])
            shard = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
            # shards of whole breasts: split along the first axis only
            if not ok or chunk[1:] != shard[1:] or shard[0] % chunk[0]:
                return None
            return cls(chunk, shard, np.dtype(meta["data_type"]), float(meta["fill_value"]))
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError):
            return None

    @property
    def chunks_per_shard(self) -> int:
        return self.shard_shape[0] // self.chunk_shape[0]


class ShardReader:
    """Chunks of one array of `ShardLayout.of`'s layout; thread-safe (each read opens the
    file; the shard indexes are cached)."""

    def __init__(self, array: Path, layout: ShardLayout):
        self.array, self.layout = Path(array), layout
        self._index: dict[int, np.ndarray] = {}

    def shard_file(self, shard: int) -> Path:
        return self.array / "c" / str(shard) / "/".join("0" * (len(self.layout.chunk_shape)
                                                                - 1))

    def index(self, shard: int) -> np.ndarray:
        """(chunks per shard, 2) offsets and sizes of a shard's chunks, checked."""
        if shard not in self._index:
            path, n = self.shard_file(shard), self.layout.chunks_per_shard
            size = 16 * n + 4
            with _open(path) as f:
                end = f.seek(0, os.SEEK_END)
                f.seek(max(0, end - size))
                raw = f.read(size)
            if len(raw) != size:
                raise ChunkError(f"{path}: {end} bytes, too short for its index")
            _check(raw[:-4], raw[-4:], path, "index")
            self._index[shard] = np.frombuffer(raw[:-4], "<u8").reshape(n, 2)
        return self._index[shard]

    def read_into(self, chunk: int, out: np.ndarray) -> None:
        """Decode chunk number `chunk` (along the first axis) into `out`, a C-contiguous
        array of the chunk's shape and dtype."""
        if out.shape != self.layout.chunk_shape or out.dtype != self.layout.dtype \
                or not out.flags.c_contiguous:
            raise ValueError(f"{self.array}: out must be C-contiguous {self.layout.dtype} "
                             f"{self.layout.chunk_shape}, got {out.dtype} {out.shape}")
        shard, k = divmod(chunk, self.layout.chunks_per_shard)
        offset, nbytes = (int(v) for v in self.index(shard)[k])
        if offset == EMPTY and nbytes == EMPTY:
            out.fill(self.layout.fill_value)  # zarr writes no chunk equal to the fill value
            return
        path = self.shard_file(shard)
        buf = np.empty(nbytes, np.uint8)
        with _open(path) as f:
            f.seek(offset)
            got = f.readinto(memoryview(buf))
        if got != nbytes or nbytes < 4:
            raise ChunkError(f"{path}: chunk {k} ends past the file's end")
        body = buf[:-4]
        body.flags.writeable = False  # google_crc32c reads read-only buffers only
        _check(body, buf[-4:].tobytes(), path, f"chunk {k}")
        try:
            # Blosc fills a larger buffer than the frame holds without a word: check first
            # (a Blosc 1 header keeps the decoded size in bytes 4-8, little-endian)
            size = int.from_bytes(body[4:8].tobytes(), "little")
            if size != out.nbytes:
                raise ValueError(f"the frame holds {size} bytes")
            blosc.decompress(body, out)
        except (RuntimeError, ValueError) as e:
            raise ChunkError(f"{path}: chunk {k} does not decode to {out.nbytes} bytes "
                             f"({e})") from e


class _open:
    """The file unbuffered (a read lands in the caller's buffer), closed on exit; a file
    that cannot be opened is a ChunkError."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> io.FileIO:
        try:
            self.file = open(self.path, "rb", buffering=0)  # noqa: SIM115 (closed on exit)
        except OSError as e:
            raise ChunkError(f"{self.path}: cannot open ({e.strerror})") from e
        return self.file

    def __exit__(self, *exc) -> None:
        self.file.close()


def _check(body, stored: bytes, path: Path, what: str) -> None:
    if google_crc32c.value(body) != int.from_bytes(stored, "little"):
        raise ChunkError(f"{path}: {what} fails its CRC32C checksum (damaged file)")
