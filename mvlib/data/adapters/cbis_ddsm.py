"""CBIS-DDSM (TCIA) layout: the four case-description CSVs and the NBIA download.

    <root>/{mass,calc}_case_description_{train,test}_set.csv
    <root>/CBIS-DDSM/<Mass-Training_P_00001_LEFT_CC>/<study>/<series>/<file>.dcm

Column names differ between files ("breast_density" / "breast density") and cells carry
trailing whitespace: names are stripped, lower-cased and spaces made underscores, cells
stripped. The image of a row is the DICOM file under the folder named by the first
component of "image file path" (the NBIA downloader renames the lower folders, so the
CSV's full path is tried first, then the folder's file; with several, one in a "full
mammogram" series, else the first by path). Malignant if any row of the breast is
MALIGNANT, benign if any is BENIGN or BENIGN_WITHOUT_CALLBACK; there are no normal breasts.
The official split comes from the file names (a patient in both goes to test).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mvlib.data.adapters.common import check_columns, read_csv
from mvlib.data.store import DatasetError

CSV_FILES = {
    "mass_case_description_train_set.csv": "train",
    "calc_case_description_train_set.csv": "train",
    "mass_case_description_test_set.csv": "test",
    "calc_case_description_test_set.csv": "test",
}
REQUIRED = ("patient_id", "left_or_right_breast", "image_view", "pathology", "image_file_path")
PATHOLOGIES = ("MALIGNANT", "BENIGN", "BENIGN_WITHOUT_CALLBACK")


def normalise_columns(df: pd.DataFrame) -> pd.DataFrame:
    """'breast density ' -> 'breast_density', 'left or right breast' -> ..."""
    return df.rename(columns=lambda c: "_".join(str(c).strip().lower().split()))


def _image_of(images: Path, csv_path: str, cache: dict[str, list[Path]]) -> Path:
    """The full-mammogram DICOM of a CSV "image file path" (see the module doc)."""
    exact = images / csv_path
    if exact.is_file():
        return exact
    folder = csv_path.replace("\\", "/").split("/")[0]
    if folder not in cache:
        cache[folder] = sorted((images / folder).rglob("*.dcm"))
    files = cache[folder]
    full = [p for p in files if any("full mammogram" in part.lower() for part in p.parts)]
    chosen = full or files
    return chosen[0] if chosen else exact


def list_images(root: Path, csv_dir: str = ".", images: str | None = None) -> pd.DataFrame:
    """One row per abnormality row of the CSVs found (paths relative to `root`)."""
    if images is None:
        images = "CBIS-DDSM" if (root / "CBIS-DDSM").is_dir() else "."
    found = {name: split for name, split in CSV_FILES.items()
             if (root / csv_dir / name).exists()}
    if not found:
        raise DatasetError(f"{root / csv_dir}: none of the case-description CSVs "
                           f"{list(CSV_FILES)}")
    frames, cache = [], {}
    for name, split in found.items():
        path = root / csv_dir / name
        df = normalise_columns(read_csv(path))
        check_columns(df, REQUIRED, str(path))
        pathology = df["pathology"].str.upper()
        bad = sorted(set(pathology) - set(PATHOLOGIES))
        if bad:
            raise DatasetError(f"{path}: unknown pathology values {bad}")
        side = df["left_or_right_breast"].str.upper().map({"LEFT": "L", "RIGHT": "R"})
        if side.isna().any():
            raise DatasetError(f"{path}: 'left or right breast' must be LEFT or RIGHT, got "
                               f"{df['left_or_right_breast'][side.isna()].iloc[0]!r}")
        files = [_image_of(root / images, p, cache).relative_to(root)
                 for p in df["image_file_path"]]
        out = pd.DataFrame({
            "patient_id": df["patient_id"], "exam_id": df["patient_id"], "laterality": side,
            "view": df["image_view"], "path": [str(f) for f in files],
            "malignant": (pathology == "MALIGNANT").astype(int),
            "benign": pathology.str.startswith("BENIGN").astype(int), "split": split,
        })
        if "breast_density" in df.columns:
            out["density"] = df["breast_density"]
        frames.append(out)
    return pd.concat(frames, ignore_index=True)
