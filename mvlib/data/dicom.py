"""Read one mammogram file (DICOM, PNG) or NYU heatmap (HDF5) as float32 in [0, 1].

DICOM goes through pydicom's own transforms: pixel padding is masked on the stored values,
then the modality LUT (rescale), then the VOI LUT or windowing (LINEAR, LINEAR_EXACT,
SIGMOID; the first of several centre/width pairs), then a min-max scaling to [0, 1] and,
for MONOCHROME1, inversion, so that dense tissue is bright and the background 0 everywhere.
Compressed transfer syntaxes decode through the pylibjpeg plugins (JPEG 2000 with
pylibjpeg-openjpeg, JPEG lossless and baseline with pylibjpeg-libjpeg) or gdcm if installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mvlib.data.store import DatasetError

if TYPE_CHECKING:  # imported where used, so the synthetic path never loads pydicom
    import pydicom

DICOM_SUFFIXES = (".dcm", ".dicom", "")
PNG_SUFFIXES = (".png",)


class ImageError(DatasetError):
    """A source image (or heatmap) cannot be read or used; names the file and the problem."""

    def __init__(self, path: str | Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = str(path), problem


def read_image(path: str | Path) -> np.ndarray:
    """The (H, W) float32 image of a DICOM or PNG file, in [0, 1], background dark."""
    path = Path(path)
    if path.suffix.lower() in PNG_SUFFIXES:
        return read_png(path)
    return read_dicom(path)


def read_png(path: str | Path) -> np.ndarray:
    """An 8- or 16-bit grey-level PNG (NYU's format), scaled by its integer type's maximum."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im)
    except FileNotFoundError as e:
        raise ImageError(path, "file not found") from e
    except Exception as e:  # PIL raises many types for bad files
        raise ImageError(path, f"cannot read PNG ({type(e).__name__}: {e})") from e
    if arr.ndim != 2 or arr.dtype.kind != "u":
        raise ImageError(path, f"expected a grey-level 8- or 16-bit PNG, got {arr.dtype} "
                               f"{arr.shape}")
    return arr.astype(np.float32) / np.iinfo(arr.dtype).max


def padding_mask(stored: np.ndarray, ds: pydicom.Dataset) -> np.ndarray:
    """Pixels equal to Pixel Padding Value (or within it and Pixel Padding Range Limit)."""
    value = ds.get("PixelPaddingValue")
    if value is None:
        return np.zeros(stored.shape, bool)
    limit = ds.get("PixelPaddingRangeLimit")
    if limit is None:
        return stored == value
    lo, hi = sorted((value, limit))
    return (stored >= lo) & (stored <= hi)


def _has_voi(ds) -> bool:
    return ("WindowCenter" in ds and "WindowWidth" in ds) or "VOILUTSequence" in ds


def read_dicom(path: str | Path) -> np.ndarray:
    """Decode a single-frame grey-level DICOM and map it to [0, 1] (see the module doc)."""
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(path)
        stored = ds.pixel_array
    except FileNotFoundError as e:
        raise ImageError(path, "file not found") from e
    except Exception as e:  # pydicom, the decoders and the OS raise many types
        raise ImageError(path, f"cannot decode DICOM ({type(e).__name__}: {e})") from e
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    if stored.ndim != 2 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ImageError(path, f"expected one grey-level frame (MONOCHROME1/2), got "
                               f"{photometric or 'no PhotometricInterpretation'} {stored.shape}")
    pad = padding_mask(stored, ds)
    try:
        values = apply_modality_lut(stored, ds)
        if _has_voi(ds):
            values = apply_voi_lut(values, ds, index=0)
    except Exception as e:
        raise ImageError(path, f"bad modality/VOI LUT ({type(e).__name__}: {e})") from e
    values = np.asarray(values, dtype=np.float64)
    keep = values[~pad]
    if keep.size == 0 or keep.max() <= keep.min():
        raise ImageError(path, "image is constant (or all padding) after windowing")
    lo, hi = keep.min(), keep.max()
    image = ((values - lo) / (hi - lo)).astype(np.float32)
    if photometric == "MONOCHROME1":
        image = 1.0 - image
    image[pad] = 0.0
    return image


def read_heatmap(path: str | Path) -> np.ndarray:
    """An NYU heatmap: HDF5 dataset `image`, stored transposed; returned as (H, W) float32."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            arr = np.asarray(f["image"][()], dtype=np.float32).T
    except FileNotFoundError as e:
        raise ImageError(path, "file not found") from e
    except Exception as e:  # h5py raises OSError, KeyError, ...
        raise ImageError(path, f"cannot read HDF5 heatmap ({type(e).__name__}: {e})") from e
    if arr.ndim != 2:
        raise ImageError(path, f"expected a 2-D heatmap, got shape {arr.shape}")
    return arr
