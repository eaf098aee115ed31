"""The canonical breast-level data set on disk, shared by every source (synthetic or real).

A data set is a folder:
  meta.json      format version, source, channel names, per-view array shapes, shard size,
                 source config
  manifest.csv   one row per breast: breast_id, patient_id, laterality, split, malignant,
                 benign (+ source-specific columns); row i is index i of the arrays
  cc.zarr, mlo.zarr  zarr v3 arrays, float16 (N, C, H, W); channel 0 = image in [0, 1], then
                 optional benign and malignant heatmaps in [0, 1]; every breast faces right.
                 A real source's data set (meta "image_dtype": "uint16") keeps its image
                 channel as uint16 in steps of 1/65535 (a mammogram has 16 bits or fewer;
                 float16 would keep 11), read back as float32, and its heatmaps apart in
                 cc_heatmaps.zarr, mlo_heatmaps.zarr (float16, N x 2 x H x W).
                 One chunk per breast at the paper's size (a few small ones share one),
                 `shard` breasts per shard file (the unit a build writes),
                 Blosc LZ4 level 5 with byte shuffle, and a CRC32C per chunk so that a damaged
                 file is found, not misread. Lossless: the float16 values are stored exactly.
                 (Chosen by `make bench`'s codec table at the paper's size: against zstd level
                 3 with bit-shuffle, about 3x the decode rate of the synthetic breasts and 5x of
                 real images, for about 10% and 8% more bytes: the loader, not the disk, is what a
                 GPU waits on. A data set written with another codec still reads.)
The folder appears only when complete: it is built in `<name>.partial/` and renamed.
An interrupted build resumes from the chunks it already finished. Format 1 (uncompressed
float16 .npy arrays) is not read: `stale_format` finds it and the builders rebuild it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec

from mvlib.core.atomic import write_json
from mvlib.data.shards import ShardLayout, ShardReader

FORMAT_VERSION = 2  # 1: float16 .npy arrays; 2: zarr v3, sharded and compressed
DTYPE = np.float16
IMAGE_DTYPES = ("float16", "uint16")  # the image channel's stored type (meta "image_dtype")
IMAGE_SCALE = 65535  # a uint16 image channel stores round(image * IMAGE_SCALE)
COMPRESSORS = (BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"), Crc32cCodec())
IN_MEMORY_BYTES = 1 << 30  # data sets up to this raw size are decoded into memory on open
CHUNK_BYTES = 1 << 20  # small breasts share a chunk up to this raw size (`chunk_breasts`)
VIEWS = ("cc", "mlo")
SPLITS = ("train", "val", "test")
CHANNELS = ("image", "benign_heatmap", "malignant_heatmap")
REQUIRED_COLUMNS = ("breast_id", "patient_id", "laterality", "split", "malignant", "benign")


def image_values(stored: np.ndarray) -> np.ndarray:
    """A uint16 image channel's values in [0, 1], float32: the one conversion every reader
    uses (the loader converts on the device through a table of these)."""
    return stored.astype(np.float32) / IMAGE_SCALE


class DatasetError(ValueError):
    """A data set on disk is missing, incomplete or inconsistent."""


@dataclass
class BreastDataset:
    root: Path
    meta: dict
    manifest: pd.DataFrame
    cc: np.ndarray | ViewArray
    mlo: np.ndarray | ViewArray

    @classmethod
    def open(cls, root: str | Path, in_memory: bool | None = None) -> BreastDataset:
        """Open and validate a finished data set: its arrays decoded into memory (read-only)
        up to IN_MEMORY_BYTES (or as `in_memory` says), else read per breast (`ViewArray`)."""
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{root}: no such data set folder")
        meta_path = root / "meta.json"
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise DatasetError(f"{meta_path}: cannot read ({e})") from e
        if not isinstance(meta, dict) or not {"shapes", "channels"} <= set(meta):
            raise DatasetError(f"{meta_path}: expected an object with 'shapes' and 'channels'")
        if meta.get("format_version") != FORMAT_VERSION:
            raise DatasetError(f"{meta_path}: format_version {meta.get('format_version')!r}, "
                               f"this version reads {FORMAT_VERSION}; delete the folder and "
                               "prepare the data set again (the builders do it themselves)")
        manifest_path = root / "manifest.csv"
        try:
            manifest = pd.read_csv(manifest_path)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            raise DatasetError(f"{manifest_path}: cannot read ({e})") from e
        _check_manifest(manifest, manifest_path)
        arrays = {view: ViewArray(root / f"{view}.zarr", len(manifest), meta) for view in VIEWS}
        if in_memory is None:
            in_memory = sum(a.nbytes for a in arrays.values()) <= IN_MEMORY_BYTES
        if in_memory:
            arrays = {view: a.read_all() for view, a in arrays.items()}
        if arrays["cc"].shape[1] != len(meta["channels"]):
            raise DatasetError(f"{meta_path}: {len(meta['channels'])} channels named, the arrays "
                               f"hold {arrays['cc'].shape[1]}")
        return cls(root, meta, manifest, arrays["cc"], arrays["mlo"])

    @property
    def channels(self) -> list[str]:
        return list(self.meta["channels"])

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.manifest["split"].to_numpy() == split)

    def exams(self) -> np.ndarray:
        """One key per breast naming its exam: patient and `exam_id` where the source has
        exams (real adapters), else the patient (the synthetic generator: one exam each)."""
        patient = self.manifest["patient_id"].astype(str)
        if "exam_id" in self.manifest:
            return (patient + "/" + self.manifest["exam_id"].astype(str)).to_numpy()
        return patient.to_numpy()

    def labels(self) -> np.ndarray:
        """(N, 2) int64 labels in the model's output order: malignant, benign."""
        return self.manifest[["malignant", "benign"]].to_numpy(np.int64)

    def counts(self) -> pd.DataFrame:
        """Breasts, patients, malignant and benign per split (the paper's Section 3 counts)."""
        g = self.manifest.groupby("split", sort=False)
        table = pd.DataFrame({
            "breasts": g.size(), "patients": g["patient_id"].nunique(),
            "malignant": g["malignant"].sum(), "benign": g["benign"].sum(),
        }).reindex([s for s in SPLITS if s in g.groups])
        table.loc["total"] = table.sum()
        table.loc["total", "patients"] = self.manifest["patient_id"].nunique()
        return table.astype(int)


def _check_manifest(m: pd.DataFrame, path: Path) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in m.columns]
    if missing:
        raise DatasetError(f"{path}: missing columns {missing}")
    if not (m["breast_id"].to_numpy() == np.arange(len(m))).all():
        raise DatasetError(f"{path}: breast_id must be 0..N-1 in row order")
    bad_split = sorted(set(m["split"]) - set(SPLITS))
    if bad_split:
        raise DatasetError(f"{path}: unknown split values {bad_split}")
    for col in ("malignant", "benign"):
        if not m[col].isin([0, 1]).all():
            raise DatasetError(f"{path}: column {col} must hold 0/1 only")
    leaked = m.groupby("patient_id")["split"].nunique()
    if (leaked > 1).any():
        example = leaked[leaked > 1].index[0]
        raise DatasetError(f"{path}: patients in several splits, e.g. {example!r}")


class ViewArray:
    """One view's (N, C, H, W) array in a data set, read per breast (`arr[i]`, `arr[i, :c]`,
    `arr[idx]`) as numpy: float16, or float32 where the image channel is stored as uint16
    (then read from `<view>.zarr` and the heatmaps from `<view>_heatmaps.zarr`); or, for
    the loader, one breast in the stored dtypes straight into the batch's memory
    (`read_stored`). Each process opens its own zarr handles on first use (a forked
    DataLoader worker, where zarr resets its I/O loop; a spawned one, which gets this object
    pickled without them). A shard that is missing, truncated or damaged raises DatasetError
    naming the file and its breasts."""

    def __init__(self, path: Path, n: int, meta: dict):
        self.path, self.view = Path(path), Path(path).stem
        self.shape = (n, *meta["shapes"][self.view])
        self.shard = int(meta.get("shard", 0))
        image_dtype = meta.get("image_dtype", "float16")
        if image_dtype not in IMAGE_DTYPES:
            raise DatasetError(f"{self.path.parent / 'meta.json'}: image_dtype "
                               f"{image_dtype!r}, expected one of {IMAGE_DTYPES}")
        self.split = image_dtype == "uint16"
        self.dtype = np.dtype(np.float32 if self.split else DTYPE)
        self.nbytes = int(np.prod(self.shape)) * self.dtype.itemsize
        self.parts = parts_of(self.path.parent, self.view, self.shape, image_dtype)
        self._pid, self._arrays = -1, None
        self.readers = [ShardReader(part, layout) if (layout := ShardLayout.of(part)) else None
                        for part, _, _ in self.parts]  # None: a layout only zarr reads
        for j, (part, shape, dtype) in enumerate(self.parts):
            if not (part / "zarr.json").is_file():
                raise DatasetError(f"{part}: missing (no zarr.json)")
            arr = self._zarr(j)
            if arr.shape != shape:
                raise DatasetError(f"{part}: shape {arr.shape}, expected {shape} "
                                   "(manifest rows x meta.json shapes)")
            if arr.dtype != dtype or self.shard < 1 or arr.shards != (self.shard, *shape[1:]):
                raise DatasetError(f"{part}: dtype {arr.dtype}, shards {arr.shards}; expected "
                                   f"{dtype} in shards of {self.shard} breasts (meta.json)")
            missing = [k for k in range(-(-n // self.shard))
                       if not self.shard_file(k, part).is_file()]
            if missing:
                raise DatasetError(f"{self.shard_file(missing[0], part)}: missing shard "
                                   f"(breasts {self.breasts(missing[0])}; {len(missing)} "
                                   "shard(s) missing)")

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pid": -1, "_arrays": None}

    def shard_file(self, k: int, part: Path | None = None) -> Path:
        return (part or self.path) / "c" / str(k) / "0" / "0" / "0"

    def breasts(self, k: int) -> str:
        return f"{k * self.shard}-{min((k + 1) * self.shard, self.shape[0]) - 1}"

    def _zarr(self, j: int = 0) -> zarr.Array:
        if self._pid != os.getpid():
            self._arrays, self._pid = {}, os.getpid()
        if j not in self._arrays:
            part = self.parts[j][0]
            try:
                self._arrays[j] = zarr.open_array(str(part), mode="r")
            except Exception as e:  # a codec's or JSON parser's own error, named here
                raise DatasetError(f"{part}: cannot open ({e})") from e
        return self._arrays[j]

    def _read(self, j: int, key) -> np.ndarray:
        try:
            return self._zarr(j)[key]
        except DatasetError:
            raise
        except Exception as e:
            first = key[0] if isinstance(key, tuple) else key
            raise self._error(j, np.arange(self.shape[0])[first].ravel(), e) from e

    def _error(self, j: int, rows: np.ndarray, e: Exception) -> DatasetError:
        part = self.parts[j][0]
        shards = sorted({int(r) // self.shard for r in rows})
        where = ", ".join(f"{self.shard_file(k, part)} (breasts {self.breasts(k)})"
                          for k in shards[:3])
        return DatasetError(f"{part}: cannot read breast(s) {rows[:5].tolist()}"
                            f"{' ...' if len(rows) > 5 else ''} from {where}: "
                            f"{type(e).__name__}: {e}")

    def stored_parts(self, channels: int) -> list[tuple[str, tuple[int, ...], np.dtype]]:
        """What `read_stored` fills for a breast's first `channels` channels, as (key suffix,
        shape, dtype) in the stored dtypes: the channels as float16 (''), or a uint16 image
        ('') and, with more channels, its float16 heatmaps ('_heatmaps')."""
        hw = self.shape[2:]
        if not self.split:
            return [("", (channels, *hw), np.dtype(DTYPE))]
        return [("", (1, *hw), np.dtype(np.uint16))] + (
            [("_heatmaps", (channels - 1, *hw), np.dtype(DTYPE))] if channels > 1 else [])

    def read_stored(self, i: int, outs: list[np.ndarray]) -> None:
        """Breast `i` into `outs`, one C-contiguous array per `stored_parts` entry, as
        stored: decoded straight into them where a chunk is one whole breast (the paper's
        size), else through the chunk (several small breasts, or fewer channels)."""
        if not 0 <= i < self.shape[0]:
            raise IndexError(f"{self.path}: breast {i} of {self.shape[0]}")
        for j, (out, reader) in enumerate(zip(outs, self.readers, strict=False)):
            c = out.shape[0]
            try:
                if reader is None:
                    out[...] = self._zarr(j)[int(i), :c]
                    continue
                per = reader.layout.chunk_shape[0]
                chunk, k = divmod(int(i), per)
                if per == 1 and out.shape == reader.layout.chunk_shape[1:] \
                        and out.flags.c_contiguous:
                    reader.read_into(chunk, out.reshape(reader.layout.chunk_shape))
                else:
                    whole = np.empty(reader.layout.chunk_shape, reader.layout.dtype)
                    reader.read_into(chunk, whole)
                    out[...] = whole[k, :c]
            except DatasetError:
                raise
            except Exception as e:  # ChunkError, or zarr's and its codecs' own errors
                raise self._error(j, np.array([int(i)]), e) from e

    def __getitem__(self, key) -> np.ndarray:
        if not self.split:
            return self._read(0, key)
        rows, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        wanted = np.arange(self.shape[1])[rest[0] if rest else slice(None)]
        image = image_values(self._read(0, rows))
        if len(self.parts) == 1 or not (np.asarray(wanted) > 0).any():
            full = image  # image only: the heatmaps are not decoded
            rest = (np.asarray(wanted) if rest else slice(None), *rest[1:])
        else:
            full = np.concatenate([image, self._read(1, rows).astype(np.float32)], axis=-3)
        lead = (slice(None),) * (full.ndim - 3)
        return full[(*lead, *rest)] if rest else full

    def read_all(self) -> np.ndarray:
        """The whole array in memory, read-only, decoded shard by shard (an error names the
        shard)."""
        out = np.empty(self.shape, self.dtype)
        for lo in range(0, self.shape[0], self.shard):
            out[lo:lo + self.shard] = self[lo:lo + self.shard]
        out.flags.writeable = False
        return out


def chunk_breasts(shape: tuple[int, ...] | list[int], shard: int) -> int:
    """Breasts per chunk (the unit a read decodes): one at the paper's size, several small
    ones up to CHUNK_BYTES (zarr spends about 0.3 ms a chunk, more than decoding a small
    breast takes); a divisor of the shard."""
    per_breast = int(np.prod(shape)) * np.dtype(DTYPE).itemsize
    return max(k for k in range(1, shard + 1)
               if shard % k == 0 and (k == 1 or k * per_breast <= CHUNK_BYTES))


def parts_of(folder: Path, view: str, shape: tuple[int, ...], image_dtype: str
             ) -> list[tuple[Path, tuple[int, ...], np.dtype]]:
    """Where a view's (N, C, H, W) channels are stored, as (array folder, shape, dtype) per
    part: one float16 array, or a uint16 image and, with more channels, float16 heatmaps."""
    n, c, *hw = shape
    if image_dtype != "uint16":
        return [(folder / f"{view}.zarr", (n, c, *hw), np.dtype(DTYPE))]
    image = [(folder / f"{view}.zarr", (n, 1, *hw), np.dtype(np.uint16))]
    return image + ([(folder / f"{view}_heatmaps.zarr", (n, c - 1, *hw), np.dtype(DTYPE))]
                    if c > 1 else [])


def create_arrays(folder: Path, n: int, shapes: dict[str, list[int]], shard: int,
                  image_dtype: str = "float16") -> None:
    """Empty arrays (one per view in `shapes`; with a uint16 image, one more per view for its
    heatmaps) of a data set being built: `shard` breasts per shard file, `chunk_breasts` per
    chunk."""
    if image_dtype not in IMAGE_DTYPES:
        raise ValueError(f"image_dtype {image_dtype!r}: expected one of {IMAGE_DTYPES}")
    for view in shapes:
        for path, shape, dtype in parts_of(Path(folder), view, (n, *shapes[view]), image_dtype):
            zarr.create_array(str(path), shape=shape, dtype=dtype,
                              chunks=(chunk_breasts(shape[1:], shard), *shape[1:]),
                              shards=(shard, *shape[1:]), compressors=COMPRESSORS,
                              fill_value=0, overwrite=True)


def write_arrays(partial: Path, start: int, views: dict[str, np.ndarray]) -> None:
    """Write breasts start.. of each view ((n, C, H, W), values in [0, 1]) into a partial
    build's arrays, as they store them (float16, or a uint16 image and float16 heatmaps).

    Safe from worker processes as long as each writes whole shards of its own (a build's
    unit of work is its shard): a shard file is written in one piece, so a killed worker
    leaves no half-written breasts the resumed build would keep.
    """
    for view, arr in views.items():
        out = zarr.open_array(str(Path(partial) / f"{view}.zarr"), mode="r+")
        if start % out.shards[0]:
            raise ValueError(f"{partial}: a write must start at a shard boundary "
                             f"({out.shards[0]} breasts), not at breast {start}")
        arr = np.asarray(arr)
        if out.dtype == np.uint16:
            image = np.clip(arr[:, :1].astype(np.float32), 0, 1) * IMAGE_SCALE
            out[start:start + len(arr)] = np.rint(image).astype(np.uint16)
            if arr.shape[1] > 1:
                heat = zarr.open_array(str(Path(partial) / f"{view}_heatmaps.zarr"), mode="r+")
                heat[start:start + len(arr)] = np.asarray(arr[:, 1:], DTYPE)
        else:
            out[start:start + len(arr)] = np.asarray(arr, DTYPE)


def stale_format(root: Path) -> int | None:
    """The format version of a finished data set at `root` when it is not FORMAT_VERSION
    (the builders then rebuild it), else None."""
    try:
        version = json.loads((Path(root) / "meta.json").read_text()).get("format_version")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    return None if version == FORMAT_VERSION else version


def drop_stale(root: Path) -> None:
    """Remove a finished data set in an older format, saying so, so that it is rebuilt."""
    if (version := stale_format(root)) is not None:
        warnings.warn(f"{root}: data set in format {version}, this version reads format "
                      f"{FORMAT_VERSION} (zarr); rebuilding it", stacklevel=3)
        shutil.rmtree(root)


@contextmanager
def build_lock(root: str | Path) -> Iterator[None]:
    """Exclusive lock for building the data set at `root`: a second process that wants the
    same data set waits, then finds it finished."""
    lock = Path(root).with_name(Path(root).name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class DatasetWriter:
    """Builds a data set chunk by chunk in `<root>.partial/`; `finish` renames it into place.
    A chunk of `chunk_size` breasts is one shard of the arrays.

    Re-creating a writer with the same `meta` over an existing partial folder resumes it:
    `done` holds the chunks already written.
    """

    def __init__(self, root: str | Path, meta: dict, n: int, chunk_size: int):
        self.root = Path(root)
        self.partial = self.root.with_name(self.root.name + ".partial")
        # Round-trip through JSON so tuples compare equal to what progress.json holds.
        self.meta = json.loads(json.dumps({"format_version": FORMAT_VERSION, **meta,
                                           "shard": chunk_size}))
        self.n, self.chunk_size = n, chunk_size
        self.n_chunks = -(-n // chunk_size)
        progress = self.partial / "progress.json"
        resumable = False
        if progress.exists():
            try:
                state = json.loads(progress.read_text())
                resumable = state["meta"] == self.meta and state["n"] == n
            except (OSError, json.JSONDecodeError, KeyError):
                resumable = False
        if not resumable:
            shutil.rmtree(self.partial, ignore_errors=True)
            self.partial.mkdir(parents=True)
            state = {"meta": self.meta, "n": n, "done": []}
            create_arrays(self.partial, n, meta["shapes"], chunk_size,
                          meta.get("image_dtype", "float16"))
            write_json(progress, state)
        self.done: set[int] = set(state["done"])
        self.rows: dict[int, pd.DataFrame] = {}
        for i in self.done:
            self.rows[i] = pd.read_csv(self.partial / f"rows_{i:05d}.csv")

    def commit_chunk(self, i: int, rows: pd.DataFrame, extra: pd.DataFrame | None = None
                     ) -> None:
        """Record chunk i as done, once its arrays are written (here or by a worker)."""
        rows.to_csv(self.partial / f"rows_{i:05d}.csv", index=False)
        if extra is not None:
            extra.to_csv(self.partial / f"extra_{i:05d}.csv", index=False)
        self.rows[i] = rows
        self.done.add(i)
        write_json(self.partial / "progress.json",
                   {"meta": self.meta, "n": self.n, "done": sorted(self.done)})

    def finish(self, extra_name: str | None = None) -> Path:
        if len(self.done) != self.n_chunks:
            raise DatasetError(f"{self.partial}: {self.n_chunks - len(self.done)} chunks missing")
        manifest = pd.concat([self.rows[i] for i in range(self.n_chunks)], ignore_index=True)
        manifest.to_csv(self.partial / "manifest.csv", index=False)
        if extra_name:
            parts = [pd.read_csv(p) for p in sorted(self.partial.glob("extra_*.csv"))
                     if p.stat().st_size > 1]
            pd.concat(parts, ignore_index=True).to_csv(self.partial / extra_name, index=False)
        write_json(self.partial / "meta.json", self.meta)
        if self.root.exists():
            shutil.rmtree(self.root)
        os.replace(self.partial, self.root)
        # Bookkeeping goes only after the rename: a crash before it keeps every chunk.
        for p in [*self.root.glob("rows_*.csv"), *self.root.glob("extra_*.csv"),
                  self.root / "progress.json"]:
            p.unlink()
        return self.root
