"""A real source on disk -> the canonical data set: adapter, pairing rules, preparation."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from mvlib.data.adapters import ADAPTERS
from mvlib.data.adapters.common import DEFAULT_SPLIT_FRACTIONS, Report, select_breasts
from mvlib.data.build import build_dataset, load_report
from mvlib.data.crop import CropRule
from mvlib.data.store import BreastDataset, DatasetError

__all__ = ["ADAPTERS", "Report", "load_report", "options_of", "prepare_real"]


def options_of(source: str) -> list[str]:
    """The source-specific knobs of an adapter (besides the common ones of prepare_real)."""
    return [p for p in inspect.signature(ADAPTERS[source]).parameters if p != "root"]


def prepare_real(source: str, data_root: str | Path | None,
                 sizes: dict[str, tuple[int, int]], store: str | Path, progress: bool = True,
                 view_codes: dict[str, str] | None = None,
                 split_fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS,
                 seed: int = 0, crop: dict | None = None, workers: int = 2,
                 run_slices: Callable[[Path, list[list[int]]], None] | None = None,
                 patch_weights: str | Path | None = None, **options) -> BreastDataset:
    """Build (or reopen) the data set of a real source at `sizes`.

    `view_codes`, `split_fractions` and `seed`: the pairing and split rules
    (adapters.common); `crop`: fields of crop.CropRule; `workers`: local processes, unless
    `run_slices` runs the jobs (mvlib.data.build.build_dataset); `patch_weights`: the
    patch classifier's weights file (sample_patch_model.p of nyukat/breast_cancer_classifier)
    to make the benign and malignant heatmaps with (mvlib.data.heatmaps), for a source that
    ships none (or instead of those it ships); `options`: the adapter's own (see
    options_of(source)).
    """
    if source not in ADAPTERS:
        raise ValueError(f"unknown real source {source!r}: choose one of {sorted(ADAPTERS)}")
    if data_root is None:
        raise ValueError(f"dataset {source!r} needs data_root: the folder it was downloaded to")
    root = Path(data_root).expanduser().resolve()
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder (data_root of {source!r})")
    unknown = sorted(set(options) - set(options_of(source)))
    if unknown:
        raise ValueError(f"{source}: unknown options {unknown}; the adapter takes "
                         f"{options_of(source)}, and every source view_codes, "
                         f"split_fractions, seed, crop, workers, patch_weights")
    images = ADAPTERS[source](root, **options)
    fractions = tuple(float(f) for f in split_fractions)
    breasts, report = select_breasts(images, view_codes, fractions, seed)
    if breasts.empty:
        raise DatasetError(f"{root}: no breast has both a CC and an MLO image "
                           f"({report.images_listed} images listed)")
    try:
        rule = CropRule(**(crop or {}))
    except TypeError as e:
        raise ValueError(f"crop: {e}; fields are threshold, erosions, margin, "
                         f"reference_height") from e
    config = {"source": source, "options": options, "view_codes": view_codes,
              "split_fractions": list(fractions), "seed": seed}
    heatmaps = None
    if patch_weights is not None:
        from mvlib.data.heatmaps import HeatmapCache  # torchvision's DenseNet: only when asked

        cache = HeatmapCache(patch_weights, Path(store) / "heatmaps")  # checks the file
        heatmaps = {"weights": str(cache.weights.resolve()), "cache": str(Path(store) /
                                                                           "heatmaps")}
        config["heatmaps"] = cache.identity()
    return build_dataset(source, breasts, report, root, sizes, store, config, rule,
                         progress=progress, workers=workers, run_slices=run_slices,
                         heatmaps=heatmaps)
