"""Prepare a real source's breasts into the canonical data set, in parallel and resumably.

Each breast's two files are decoded, cropped, turned to face right and resized
(mvlib.data.crop) by forked workers that write their chunk's shard of the arrays. The
breasts are first written into `<name>.staging/` with the chunked DatasetWriter, so an
interrupted preparation resumes at the chunks it had not finished. A breast with an
unreadable file is recorded there with the file and the error; the final data set leaves
it out (its rows are copied without it) and `report.json` lists it.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import zarr
from tqdm import tqdm

from mvlib.atomic import write_json
from mvlib.data.adapters.common import Report
from mvlib.data.crop import DEFAULT_RULE, CropRule, prepare_view
from mvlib.data.dicom import ImageError, read_heatmap, read_image
from mvlib.data.orientation import needs_flip
from mvlib.data.store import (
    CHANNELS,
    FORMAT_VERSION,
    VIEWS,
    BreastDataset,
    DatasetWriter,
    build_lock,
    create_arrays,
    drop_stale,
    write_arrays,
)
from mvlib.device import one_thread_worker

# Bump when a change to the preparation changes its output: it is part of the name.
BUILD_VERSION = 1
CHUNK = 8  # breasts per unit of work and of resumption
MANIFEST_DROP = ("error",)


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
                   channels: int, rule: CropRule) -> dict[str, np.ndarray]:
    """The (C, H, W) arrays of both views of one breast; ImageError names a bad file."""
    flip_rule = row.get("horizontal_flip")
    out = {}
    for view in VIEWS:
        path = root / row[f"{view}_path"]
        image = read_image(path)
        heatmaps = []
        if channels == len(CHANNELS):
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
            out[view] = prepare_view(image, sizes[view], flip, heatmaps, rule)
        except ValueError as e:
            raise ImageError(path, str(e)) from e
    return out


def _prepare_chunk(task: tuple) -> tuple[int, pd.DataFrame]:
    """Prepare one chunk of breasts and write its rows of the staging arrays."""
    k, rows, root, partial, sizes, channels, rule = task
    views = {v: np.zeros((len(rows), channels, *sizes[v]), np.float16) for v in VIEWS}
    errors = []
    for j, (_, row) in enumerate(rows.iterrows()):
        try:
            arrays = prepare_breast(row, root, sizes, channels, rule)
        except ImageError as e:
            errors.append(str(e))
            continue
        for v in VIEWS:
            views[v][j] = arrays[v]
        errors.append("")
    write_arrays(partial, k * CHUNK, views)
    return k, rows.assign(error=errors)


def build_dataset(source: str, breasts: pd.DataFrame, report: Report, data_root: str | Path,
                  sizes: dict[str, tuple[int, int]], store: str | Path, config: dict,
                  rule: CropRule = DEFAULT_RULE, progress: bool = True, workers: int = 2
                  ) -> BreastDataset:
    """Build (or reopen) the data set of `breasts` (select_breasts' table, paths relative to
    `data_root`) at `sizes` under `store/data/`."""
    root_dir = Path(data_root).resolve()
    channels = channels_of(breasts)
    config = {**config, "data_root": str(root_dir), "sizes": {v: list(sizes[v]) for v in VIEWS},
              "crop": asdict(rule), "channels": channels}
    root = dataset_dir(Path(store), source, config, breasts)
    with build_lock(root):
        drop_stale(root)
        if not (root / "meta.json").exists():
            staging = root.with_name(root.name + ".staging")
            meta = {"source": source, "channels": list(CHANNELS[:channels]), "config": config,
                    "shapes": {v: [channels, *sizes[v]] for v in VIEWS}}
            if not (staging / "meta.json").exists():
                _stage(breasts, staging, meta, root_dir, sizes, channels, rule, progress,
                       workers)
            _finish(staging, root, meta, report)
    data = BreastDataset.open(root)
    rep = load_report(data)
    if rep.breasts_unreadable:
        shown = "; ".join(f"{u['error']}" for u in rep.unreadable[:3])
        warnings.warn(f"{root.name}: {rep.breasts_unreadable} breast(s) skipped for "
                      f"unreadable files ({shown}{' ...' if len(rep.unreadable) > 3 else ''}); "
                      f"see {root / 'report.json'}", stacklevel=2)
    return data


def _stage(breasts, staging, meta, root_dir, sizes, channels, rule, progress, workers) -> None:
    writer = DatasetWriter(staging, meta, len(breasts), CHUNK)
    todo = [k for k in range(writer.n_chunks) if k not in writer.done]
    tasks = [(k, breasts.iloc[k * CHUNK:(k + 1) * CHUNK].reset_index(drop=True), root_dir,
              writer.partial, sizes, channels, rule) for k in todo]
    bar = tqdm(total=int(sum(len(t[1]) for t in tasks)), desc=f"preparing {meta['source']}",
               unit="breast", disable=not progress)
    ids = np.arange(len(breasts))
    if workers > 1 and len(tasks) > 1:
        ctx = multiprocessing.get_context("fork")  # as generate.py: no __main__ guard needed
        with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=ctx,
                                 initializer=one_thread_worker) as pool:
            for k, rows in pool.map(_prepare_chunk, tasks):
                _commit(writer, k, rows, ids)
                bar.update(len(rows))
    else:
        for task in tasks:
            k, rows = _prepare_chunk(task)
            _commit(writer, k, rows, ids)
            bar.update(len(rows))
    bar.close()
    writer.finish()


def _commit(writer: DatasetWriter, k: int, rows: pd.DataFrame, ids: np.ndarray) -> None:
    rows.insert(0, "breast_id", ids[k * CHUNK:k * CHUNK + len(rows)])
    writer.commit_chunk(k, rows)


def _finish(staging: Path, root: Path, meta: dict, report: Report) -> None:
    """Copy the readable breasts of the staging data set into the final one."""
    manifest = pd.read_csv(staging / "manifest.csv", keep_default_na=False,
                           dtype={"patient_id": str, "exam_id": str})
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
    if ok.all():
        os.replace(staging, partial)
    else:
        partial.mkdir(parents=True)
        keep = np.flatnonzero(ok)
        create_arrays(partial, len(keep), meta["shapes"], CHUNK)
        for view in VIEWS:
            src = zarr.open_array(str(staging / f"{view}.zarr"), mode="r")
            dst = zarr.open_array(str(partial / f"{view}.zarr"), mode="r+")
            for lo in range(0, len(keep), CHUNK):  # whole shards of the new array
                dst[lo:lo + CHUNK] = src.oindex[keep[lo:lo + CHUNK]]
    final.to_csv(partial / "manifest.csv", index=False)
    write_json(partial / "report.json", report.to_dict())
    write_json(partial / "meta.json", {"format_version": FORMAT_VERSION, **meta, "shard": CHUNK})
    os.replace(partial, root)
    shutil.rmtree(staging, ignore_errors=True)


def load_report(data: BreastDataset) -> Report:
    """The report of a prepared real data set (what was dropped and why)."""
    path = data.root / "report.json"
    try:
        return Report.from_dict(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError, TypeError) as e:
        raise ImageError(path, f"cannot read the preparation report ({e})") from e
