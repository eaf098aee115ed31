"""From a source's image list to breasts: the rules shared by every adapter, and the report.

An adapter lists images, one row each (IMAGE_COLUMNS, plus optional `horizontal_flip`,
`heatmap_benign`, `heatmap_malignant` and source-specific columns). `select_breasts` then
applies the documented rules:

- Breast = (patient_id, exam_id, laterality); adapters without exams use the patient id.
- Views: only the codes in `view_codes` are used (default CC -> cc, MLO -> mlo); images of
  other views (ML, LM, AT, XCCL, ...) are dropped and counted by code. Passing
  `view_codes={"CC": "cc", "MLO": "mlo", "ML": "mlo"}` accepts ML as the oblique view.
- Several images of one view of a breast: the first by file path (sorted) is used, the
  others are counted; the choice depends on nothing else, so it is reproducible.
- Breasts without both a CC and an MLO image are dropped and counted.
- Labels: a breast is malignant (benign) if any of its rows is.
- Splits by patient: an official split (train/test, maybe val) is kept and validation
  patients are drawn from its training patients; a patient listed in several official
  splits goes to test (val before train). Without one, patients are drawn into
  train/val/test by `split_fractions`. The draw is a permutation of the sorted patient ids
  seeded by `seed`.
- Official split values (`normalise_splits`): case and surrounding whitespace are ignored;
  train/training -> train, val/valid/validation -> val, test/testing -> test. An empty
  value means "no official split for this row": its patient is drawn like an official
  training patient (train or val, never test) when other rows have one. Any other value
  (e.g. "holdout") is an error naming the file and the value, never a silent train.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mvlib.data.store import SPLITS, DatasetError

IMAGE_COLUMNS = ("patient_id", "exam_id", "laterality", "view", "path", "malignant", "benign",
                 "split")
OPTIONAL_VIEW_COLUMNS = ("heatmap_benign", "heatmap_malignant")
DEFAULT_VIEW_CODES = {"CC": "cc", "MLO": "mlo"}
DEFAULT_SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
# Accepted spellings of an official split (after stripping and lower-casing).
SPLIT_SPELLINGS = {"train": "train", "training": "train", "val": "val", "valid": "val",
                   "validation": "val", "test": "test", "testing": "test"}


@dataclass
class Report:
    """What became of the source's images and breasts; the notebook shows `table()`."""

    images_listed: int = 0
    images_other_views: dict[str, int] = field(default_factory=dict)
    images_not_chosen: int = 0  # further images of a view that already had one
    breasts_listed: int = 0
    breasts_without_cc: int = 0
    breasts_without_mlo: int = 0
    breasts_paired: int = 0
    patients_in_several_official_splits: int = 0
    breasts_unreadable: int = 0
    # one per dropped breast: {"breast": "patient_id/exam_id/laterality",
    #                          "error": "<file>: <problem>"} (build._finish)
    unreadable: list[dict[str, str]] = field(default_factory=list)
    breasts_kept: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Report:
        return cls(**d)

    def table(self) -> pd.DataFrame:
        """One row per count, in the order the rules apply."""
        rows = [("images listed", self.images_listed)]
        rows += [(f"images of view {code} (not used)", n)
                 for code, n in sorted(self.images_other_views.items())]
        rows += [("further images of a view already chosen (not used)", self.images_not_chosen),
                 ("breasts listed", self.breasts_listed),
                 ("breasts without a CC image (dropped)", self.breasts_without_cc),
                 ("breasts without an MLO image (dropped)", self.breasts_without_mlo),
                 ("breasts with both views", self.breasts_paired),
                 ("patients in several official splits (put in test)",
                  self.patients_in_several_official_splits),
                 ("breasts with an unreadable file (dropped)", self.breasts_unreadable),
                 ("breasts in the data set", self.breasts_kept)]
        return pd.DataFrame(rows, columns=["what", "count"]).set_index("what")


def check_columns(df: pd.DataFrame, required: list[str] | tuple[str, ...], source: str) -> None:
    """Raise naming the file (`source`) and the missing columns."""
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DatasetError(f"{source}: missing columns {missing} (has {list(df.columns)})")


def read_csv(path: str | Path, required: list[str] | tuple[str, ...] = ()) -> pd.DataFrame:
    """A CSV whose column names and text cells are stripped of surrounding whitespace."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError as e:
        raise DatasetError(f"{path}: not found") from e
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: cannot read CSV ({e})") from e
    df.columns = [str(c).strip() for c in df.columns]
    df = df.apply(lambda col: col.str.strip())
    check_columns(df, required, str(path))
    return df


def normalise_splits(values: pd.Series, source: str, allow_empty: bool = True) -> pd.Series:
    """Official split values as 'train', 'val' or 'test' ('' for none, if `allow_empty`).

    Spellings are SPLIT_SPELLINGS, ignoring case and surrounding whitespace; anything else
    raises DatasetError naming the file (`source`) and the unknown values."""
    text = values.fillna("").astype(str).str.strip()
    out = text.str.lower().map(SPLIT_SPELLINGS)
    if allow_empty:
        out = out.mask(text == "", "")
    unknown = out.isna()
    if unknown.any():
        bad = sorted(set(values[unknown].fillna("").astype(str)))
        expected = sorted(SPLIT_SPELLINGS) + (["'' (none)"] if allow_empty else [])
        raise DatasetError(f"{source}: unknown split value(s) {bad[:10]} in "
                           f"{int(unknown.sum())} row(s) (expected one of {expected}, any case)")
    return out.astype(str)


def split_patients(patients: Iterable[str], official: pd.Series | None = None,
                   fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS,
                   seed: int = 0) -> tuple[dict[str, str], int]:
    """Split of each patient id, and how many patients had several official splits.

    `official`: per patient, the set of official splits ('train', 'test', maybe 'val'; see
    normalise_splits); a patient absent or with an empty set is drawn like a training one."""
    train_f, val_f, test_f = fractions
    if min(fractions) < 0 or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"split_fractions {fractions} must be >= 0 and sum to 1")
    if official is not None:
        sets = official.values() if isinstance(official, dict) else official
        unknown = sorted(set().union(*sets) - set(SPLITS))
        if unknown:  # never let an unrecognised split fall into the training pool
            raise DatasetError(f"official splits: unknown value(s) {unknown} (expected "
                               f"{list(SPLITS)}; see normalise_splits)")
    ids = sorted(set(patients))
    out, conflicts = {}, 0
    if official is None:
        pool, val_share = ids, val_f
    else:
        pool = []
        for pid in ids:
            splits = official.get(pid, set())
            conflicts += len(splits) > 1
            if "test" in splits:
                out[pid] = "test"
            elif "val" in splits:
                out[pid] = "val"
            else:
                pool.append(pid)
        val_share = val_f / (train_f + val_f) if train_f + val_f > 0 else 0.0
    order = np.random.default_rng(seed).permutation(len(pool))
    n_val = int(round(val_share * len(pool)))
    n_test = 0 if official is not None else int(round(test_f * len(pool)))
    for rank, i in enumerate(order):
        out[pool[i]] = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
    return out, conflicts


def select_breasts(images: pd.DataFrame, view_codes: dict[str, str] | None = None,
                   split_fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS,
                   seed: int = 0) -> tuple[pd.DataFrame, Report]:
    """Pair each breast's CC and MLO image by the module's rules.

    Returns one row per breast (patient_id, exam_id, laterality, split, malignant, benign,
    cc_path, mlo_path, optional heatmap and flip columns, then the source's own columns)
    sorted by (patient_id, exam_id, laterality), and the report.
    """
    check_columns(images, IMAGE_COLUMNS, "image list")
    view_codes = {k.upper(): v for k, v in (view_codes or DEFAULT_VIEW_CODES).items()}
    if not set(view_codes.values()) <= {"cc", "mlo"}:
        raise ValueError(f"view_codes must map to 'cc' or 'mlo', got {view_codes}")
    report = Report(images_listed=len(images))
    df = images.copy()
    for col in ("patient_id", "exam_id", "laterality", "view", "path"):
        df[col] = df[col].astype(str).str.strip()
    df["laterality"] = df["laterality"].str.upper().str[:1]
    df[["malignant", "benign"]] = df[["malignant", "benign"]].astype(int)
    df["split"] = normalise_splits(df["split"], "image list")
    bad = df[~df["laterality"].isin(["L", "R"])]
    if len(bad):
        raise DatasetError(f"{bad['path'].iloc[0]}: laterality must be L or R, "
                           f"got {images.loc[bad.index[0], 'laterality']!r}")
    key = ["patient_id", "exam_id", "laterality"]
    all_keys = set(map(tuple, df[key].drop_duplicates().to_numpy()))
    report.breasts_listed = len(all_keys)
    code = df["view"].str.upper()
    df["view"] = code.map(view_codes)
    report.images_other_views = {k: int(v) for k, v in code[df["view"].isna()]
                                 .value_counts().sort_index().items()}
    df = df[df["view"].notna()]
    df = df.sort_values([*key, "view", "path"], kind="stable")
    labels = df.groupby(key)[["malignant", "benign"]].max().astype(int)
    official = df.groupby("patient_id")["split"].agg(lambda s: {x for x in s if x})
    first = df.drop_duplicates([*key, "view"], keep="first")
    report.images_not_chosen = len(df) - len(first)
    extra = [c for c in df.columns if c not in IMAGE_COLUMNS and c not in OPTIONAL_VIEW_COLUMNS
             and c != "horizontal_flip"]
    per_view = {}
    for view in ("cc", "mlo"):
        v = first[first["view"] == view].set_index(key)
        cols = {"path": f"{view}_path", **{c: f"{view}_{c}" for c in OPTIONAL_VIEW_COLUMNS
                                           if c in v.columns}}
        per_view[view] = v[list(cols)].rename(columns=cols)
    has = {view: set(per_view[view].index) for view in per_view}
    report.breasts_without_cc = len(all_keys - has["cc"])
    report.breasts_without_mlo = len(all_keys - has["mlo"])
    breasts = per_view["cc"].join(per_view["mlo"], how="inner").join(labels)
    side = first.drop_duplicates(key).set_index(key)
    keep = ["horizontal_flip", *extra] if "horizontal_flip" in side.columns else extra
    breasts = breasts.join(side[keep]).sort_index().reset_index()
    report.breasts_paired = len(breasts)
    has_official = any(len(s) for s in official)
    splits, report.patients_in_several_official_splits = split_patients(
        breasts["patient_id"], official if has_official else None, split_fractions, seed)
    breasts.insert(3, "split", breasts["patient_id"].map(splits))
    assert set(breasts["split"]) <= set(SPLITS)
    front = [*key, "split", "malignant", "benign", "cc_path", "mlo_path"]
    return breasts[front + [c for c in breasts.columns if c not in front]], report
