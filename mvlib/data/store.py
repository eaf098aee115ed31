"""The canonical breast-level data set on disk, shared by every source (synthetic or real).

A data set is a folder:
  meta.json      format version, source, channel names, per-view array shapes, source config
  manifest.csv   one row per breast: breast_id, patient_id, laterality, split, malignant,
                 benign (+ source-specific columns); row i is index i of the arrays
  cc.npy, mlo.npy  float16 (N, C, H, W); channel 0 = image in [0, 1], then optional
                 benign and malignant heatmaps in [0, 1]; every breast faces right
The folder appears only when complete: it is built in `<name>.partial/` and renamed.
An interrupted build resumes from the chunks it already finished.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mvlib.atomic import write_json

FORMAT_VERSION = 1
VIEWS = ("cc", "mlo")
SPLITS = ("train", "val", "test")
CHANNELS = ("image", "benign_heatmap", "malignant_heatmap")
REQUIRED_COLUMNS = ("breast_id", "patient_id", "laterality", "split", "malignant", "benign")


class DatasetError(ValueError):
    """A data set on disk is missing, incomplete or inconsistent."""


@dataclass
class BreastDataset:
    root: Path
    meta: dict
    manifest: pd.DataFrame
    cc: np.ndarray
    mlo: np.ndarray

    @classmethod
    def open(cls, root: str | Path) -> BreastDataset:
        """Open and validate a finished data set (arrays are memory-mapped)."""
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
                               f"expected {FORMAT_VERSION}")
        manifest_path = root / "manifest.csv"
        try:
            manifest = pd.read_csv(manifest_path)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            raise DatasetError(f"{manifest_path}: cannot read ({e})") from e
        _check_manifest(manifest, manifest_path)
        arrays = {}
        for view in VIEWS:
            path = root / f"{view}.npy"
            try:
                arr = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as e:
                raise DatasetError(f"{path}: cannot read ({e})") from e
            expected = (len(manifest), *meta["shapes"][view])
            if arr.shape != expected or arr.shape[1] != len(meta["channels"]):
                raise DatasetError(f"{path}: shape {arr.shape}, expected {expected} "
                                   f"(manifest rows x meta.json shapes)")
            arrays[view] = arr
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


def write_arrays(partial: Path, start: int, views: dict[str, np.ndarray]) -> None:
    """Write breasts start.. of each view into a partial build's float16 arrays.

    Safe from worker processes: each opens the memory map and writes its own rows. Pages
    of a shared mapping outlive a killed process, so no msync: a killed build resumes; a
    data set is a cache that can be regenerated, so power-loss durability is not sought.
    """
    for view, arr in views.items():
        out = np.load(Path(partial) / f"{view}.npy", mmap_mode="r+")
        out[start:start + len(arr)] = arr
        del out


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

    Re-creating a writer with the same `meta` over an existing partial folder resumes it:
    `done` holds the chunks already written.
    """

    def __init__(self, root: str | Path, meta: dict, n: int, chunk_size: int):
        self.root = Path(root)
        self.partial = self.root.with_name(self.root.name + ".partial")
        # Round-trip through JSON so tuples compare equal to what progress.json holds.
        self.meta = json.loads(json.dumps({"format_version": FORMAT_VERSION, **meta}))
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
            for view in VIEWS:
                np.lib.format.open_memmap(self.partial / f"{view}.npy", mode="w+",
                                          dtype=np.float16, shape=(n, *meta["shapes"][view]))
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
