"""Prepare a real source's breasts into the canonical data set, as resumable jobs.

Each breast's two files are decoded, cropped, turned to face right and resized
(mvlib.data.crop). The breasts go first into `<name>.staging/`: `job.json` (what to
prepare), `breasts.pkl` (the selected breasts) and the arrays. The work is cut into chunks of
CHUNK breasts, one shard each; a job (`prepare_slice`) prepares a slice of chunks, writing
each chunk's shard and then its `rows_<k>.csv` (atomically), so a killed job leaves whole
chunks and a re-run redoes only the chunks without rows. Jobs run in local processes, or
wherever a caller's `run_slices` sends them (a SLURM array: mvlib.executors.slurm). The last step
checks that every chunk is there and writes the data set. A breast with an unreadable file
is recorded with the file and the error; the final data set leaves it out and
`report.json` lists it.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from mvlib.core.atomic import write_atomic, write_json
from mvlib.core.device import one_thread_worker
from mvlib.data.adapters.common import Report
from mvlib.data.crop import DEFAULT_RULE, CropRule, prepare_view
from mvlib.data.dicom import ImageError, read_heatmap, read_image
from mvlib.data.orientation import needs_flip
from mvlib.data.store import (
    CHANNELS,
    FORMAT_VERSION,
    VIEWS,
    BreastDataset,
    DatasetError,
    ViewArray,
    build_lock,
    create_arrays,
    drop_stale,
    write_arrays,
)

# Bump when a change to the preparation changes its output: it is part of the name.
BUILD_VERSION = 2  # 2: the image channel stored as uint16
CHUNK = 8  # breasts per unit of work and of resumption
MANIFEST_DROP = ("error",)
MAX_JOBS = 256  # slices a preparation is cut into for `run_slices` (SLURM arrays are capped)


def channels_of(breasts: pd.DataFrame) -> int:
    """3 when every breast has both heatmaps for both views, else 1 (image only)."""
    cols = [f"{v}_heatmap_{k}" for v in VIEWS for k in ("benign", "malignant")]
    if all(c in breasts.columns for c in cols) and (breasts[cols].fillna("") != "").all().all():
        return len(CHANNELS)
    return 1


def dataset_dir(store: Path, source: str, config: dict, breasts: pd.DataFrame) -> Path:
    """Named by the source, the preparation config and the selected breasts (files, labels,
    splits): a changed source list or setting gives a new data set, never a stale one."""
    blob = json.dumps({"config": config, "version": BUILD_VERSION, "chunk": CHUNK},
                      sort_keys=True) + breasts.to_csv(index=False)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:10]
    return Path(store) / "data" / f"{source}-{digest}"


def prepare_breast(row: pd.Series, root: Path, sizes: dict[str, tuple[int, int]],
                   channels: int, rule: CropRule,
                   produce: Callable[[np.ndarray], np.ndarray] | None = None
                   ) -> dict[str, np.ndarray]:
    """The (C, H, W) arrays of both views of one breast; ImageError names a bad file. With
    `produce` (a heatmaps.HeatmapCache) the heatmaps are made from the image, not read."""
    flip_rule = row.get("horizontal_flip")
    out = {}
    for view in VIEWS:
        path = root / row[f"{view}_path"]
        image = read_image(path)
        heatmaps = []
        if channels == len(CHANNELS) and produce is None:
            for kind in ("benign", "malignant"):  # the order of store.CHANNELS
                hm_path = root / row[f"{view}_heatmap_{kind}"]
                hm = read_heatmap(hm_path)
                if hm.shape != image.shape:
                    raise ImageError(hm_path, f"heatmap shape {hm.shape} (after transposing) "
                                              f"differs from the image's {image.shape}")
                heatmaps.append(hm)
        flip = (needs_flip(row["laterality"], flip_rule)
                if isinstance(flip_rule, str) and flip_rule else None)
        try:
            out[view] = prepare_view(image, sizes[view], flip, heatmaps, rule, produce)
        except ValueError as e:
            raise ImageError(path, str(e)) from e
    return out


def _prepare_chunk(k: int, rows: pd.DataFrame, staging: Path, config: dict,
                   produce: Callable[[np.ndarray], np.ndarray] | None) -> pd.DataFrame:
    """Prepare one chunk of breasts and write its shard of the staging arrays; returns its
    rows with the error of each unreadable breast."""
    sizes = {v: tuple(config["sizes"][v]) for v in VIEWS}
    channels, rule = config["channels"], CropRule(**config["crop"])
    views = {v: np.zeros((len(rows), channels, *sizes[v]), np.float32) for v in VIEWS}
    errors = []
    for j, (_, row) in enumerate(rows.iterrows()):
        try:
            arrays = prepare_breast(row, Path(config["data_root"]), sizes, channels, rule,
                                    produce)
        except ImageError as e:
            errors.append(str(e))
            continue
        for v in VIEWS:
            views[v][j] = arrays[v]
        errors.append("")
    write_arrays(staging, k * CHUNK, views)
    return rows.assign(error=errors)


def _rows_file(staging: Path, k: int) -> Path:
    return Path(staging) / f"rows_{k:05d}.csv"


def chunk_done(staging: str | Path, k: int) -> bool:
    """Whether chunk k of a staging folder is prepared (its shard and its rows written)."""
    return _rows_file(Path(staging), k).exists()


def prepare_slice(staging: str | Path, chunks: list[int]) -> None:
    """A preparation job: each of `chunks` (of the staging folder's job) that has no rows file
    yet is prepared, its shard written, then its rows file. Safe to re-run, and to run beside
    jobs of other chunks."""
    staging = Path(staging)
    job = json.loads((staging / "job.json").read_text())
    breasts = pd.read_pickle(staging / "breasts.pkl")
    todo = [k for k in chunks if not chunk_done(staging, k)]
    produce = None
    if todo and job["heatmaps"]:  # the classifier loaded once per job
        from mvlib.data.heatmaps import HeatmapCache

        produce = HeatmapCache(job["heatmaps"]["weights"], job["heatmaps"]["cache"])
    for k in todo:
        rows = breasts.iloc[k * CHUNK:(k + 1) * CHUNK].reset_index(drop=True)
        rows = _prepare_chunk(k, rows, staging, job["meta"]["config"], produce)
        rows.insert(0, "breast_id", np.arange(k * CHUNK, k * CHUNK + len(rows)))
        write_atomic(_rows_file(staging, k), lambda p, rows=rows: rows.to_csv(p, index=False))


def build_dataset(source: str, breasts: pd.DataFrame, report: Report, data_root: str | Path,
                  sizes: dict[str, tuple[int, int]], store: str | Path, config: dict,
                  rule: CropRule = DEFAULT_RULE, progress: bool = True, workers: int = 2,
                  run_slices: Callable[[Path, list[list[int]]], None] | None = None,
                  heatmaps: dict | None = None) -> BreastDataset:
    """Build (or reopen) the data set of `breasts` (select_breasts' table, paths relative to
    `data_root`) at `sizes` under `store/data/`: in `workers` local processes, or by
    `run_slices(staging, slices)`, which must run `prepare_slice(staging, s)` for each slice
    (as jobs anywhere that sees the store: mvlib.executors.slurm.Slurm.prepare). `heatmaps`: make
    the heatmaps with the patch classifier ({"weights": file, "cache": folder}; what
    identifies them belongs in `config`), whatever the source ships."""
    root_dir = Path(data_root).resolve()
    channels = len(CHANNELS) if heatmaps else channels_of(breasts)
    config = {**config, "data_root": str(root_dir), "sizes": {v: list(sizes[v]) for v in VIEWS},
              "crop": asdict(rule), "channels": channels}
    root = dataset_dir(Path(store), source, config, breasts)
    with build_lock(root):
        drop_stale(root)
        if not (root / "meta.json").exists():
            staging = root.with_name(root.name + ".staging")
            meta = {"source": source, "channels": list(CHANNELS[:channels]), "config": config,
                    "shapes": {v: [channels, *sizes[v]] for v in VIEWS},
                    "image_dtype": "uint16"}
            n_chunks = _stage(staging, meta, breasts, heatmaps)
            todo = [k for k in range(n_chunks) if not chunk_done(staging, k)]
            if todo and run_slices is not None:
                run_slices(staging, [s.tolist() for s in
                                     np.array_split(todo, min(len(todo), MAX_JOBS))])
            elif todo:
                what = meta["source"] + (" with heatmaps" if heatmaps else "")
                _run_local(staging, todo, len(breasts), what, progress, workers)
            _finish(staging, root, meta, report, n_chunks)
    data = BreastDataset.open(root)
    rep = load_report(data)
    if rep.breasts_unreadable:
        shown = "; ".join(f"{u['error']}" for u in rep.unreadable[:3])
        warnings.warn(f"{root.name}: {rep.breasts_unreadable} breast(s) skipped for "
                      f"unreadable files ({shown}{' ...' if len(rep.unreadable) > 3 else ''}); "
                      f"see {root / 'report.json'}", stacklevel=2)
    return data


def _stage(staging: Path, meta: dict, breasts: pd.DataFrame, heatmaps: dict | None) -> int:
    """The staging folder of this build: kept when it holds the same job (a resumed build),
    else made afresh with empty arrays. Returns the number of chunks."""
    job = json.loads(json.dumps({"meta": meta, "n": len(breasts), "chunk": CHUNK,
                                 "heatmaps": heatmaps}))
    try:
        same = json.loads((staging / "job.json").read_text()) == job
    except (OSError, json.JSONDecodeError):
        same = False
    if not same:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        create_arrays(staging, len(breasts), meta["shapes"], CHUNK, meta["image_dtype"])
        write_atomic(staging / "breasts.pkl", lambda p: breasts.to_pickle(p))
        write_json(staging / "job.json", job)  # last: a staging folder without it is remade
    return -(-len(breasts) // CHUNK)


def _run_local(staging: Path, todo: list[int], n: int, source: str, progress: bool,
               workers: int) -> None:
    """The chunks in `todo` as one-chunk jobs, in `workers` forked processes."""
    bar = tqdm(total=len(todo), desc=f"preparing {source} ({n} breasts)", unit="chunk",
               disable=not progress)
    if workers > 1 and len(todo) > 1:
        ctx = multiprocessing.get_context("fork")  # as generate.py: no __main__ guard needed
        with ProcessPoolExecutor(min(workers, len(todo)), mp_context=ctx,
                                 initializer=one_thread_worker) as pool:
            for _ in pool.map(prepare_slice, [staging] * len(todo), [[k] for k in todo]):
                bar.update()
    else:
        for k in todo:
            prepare_slice(staging, [k])
            bar.update()
    bar.close()


def _finish(staging: Path, root: Path, meta: dict, report: Report, n_chunks: int) -> None:
    """Check that every chunk is there, then copy the readable breasts of the staging arrays
    into the final data set."""
    missing = [k for k in range(n_chunks) if not chunk_done(staging, k)]
    if missing:
        raise DatasetError(f"{staging}: {len(missing)} of {n_chunks} chunks not prepared "
                           f"(first: chunk {missing[0]}, breasts {missing[0] * CHUNK}-"
                           f"{(missing[0] + 1) * CHUNK - 1}); run the preparation again to "
                           "finish them")
    # every path (one process, jobs, a resumed build) reads the rows back as text
    manifest = pd.concat([pd.read_csv(_rows_file(staging, k), keep_default_na=False,
                                      dtype={"patient_id": str, "exam_id": str})
                          for k in range(n_chunks)], ignore_index=True)
    ok = (manifest["error"] == "").to_numpy()
    bad = manifest[~ok]
    report = Report.from_dict(report.to_dict())
    report.breasts_unreadable = int((~ok).sum())
    report.unreadable = [{"breast": f"{r.patient_id}/{r.exam_id}/{r.laterality}",
                          "error": r.error} for r in bad.itertuples()]
    report.breasts_kept = int(ok.sum())
    if report.breasts_kept == 0:
        raise ImageError(staging, "no breast could be prepared: every one has an unreadable "
                                  f"file (first: {report.unreadable[0]['error']})")
    final = manifest[ok].drop(columns=list(MANIFEST_DROP)).reset_index(drop=True)
    final["breast_id"] = np.arange(len(final))
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    if ok.all():  # the staging arrays are the data set's
        os.replace(staging, partial)
    else:
        partial.mkdir(parents=True)
        keep = np.flatnonzero(ok)
        create_arrays(partial, len(keep), meta["shapes"], CHUNK, meta["image_dtype"])
        staged = {v: ViewArray(staging / f"{v}.zarr", len(manifest), {**meta, "shard": CHUNK})
                  for v in VIEWS}
        for lo in range(0, len(keep), CHUNK):  # whole shards of the new arrays
            write_arrays(partial, lo, {v: a[keep[lo:lo + CHUNK]] for v, a in staged.items()})
    final.to_csv(partial / "manifest.csv", index=False)
    write_json(partial / "report.json", report.to_dict())
    write_json(partial / "meta.json", {"format_version": FORMAT_VERSION, **meta, "shard": CHUNK})
    os.replace(partial, root)
    shutil.rmtree(staging, ignore_errors=True)
    # the jobs' bookkeeping goes only after the rename (a crash before it keeps every chunk)
    for p in [*root.glob("rows_*.csv"), root / "job.json", root / "breasts.pkl"]:
        p.unlink(missing_ok=True)


def load_report(data: BreastDataset) -> Report:
    """The report of a prepared real data set (what was dropped and why)."""
    path = data.root / "report.json"
    try:
        return Report.from_dict(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError, TypeError) as e:
        raise ImageError(path, f"cannot read the preparation report ({e})") from e
