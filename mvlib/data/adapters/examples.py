"""Tiny example downloads of each source, in its exact on-disk layout, for tests and docs.

Each `write_<source>(root)` writes a few patients of simple synthetic mammograms (a
half-ellipse of textured tissue against the chest-wall edge, a burned-in label in the
background) with the source's file names, CSV columns and DICOM encodings, including the
quirks the adapters handle: JPEG 2000 and MONOCHROME1 files, windowing (LINEAR and
SIGMOID, several centre/width pairs), other view codes, several images of a view, a
breast without an MLO image, an unreadable file. Raw images follow the usual display:
left breasts face right, right breasts face left.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd

SHAPE = (96, 80)  # raw image (H, W): about 1/35 of a real mammogram


def breast_image(seed: int, laterality: str, shape: tuple[int, int] = SHAPE,
                 mirrored: bool = False) -> np.ndarray:
    """A float32 image in [0, 1], background 0: tissue against the left edge for a left
    breast (the right edge for a right one; the other edge when `mirrored`)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, ry, rx = h * rng.uniform(0.45, 0.55), h * rng.uniform(0.3, 0.4), w * rng.uniform(0.55, 0.7)
    inside = ((yy - cy) / ry) ** 2 + (xx / rx) ** 2 <= 1
    coarse = rng.random((h // 8 + 2, w // 8 + 2)).astype(np.float32)
    texture = np.kron(coarse, np.ones((8, 8), np.float32))[:h, :w]
    image = np.where(inside, 0.35 + 0.45 * texture, 0.0).astype(np.float32)
    image[3:7, w - 10:w - 4] = 0.9  # burned-in label, far from the breast
    if (laterality == "R") != mirrored:
        image = image[:, ::-1]
    return np.ascontiguousarray(image)


def write_png(path: Path, image: np.ndarray) -> None:
    """16-bit grey PNG of 12-bit data scaled to 0..65535, as NYU's images."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    data = (np.round(image * 4095).astype(np.uint16) * 16).astype(np.uint16)
    Image.fromarray(data).save(path)


def write_heatmap(path: Path, heatmap: np.ndarray) -> None:
    """NYU heatmap: HDF5 dataset `image`, stored transposed."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("image", data=np.asarray(heatmap, np.float32).T)


def write_dicom(path: Path, image: np.ndarray, laterality: str = "L", view: str = "CC",
                monochrome1: bool = False, jpeg2000: bool = False,
                window: tuple[list[float], list[float]] | None = ([2047.5], [4096.0]),
                voi_function: str | None = None, padding_value: int | None = None) -> None:
    """A 12-bit digital mammogram DICOM of `image` (in [0, 1]), optionally MONOCHROME1
    (inverted), JPEG 2000 lossless, windowed, with a pixel padding value for background."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, generate_uid

    stored = np.round(image * 4095).astype(np.uint16)
    if monochrome1:
        stored = (4095 - stored).astype(np.uint16)
    if padding_value is not None:
        stored[image == 0] = padding_value
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography X-Ray, presentation
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[str(path)])
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality, ds.ImageLaterality, ds.ViewPosition = "MG", laterality, view
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 16, 12, 11
    ds.PixelRepresentation = 0
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if voi_function:
        ds.VOILUTFunction = voi_function
    if padding_value is not None:
        ds.PixelPaddingValue = padding_value
    ds.PixelData = stored.tobytes()
    if jpeg2000:
        ds.compress(JPEG2000Lossless)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def _label(p: int, side: str) -> tuple[int, int]:
    """(malignant, benign) of patient p's breast: about a third of the breasts biopsied."""
    return int(p % 3 == 0 and side == "L"), int(p % 3 == 1 and side == "R")


def _dicom_variant(k: int) -> dict:
    """Cycle through the encodings real downloads mix."""
    return [{}, {"jpeg2000": True}, {"monochrome1": True},
            {"voi_function": "SIGMOID", "window": ([2047.5, 1800.0], [4096.0, 3000.0])},
            {"padding_value": 0}][k % 5]


def write_nyu(root: Path, exams: int = 10, heatmaps: bool = True) -> Path:
    """exam_list_before_cropping.pkl, images/*.png, heatmaps/, labels.csv. Exam 1 has
    horizontal_flip 'YES' (its images are stored mirrored), exam 2 two L-CC images, exam 3
    no R-MLO image; exams from the seventh on come two by two from one patient."""
    root = Path(root)
    exam_list, labels = [], []
    for i in range(exams):
        flip = "YES" if i == 1 else "NO"
        exam = {"horizontal_flip": flip}
        for side in ("L", "R"):
            for view in ("CC", "MLO"):
                stems = [f"{i}_{side}_{view}"]
                if i == 2 and side == "L" and view == "CC":
                    stems.append(f"{i}_{side}_{view}_b")
                if i == 3 and side == "R" and view == "MLO":
                    stems = []
                for j, stem in enumerate(stems):
                    img = breast_image(1000 * i + 10 * j + (side == "R") * 2 + (view == "MLO"),
                                       side, mirrored=flip == "YES")
                    write_png(root / "images" / f"{stem}.png", img)
                    if heatmaps:
                        for k, kind in enumerate(("benign", "malignant")):
                            hm = np.clip(img * (0.3 + 0.4 * k), 0, 1)
                            write_heatmap(root / "heatmaps" / f"heatmap_{kind}" / f"{stem}.hdf5",
                                          hm)
                exam[f"{side}-{view}"] = stems
        exam_list.append(exam)
        (lm, lb), (rm, rb) = _label(i, "L"), _label(i, "R")
        labels.append({"exam_index": i, "patient_id": f"p{i if i < 6 else 6 + (i - 6) // 2}",
                       "left_benign": lb, "left_malignant": lm,
                       "right_benign": rb, "right_malignant": rm})
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "exam_list_before_cropping.pkl", "wb") as f:
        pickle.dump(exam_list, f)
    pd.DataFrame(labels).to_csv(root / "labels.csv", index=False)
    return root


def write_rsna(root: Path, patients: int = 10) -> Path:
    """train.csv + train_images/. Patient 0 has an extra ML image and two CC images of its
    left breast, patient 1 no MLO image of its right breast, patient 2's R-CC file is
    corrupt."""
    root = Path(root)
    rows, image_id = [], 1000
    for p in range(patients):
        pid = 10000 + p
        for side in ("L", "R"):
            views = ["CC", "MLO"]
            if p == 0 and side == "L":
                views += ["ML", "CC"]
            if p == 1 and side == "R":
                views = ["CC"]
            for view in views:
                image_id += 1
                path = root / "train_images" / str(pid) / f"{image_id}.dcm"
                if p == 2 and side == "R" and view == "CC":
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(b"DICM" + bytes(200))  # corrupt
                else:
                    write_dicom(path, breast_image(image_id, side), side, view,
                                **_dicom_variant(image_id))
                cancer, benign = _label(p, side)
                rows.append({"site_id": 1 + p % 2, "patient_id": pid, "image_id": image_id,
                             "laterality": side, "view": view, "age": 50 + p,
                             "cancer": cancer, "biopsy": int(cancer or benign),
                             "invasive": cancer, "BIRADS": "", "implant": 0,
                             "density": "B", "machine_id": 49,
                             "difficult_negative_case": False})
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    return root


def write_vindr(root: Path, studies: int = 10, shape: tuple[int, int] = SHAPE) -> Path:
    """breast-level_annotations.csv, finding_annotations.csv, images/<study>/<image>.dicom
    of `shape`; the last three studies are the official test split; study 0 also has an
    XCCL image."""
    root = Path(root)
    rows, findings = [], []
    for s in range(studies):
        study = f"{s:04x}a1b2c3d4e5f6"
        split = "test" if s >= studies - 3 else "training"
        for side in ("L", "R"):
            malignant, benign = _label(s, side)
            birads = 5 if malignant else 4 if benign else 1 + (s % 2)
            views = ["CC", "MLO"] + (["XCCL"] if s == 0 and side == "L" else [])
            for view in views:
                image = f"{s:02d}{side}{view}f00d"
                k = 7 * s + 3 * (side == "R") + len(view)
                write_dicom(root / "images" / study / f"{image}.dicom",
                            breast_image(5000 + k, side, shape), side, view,
                            **_dicom_variant(k))
                common = {"study_id": study, "series_id": f"se{s}", "image_id": image,
                          "laterality": side, "view_position": view, "height": shape[0],
                          "width": shape[1], "breast_birads": f"BI-RADS {birads}",
                          "breast_density": "DENSITY C", "split": split}
                rows.append(common)
                findings.append({**common, "finding_categories":
                                 "['Mass']" if birads >= 4 else "['No Finding']",
                                 "finding_birads": f"BI-RADS {birads}" if birads >= 4 else "",
                                 "xmin": 10 if birads >= 4 else "", "ymin": 10 if birads >= 4
                                 else "", "xmax": 20 if birads >= 4 else "",
                                 "ymax": 20 if birads >= 4 else ""})
    pd.DataFrame(rows).to_csv(root / "breast-level_annotations.csv", index=False)
    pd.DataFrame(findings).to_csv(root / "finding_annotations.csv", index=False)
    return root


def write_cbis_ddsm(root: Path, patients: int = 10) -> Path:
    """The four case-description CSVs (their column names and trailing whitespace) and the
    NBIA folders CBIS-DDSM/<Mass-Training_P_00001_LEFT_CC>/<date-DDSM-n>/<1.000000-full
    mammogram images-n>/1-1.dcm, with ROI-mask folders beside them. The last three
    patients are in the test files; patient 0's left breast and the last patient's right
    breast also have a calcification row (so two images of each view); patient 1's right
    MLO image is missing from the download."""
    root = Path(root)
    tables: dict[str, list] = {name: [] for name in ("mass_train", "calc_train", "mass_test",
                                                     "calc_test")}
    n = 0
    for p in range(patients):
        pid = f"P_{p + 1:05d}"
        test = p >= patients - 3
        for side, side_name in (("L", "LEFT"), ("R", "RIGHT")):
            malignant, benign = _label(p, side)
            pathology = ("MALIGNANT" if malignant else "BENIGN" if benign
                         else "BENIGN_WITHOUT_CALLBACK")
            two = (p, side) in ((0, "L"), (patients - 1, "R"))
            kinds = ["mass", "calc"] if two else ["mass"]
            for kind in kinds:
                for view in ("CC", "MLO"):
                    n += 1
                    prefix = ("Mass" if kind == "mass" else "Calc") + \
                        ("-Test" if test else "-Training")
                    folder = f"{prefix}_{pid}_{side_name}_{view}"
                    uid = f"1.3.6.1.4.1.9590.100.1.2.{n}"
                    if not (p == 1 and side == "R" and view == "MLO"):
                        series = (root / "CBIS-DDSM" / folder / f"07-20-2016-DDSM-{n}"
                                  / f"1.000000-full mammogram images-{n}")
                        write_dicom(series / "1-1.dcm", breast_image(9000 + n, side), side,
                                    view, **_dicom_variant(n))
                        roi = (root / "CBIS-DDSM" / f"{folder}_1" / f"07-21-2016-DDSM-{n}"
                               / f"1.000000-ROI mask images-{n}" / "1-1.dcm")
                        write_dicom(roi, (breast_image(n, side) > 0.7).astype(np.float32),
                                    side, view)
                    row = {"patient_id": pid, "breast_density": 2,
                           "left or right breast": side_name, "image view": view,
                           "abnormality id": 1, "abnormality type": kind,
                           "pathology": pathology, "assessment": 4, "subtlety": 3,
                           "image file path": f"{folder}/{uid}.1/{uid}.2/000000.dcm\n",
                           "cropped image file path": f"{folder}_1/{uid}.3/{uid}.4/000000.dcm",
                           "ROI mask file path": f"{folder}_1/{uid}.3/{uid}.5/000001.dcm "}
                    if kind == "calc":  # calc files: "breast density", other columns
                        row["breast density"] = row.pop("breast_density")
                        row["calc type"], row["calc distribution"] = "PLEOMORPHIC", "CLUSTERED"
                    else:
                        row["mass shape"], row["mass margins"] = "OVAL", "CIRCUMSCRIBED"
                    tables[f"{kind}_{'test' if test else 'train'}"].append(row)
    for name, rows in tables.items():
        kind, split = name.split("_")
        columns = list(rows[0]) if rows else ["patient_id"]
        pd.DataFrame(rows, columns=columns).to_csv(
            root / f"{kind}_case_description_{split}_set.csv", index=False)
    return root


WRITERS = {"nyu": write_nyu, "rsna": write_rsna, "vindr": write_vindr,
           "cbis-ddsm": write_cbis_ddsm}
