"""Every breast faces right: chest wall at x = 0, nipple towards larger x (the convention of
nyukat/breast_cancer_classifier)."""

from __future__ import annotations

import numpy as np


def needs_flip(laterality: str, horizontal_flip: str = "NO") -> bool:
    """NYU rule: with horizontal_flip 'NO' right-side views are mirrored, with 'YES' left ones."""
    laterality, horizontal_flip = laterality.upper()[:1], horizontal_flip.upper()
    if laterality not in ("L", "R") or horizontal_flip not in ("NO", "YES"):
        raise ValueError(f"bad laterality {laterality!r} or horizontal_flip {horizontal_flip!r}")
    return (laterality == "R") == (horizontal_flip == "NO")


def half_masses(fg: np.ndarray) -> tuple[int, int]:
    """Foreground pixels in the left and right halves (last axis) of a boolean mask; with an
    odd width the middle column counts in neither. The one half-mass rule shared by
    `faces_right` and crop.chest_wall_on_left (which differ in foreground and tie-break)."""
    w = fg.shape[-1]
    return int(fg[..., : w // 2].sum()), int(fg[..., w - w // 2:].sum())


def faces_right(image: np.ndarray) -> bool:
    """True when the breast tissue sits against the left edge (x = 0), by foreground mass.

    Foreground: above the 5th percentile plus 5% of the range to the maximum, so it works on
    any intensity scale; a tie is not facing right (a check that must be passed clearly)."""
    img = np.asarray(image, dtype=np.float64)
    fg = img > np.percentile(img, 5) + 0.05 * (img.max() - np.percentile(img, 5))
    left, right = half_masses(fg)
    return left > right


def face_right(image: np.ndarray, laterality: str, horizontal_flip: str = "NO") -> np.ndarray:
    """Mirror the image (last axis) when the NYU rule says so."""
    return image[..., ::-1] if needs_flip(laterality, horizontal_flip) else image
