"""NYU breast_cancer_classifier layout: exam-list pickle + 16-bit PNGs (+ HDF5 heatmaps).

    <root>/exam_list_before_cropping.pkl   list of dicts: horizontal_flip, 'L-CC', 'R-CC',
                                           'L-MLO', 'R-MLO' (lists of file stems)
    <root>/images/<stem>.png               (or <root>/<stem>.png)
    <root>/heatmaps/heatmap_benign/<stem>.hdf5, heatmap_malignant/<stem>.hdf5  (optional)
    <root>/labels.csv                      one row per exam: exam_index (position in the
                                           exam list; default the row number), left_benign,
                                           left_malignant, right_benign, right_malignant,
                                           optional patient_id (default: one patient per
                                           exam) and split (train/val/test; spellings
                                           as common.normalise_splits, empty = drawn)

Orientation follows each exam's `horizontal_flip` (orientation.needs_flip). Heatmaps are
stored transposed and must have their image's shape once transposed back.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pandas as pd

from mvlib.data.adapters.common import normalise_splits, read_csv
from mvlib.data.store import DatasetError

VIEW_KEYS = ("L-CC", "R-CC", "L-MLO", "R-MLO")
LABEL_COLUMNS = ("left_benign", "left_malignant", "right_benign", "right_malignant")


def _find_exam_list(root: Path, exam_list: str | None) -> Path:
    if exam_list:
        return root / exam_list
    default = root / "exam_list_before_cropping.pkl"
    if default.exists():
        return default
    found = sorted(root.glob("*.pkl"))
    if len(found) != 1:
        raise DatasetError(f"{root}: expected one exam-list pickle, found "
                           f"{[p.name for p in found]}; pass exam_list=<file name>")
    return found[0]


# What an exam list may name besides plain lists, dicts, strings and numbers: numpy scalars
# and arrays (the cropped lists of nyukat/breast_cancer_classifier hold window coordinates).
SAFE_GLOBALS = {("collections", "OrderedDict"), ("numpy", "dtype"), ("numpy", "ndarray"),
                ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                ("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct")}


class _ExamListUnpickler(pickle.Unpickler):
    """pickle.load that builds plain data only: a pickle can name any callable, and loading
    it calls that callable (os.system, say), so a crafted exam list would run code."""

    def find_class(self, module: str, name: str):
        if (module, name) not in SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which an exam list of "
                                         "plain lists, dicts and strings never does")
        return super().find_class(module, name)


def read_exam_list(path: Path) -> list[dict]:
    """The exam list, checked: a list of dicts with horizontal_flip and view lists, read
    with a restricted unpickler (plain data only; anything else is refused, not run)."""
    try:
        with open(path, "rb") as f:
            exams = _ExamListUnpickler(f).load()
    except FileNotFoundError as e:
        raise DatasetError(f"{path}: exam list not found") from e
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as e:
        raise DatasetError(f"{path}: cannot read the exam-list pickle ({e})") from e
    if not isinstance(exams, list):
        raise DatasetError(f"{path}: expected a list of exam dicts, got {type(exams).__name__}")
    for i, exam in enumerate(exams):
        if not isinstance(exam, dict) or exam.get("horizontal_flip") not in ("NO", "YES"):
            raise DatasetError(f"{path}: exam {i} has no horizontal_flip 'NO'/'YES'")
        for key in VIEW_KEYS:
            if not isinstance(exam.get(key, []), list):
                raise DatasetError(f"{path}: exam {i} key {key!r} is not a list of file stems")
    return exams


def read_labels(path: Path, n_exams: int) -> pd.DataFrame:
    """Labels indexed by exam position (0..n_exams-1), with patient_id and split."""
    df = read_csv(path, LABEL_COLUMNS)
    if "exam_index" not in df.columns:
        df["exam_index"] = [str(i) for i in range(len(df))]
    try:
        df["exam_index"] = df["exam_index"].astype(int)
        for col in LABEL_COLUMNS:
            df[col] = df[col].astype(float).astype(int)
    except ValueError as e:
        raise DatasetError(f"{path}: exam_index and label columns must be integers ({e})") from e
    bad = df[~df[list(LABEL_COLUMNS)].isin([0, 1]).all(axis=1)]
    if len(bad):
        raise DatasetError(f"{path}: labels must be 0 or 1 (row {bad.index[0] + 2})")
    missing = sorted(set(range(n_exams)) - set(df["exam_index"]))
    if missing:
        raise DatasetError(f"{path}: no labels for exams {missing[:10]} of the exam list")
    if df["exam_index"].duplicated().any():
        raise DatasetError(f"{path}: exam_index values repeat")
    if "patient_id" not in df.columns:
        df["patient_id"] = "exam" + df["exam_index"].astype(str)
    if "split" not in df.columns:
        df["split"] = ""
    df["split"] = normalise_splits(df["split"], str(path))
    return df.set_index("exam_index")


def list_images(root: Path, exam_list: str | None = None, labels: str = "labels.csv",
                image_dir: str | None = None, heatmap_dir: str | None = None) -> pd.DataFrame:
    """One row per image of the exam list (paths relative to `root`)."""
    exams_path = _find_exam_list(root, exam_list)
    exams = read_exam_list(exams_path)
    table = read_labels(root / labels, len(exams))
    if image_dir is None:
        image_dir = "images" if (root / "images").is_dir() else "."
    if heatmap_dir is None:
        heatmap_dir = "heatmaps" if (root / "heatmaps" / "heatmap_benign").is_dir() else ""
    rows = []
    for i, exam in enumerate(exams):
        lab = table.loc[i]
        for key in VIEW_KEYS:
            side = "left" if key[0] == "L" else "right"
            for stem in exam.get(key, []):
                row = {"patient_id": str(lab["patient_id"]), "exam_id": str(i),
                       "laterality": key[0], "view": key[2:],
                       "path": str(Path(image_dir) / f"{stem}.png"),
                       "malignant": int(lab[f"{side}_malignant"]),
                       "benign": int(lab[f"{side}_benign"]), "split": lab["split"],
                       "horizontal_flip": exam["horizontal_flip"]}
                if heatmap_dir:
                    for kind in ("benign", "malignant"):
                        row[f"heatmap_{kind}"] = str(Path(heatmap_dir) / f"heatmap_{kind}"
                                                     / f"{stem}.hdf5")
                rows.append(row)
    if not rows:
        raise DatasetError(f"{exams_path}: the exam list names no images")
    return pd.DataFrame(rows)
