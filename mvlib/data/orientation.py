"""Every breast faces right: chest wall at x = 0, nipple towards larger x (REFERENCE section 2)."""

from __future__ import annotations

import numpy as np


def needs_flip(laterality: str, horizontal_flip: str = "NO") -> bool:
    """NYU rule: with horizontal_flip 'NO' right-side views are mirrored, with 'YES' left ones."""
    laterality, horizontal_flip = laterality.upper()[:1], horizontal_flip.upper()
    if laterality not in ("L", "R") or horizontal_flip not in ("NO", "YES"):
        raise ValueError(f"bad laterality {laterality!r} or horizontal_flip {horizontal_flip!r}")
    return (laterality == "R") == (horizontal_flip == "NO")


def faces_right(image: np.ndarray) -> bool:
    """True when the breast tissue sits against the left edge (x = 0), by foreground mass."""
    img = np.asarray(image, dtype=np.float64)
    fg = img > np.percentile(img, 5) + 0.05 * (img.max() - np.percentile(img, 5))
    w = fg.shape[-1]
    return bool(fg[..., : w // 2].sum() > fg[..., w - w // 2:].sum())


def face_right(image: np.ndarray, laterality: str, horizontal_flip: str = "NO") -> np.ndarray:
    """Mirror the image (last axis) when the NYU rule says so."""
    return image[..., ::-1] if needs_flip(laterality, horizontal_flip) else image
