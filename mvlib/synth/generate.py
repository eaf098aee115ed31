"""Generate synthetic two-view breasts in vectorised chunks, and write them as a data set.

Breast i belongs to patient i // 2 (left, then right breast); patients are laid out
train, then val, then test. Chunk k of CHUNK breasts draws from its own generator seeded
with (seed, k), so the data are bit-for-bit reproducible and an interrupted build
resumes at any chunk.
"""

from __future__ import annotations

import functools
import hashlib
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import threadpoolctl
import torch
from tqdm import tqdm

from mvlib.core.device import one_thread_worker
from mvlib.data.store import (
    CHANNELS,
    SPLITS,
    BreastDataset,
    DatasetWriter,
    build_lock,
    drop_stale,
    write_arrays,
)
from mvlib.synth.anatomy import depth_pixels, render_tissue, sample_geometry
from mvlib.synth.config import SynthConfig
from mvlib.synth.findings import project, render, sample_findings
from mvlib.synth.heatmaps import render_heatmaps

# Bump when a change to the generator's code changes its output: the version, CHUNK and
# BLOCK are part of a data set's name, so stale caches are never reopened.
GENERATOR_VERSION = 2
CHUNK = 32
BLOCK = 4  # breasts rendered together: their full-size arrays stay in the CPU cache


@dataclass
class Batch:
    """A generated chunk: arrays per view, the manifest rows, and the ground truth."""

    views: dict[str, np.ndarray]  # (n, 3, H, W) float32
    rows: pd.DataFrame
    findings: pd.DataFrame
    lesions: dict[str, np.ndarray]  # (n, H, W) finding intensity added to the image
    masks: dict[str, np.ndarray]  # (n, H, W) breast region
    # With `marker_counterfactual`: MLO's image channel with the marker forced present and
    # forced absent, {"with": (n, H, W), "without": (n, H, W)}; else None.
    mlo_marker: dict[str, np.ndarray] | None = None


def split_of_breasts(cfg: SynthConfig) -> np.ndarray:
    return np.repeat(np.repeat(SPLITS, [cfg.patients[s] for s in SPLITS]), 2)


def n_breasts(cfg: SynthConfig) -> int:
    return 2 * sum(cfg.patients[s] for s in SPLITS)


def _shortcut_prob(cfg: SynthConfig, view: str, split: np.ndarray, malignant: np.ndarray
                   ) -> np.ndarray:
    """Chance of the view's cue. In train it rises with malignancy by the strength knob,
    and falls for the other breasts so that the expected marker rate stays the base rate
    in every split: switching the knob off changes the correlation only."""
    s, base, prev = cfg.view(view).shortcut_strength, cfg.shortcut_base_rate, cfg.p_malignant
    p_pos = base + s * (1 - base)
    p_neg = max(base - prev * p_pos, 0.0) / (1 - prev)
    return np.where(split == "train", np.where(malignant, p_pos, p_neg), base)


def _cue_position(rng: np.random.Generator, size: tuple[int, int]) -> tuple[float, float]:
    """Where a marker goes: (row, col) in the background, bottom right."""
    h, w = size
    return h * rng.uniform(0.84, 0.9), w * rng.uniform(0.84, 0.9)


def _draw_cue(image: np.ndarray, rng: np.random.Generator, size: tuple[int, int]) -> tuple:
    """A bright disk (a burned-in marker) in the background, bottom right; returns where."""
    at = _cue_position(rng, size)
    _paint_cue(image, at, size)
    return at


def _paint_cue(image: np.ndarray, at: tuple[float, float], size: tuple[int, int]) -> None:
    """Paint the marker disk centred at `at` = (row, col) into `image` (in place)."""
    h, w = size
    radius = max(0.03 * w, 1.5)
    row, col = at
    rr = np.arange(h, dtype=np.float32)[:, None] - row
    cc = np.arange(w, dtype=np.float32)[None, :] - col
    disk = np.clip(radius - np.sqrt(rr**2 + cc**2) + 0.5, 0, 1)
    np.maximum(image, 0.95 * disk, out=image)


def generate_chunk(cfg: SynthConfig, k: int, marker_counterfactual: bool = False) -> Batch:
    """Generate breasts [k * CHUNK, (k + 1) * CHUNK) of the data set.

    Run it under `threadpoolctl.threadpool_limits(1, "blas")`, as generate_dataset does:
    multi-threaded BLAS makes its small upsampling products several times slower.
    `marker_counterfactual` also returns MLO's image with the marker forced on and off
    (`Batch.mlo_marker`; mvlib.synth.counterfactual); every other array is unchanged by it.
    """
    rng = np.random.default_rng([cfg.seed, k])
    total = n_breasts(cfg)
    ids = np.arange(k * CHUNK, min((k + 1) * CHUNK, total))
    n = len(ids)
    split = split_of_breasts(cfg)[ids]
    malignant = rng.random(n) < cfg.p_malignant
    benign = rng.random(n) < cfg.p_benign
    incidental = ~benign & (rng.random(n) < cfg.p_incidental)
    geom = sample_geometry(rng, n, cfg.texture_beta, cfg.density)
    depth_px = depth_pixels(geom, cfg.cc_size, cfg.mlo_size)
    findings = sample_findings(rng, malignant, benign, incidental, cfg)
    rows = pd.DataFrame({
        "breast_id": ids, "patient_id": ids // 2, "laterality": np.where(ids % 2, "R", "L"),
        "split": split, "malignant": malignant.astype(int), "benign": benign.astype(int),
    })
    views, lesions, masks, truth = {}, {}, {}, {}
    if marker_counterfactual:
        marker = np.empty((n, *cfg.mlo_size), np.float32)
        unmarked = np.empty((n, *cfg.mlo_size), np.float32)
    for view in ("cc", "mlo"):
        size, knobs = cfg.size(view), cfg.view(view)
        out = views[view] = np.empty((n, 3, *size), np.float32)
        lesion = lesions[view] = np.zeros((n, *size), np.float32)
        mask = masks[view] = np.empty((n, *size), bool)
        cue = rng.random(n) < _shortcut_prob(cfg, view, split, malignant)
        rows[f"{view}_cue"] = cue.astype(int)
        for lo in range(0, n, BLOCK):
            blk = slice(lo, min(lo + BLOCK, n))
            image, mask[blk] = render_tissue(rng, view, geom.take(blk), size, depth_px[blk])
            detections = []
            for j, f in enumerate(findings):
                if not lo <= f.breast < blk.stop:
                    continue
                row, col = project(f, view, geom, size, depth_px)
                sl, patch = render(f, view, row, col, size, depth_px[f.breast], rng)
                lesion[f.breast][sl] += patch
                detected = f.visible[view] and rng.random() < knobs.heatmap_sensitivity
                if detected:
                    detections.append((f.breast - lo, row, col, f.radius * depth_px[f.breast],
                                       f.malignant, rng.uniform(*cfg.heatmap_amplitude)))
                truth.setdefault(j, {}).update({f"{view}_row": row, f"{view}_col": col,
                                                f"{view}_detected": detected})
            image += lesion[blk] * mask[blk]
            np.clip(image, 0, 1, out=image)
            without = image.copy() if marker_counterfactual and view == "mlo" else None
            drawn = {}
            for b in np.flatnonzero(cue[blk]):
                drawn[b] = _draw_cue(image[b], rng, size)
            if without is not None:
                marker[blk] = _forced_markers(cfg, k, lo, without, drawn, size)
                unmarked[blk] = without
            out[blk, 0] = image
            render_heatmaps(rng, size, mask[blk], detections, cfg.heatmap_crosstalk,
                            cfg.heatmap_false_positives, cfg.false_positive_amplitude,
                            cfg.heatmap_noise, out=out[blk, 1:])
    table = []
    for j, f in enumerate(findings):
        d = asdict(f)
        d["breast_id"] = int(ids[d.pop("breast")])
        for view in ("cc", "mlo"):
            d[f"{view}_visible"] = d["visible"][view]
            d[f"{view}_contrast"] = d["view_contrast"][view]
        del d["visible"], d["view_contrast"], d["shape_seed"]
        d["nipple_distance"] = (1 - f.t) * depth_px[f.breast]
        table.append({**d, **truth[j]})
    finding_cols = ["breast_id", "kind", "malignant", "biopsied", "t", "s", "v", "radius",
                    "contrast", "cc_visible", "cc_contrast", "mlo_visible", "mlo_contrast",
                    "nipple_distance", "cc_row", "cc_col", "cc_detected", "mlo_row",
                    "mlo_col", "mlo_detected"]
    rows["depth_px"] = depth_px
    return Batch(views, rows, pd.DataFrame(table, columns=finding_cols), lesions, masks,
                 {"with": marker, "without": unmarked} if marker_counterfactual else None)


def _forced_markers(cfg: SynthConfig, k: int, lo: int, without: np.ndarray,
                    drawn: dict[int, tuple], size: tuple[int, int]) -> np.ndarray:
    """A block's MLO images (before the marker) with a marker on every breast: where the
    generator drew one, at the same place; elsewhere at a place drawn from the breast's own
    side stream (seeded by config seed, chunk and breast), so the main stream is untouched."""
    out = without.copy()
    for b in range(len(out)):
        at = drawn.get(b)
        if at is None:
            at = _cue_position(np.random.default_rng([cfg.seed, k, lo + b, 0xC0E]), size)
        _paint_cue(out[b], at, size)
    return out


def dataset_dir(cfg: SynthConfig, store: Path) -> Path:
    """Where the data set of `cfg` lives: named by the config and the generator's version."""
    version = hashlib.sha256(f"{cfg.digest()}-{GENERATOR_VERSION}-{CHUNK}-{BLOCK}".encode())
    return Path(store) / "data" / f"synthetic-{version.hexdigest()[:10]}"


def _build_chunk(cfg: SynthConfig, partial: Path, k: int) -> tuple:
    """Generate chunk k and write its arrays; return what the writer records."""
    batch = generate_chunk(cfg, k)
    # torch casts to float16 about 5x faster than numpy, even on one thread.
    write_arrays(partial, k * CHUNK, {v: torch.from_numpy(a).half().numpy()
                                      for v, a in batch.views.items()})
    return k, batch.rows, batch.findings


def generate_dataset(cfg: SynthConfig, store: str | Path, progress: bool = True,
                     workers: int = 2) -> BreastDataset:
    """Build the data set for `cfg` under `store/data/` (or open it if it exists).

    Chunks are generated in `workers` processes, each writing its rows of the arrays
    (threads would serialise on the GIL); an interrupted build resumes with the chunks
    it had not finished.
    """
    root = dataset_dir(cfg, Path(store))
    with build_lock(root):
        drop_stale(root)
        if not (root / "meta.json").exists():
            _build(cfg, root, progress, workers)
    return BreastDataset.open(root)


def _build(cfg: SynthConfig, root: Path, progress: bool, workers: int) -> None:
    meta = {"source": "synthetic", "channels": list(CHANNELS), "config": cfg.to_dict(),
            "generator": {"version": GENERATOR_VERSION, "chunk": CHUNK, "block": BLOCK},
            "shapes": {v: [len(CHANNELS), *cfg.size(v)] for v in ("cc", "mlo")}}
    writer = DatasetWriter(root, meta, n_breasts(cfg), CHUNK)
    todo = [k for k in range(writer.n_chunks) if k not in writer.done]
    build = functools.partial(_build_chunk, cfg, writer.partial)
    bar = tqdm(total=len(todo), desc="generating breasts", unit="chunk", disable=not progress)
    if workers > 1 and len(todo) > 1:
        # fork, like torch's DataLoader: workers start at once and need no __main__ guard.
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=one_thread_worker) as pool:
            for result in pool.map(build, todo):
                writer.commit_chunk(*result)
                bar.update()
    else:
        with threadpoolctl.threadpool_limits(1, user_api="blas"):
            for k in todo:
                writer.commit_chunk(*build(k))
                bar.update()
    bar.close()
    writer.finish(extra_name="findings.csv")
