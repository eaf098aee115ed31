"""RSNA Screening Mammography (Kaggle) layout.

    <root>/train.csv                                  site_id, patient_id, image_id,
                                                      laterality, view, cancer, biopsy, ...
    <root>/train_images/<patient_id>/<image_id>.dcm

Breast = (patient_id, laterality); malignant = cancer; benign = biopsy and not cancer.
No official split (the competition's test set is hidden): patients are drawn.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mvlib.data.adapters.common import read_csv
from mvlib.data.store import DatasetError

REQUIRED = ("patient_id", "image_id", "laterality", "view", "cancer", "biopsy")
EXTRA = ("site_id", "machine_id", "age", "density", "BIRADS", "implant")


def list_images(root: Path, csv: str = "train.csv", images: str = "train_images"
                ) -> pd.DataFrame:
    """One row per row of train.csv (paths relative to `root`)."""
    path = root / csv
    df = read_csv(path, REQUIRED)
    try:
        cancer = df["cancer"].astype(float).astype(int)
        biopsy = df["biopsy"].astype(float).astype(int)
    except ValueError as e:
        raise DatasetError(f"{path}: cancer and biopsy must be 0/1 ({e})") from e
    out = pd.DataFrame({
        "patient_id": df["patient_id"], "exam_id": df["patient_id"],
        "laterality": df["laterality"], "view": df["view"],
        "path": [f"{images}/{p}/{i}.dcm" for p, i in zip(df["patient_id"], df["image_id"],
                                                          strict=True)],
        "malignant": cancer, "benign": ((biopsy == 1) & (cancer == 0)).astype(int),
        "split": "",
    })
    for col in EXTRA:
        if col in df.columns:
            out[col] = df[col]
    return out
