"""VinDr-Mammo (PhysioNet) layout.

    <root>/breast-level_annotations.csv   study_id, series_id, image_id, laterality,
                                          view_position, breast_birads ("BI-RADS n"),
                                          breast_density, split (training/test)
    <root>/finding_annotations.csv        optional: adds `findings`, the breast's number of
                                          annotated findings (rows not "No Finding")
    <root>/images/<study_id>/<image_id>.dicom

There is no pathology: labels are BI-RADS proxies set by `birads_labels` (default
DEFAULT_BIRADS: malignant = BI-RADS 5, highly suggestive of malignancy; benign = BI-RADS 3
or 4, probably benign or suspicious, the findings that are followed up or biopsied;
BI-RADS 1-2 negative). The study is the patient (the data set has no patient id). The
official split is kept; validation patients come from `training`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from mvlib.data.adapters.common import normalise_splits, read_csv
from mvlib.data.store import DatasetError

REQUIRED = ("study_id", "image_id", "laterality", "view_position", "breast_birads", "split")
DEFAULT_BIRADS = {"malignant": [5], "benign": [3, 4]}


def parse_birads(value: str, where: str) -> int:
    """'BI-RADS 4' (or '4') -> 4."""
    m = re.fullmatch(r"(?:BI-?RADS\s*)?([0-6])[A-Ca-c]?", str(value).strip(), re.IGNORECASE)
    if not m:
        raise DatasetError(f"{where}: cannot read BI-RADS category {value!r}")
    return int(m.group(1))


def check_birads_labels(birads_labels: dict) -> dict[str, set[int]]:
    if set(birads_labels) != {"malignant", "benign"}:
        raise ValueError(f"birads_labels needs keys 'malignant' and 'benign', got "
                         f"{sorted(birads_labels)}")
    out = {k: {int(x) for x in v} for k, v in birads_labels.items()}
    if not all(0 <= x <= 6 for v in out.values() for x in v):
        raise ValueError(f"birads_labels: categories are 0-6, got {birads_labels}")
    return out


def list_images(root: Path, birads_labels: dict | None = None,
                annotations: str = "breast-level_annotations.csv",
                findings: str = "finding_annotations.csv", images: str = "images"
                ) -> pd.DataFrame:
    """One row per image of the breast-level annotations (paths relative to `root`)."""
    mapping = check_birads_labels(birads_labels or DEFAULT_BIRADS)
    path = root / annotations
    df = read_csv(path, REQUIRED)
    birads = [parse_birads(v, f"{path} row {i + 2}") for i, v in enumerate(df["breast_birads"])]
    split = normalise_splits(df["split"], str(path), allow_empty=False)
    out = pd.DataFrame({
        "patient_id": df["study_id"], "exam_id": df["study_id"],
        "laterality": df["laterality"], "view": df["view_position"],
        "path": [f"{images}/{s}/{i}.dicom" for s, i in zip(df["study_id"], df["image_id"],
                                                            strict=True)],
        "malignant": [int(b in mapping["malignant"]) for b in birads],
        "benign": [int(b in mapping["benign"]) for b in birads],
        "split": split, "birads": birads,
    })
    if "breast_density" in df.columns:
        out["density"] = df["breast_density"]
    if (root / findings).exists():
        out["findings"] = _count_findings(root / findings, out)
    return out


def _count_findings(path: Path, images: pd.DataFrame) -> list[int]:
    """Annotated findings per breast (study_id, laterality), aligned with `images`."""
    f = read_csv(path, ("study_id", "laterality", "finding_categories"))
    real = f[~f["finding_categories"].str.contains("No Finding", regex=False)]
    counts = real.groupby(["study_id", real["laterality"].str.upper()]).size()
    return [int(counts.get((s, lat.upper()), 0))
            for s, lat in zip(images["patient_id"], images["laterality"], strict=True)]
