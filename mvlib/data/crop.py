"""Breast-region crop, orientation and resizing of one view (as in nyukat/breast_cancer_classifier).

The crop follows breast_cancer_classifier: foreground = pixels > threshold; erode 100
times; keep the largest connected component; dilate 100 times; its bounding box plus up
to 50 px of margin above, below and on the nipple side. The pixel counts are those of
NYU's 3328-pixel-high images and scale with the image height, so a small or downsampled
image gets the same crop. The crop is then turned to face right (chest wall at x = 0),
padded with background on the nipple side or evenly above and below to the target aspect
ratio (no distortion), and resized to the profile's size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from mvlib.data.orientation import half_masses


@dataclass(frozen=True)
class CropRule:
    """Parameters of the crop, in pixels of a `reference_height`-pixel-high image."""

    threshold: float = 0.0
    erosions: int = 100
    margin: int = 50
    reference_height: int = 3328

    def scaled(self, height: int) -> tuple[int, int]:
        """(erosions, margin) for an image of this height."""
        f = height / self.reference_height
        return max(1, round(self.erosions * f)), round(self.margin * f)


DEFAULT_RULE = CropRule()


def breast_mask(image: np.ndarray, rule: CropRule = DEFAULT_RULE) -> np.ndarray:
    """The breast as a boolean mask: the largest foreground component, with thin structures
    (burned-in labels, noise) removed by the erosion. Raises ValueError with no foreground."""
    fg = np.asarray(image) > rule.threshold
    if not fg.any():
        raise ValueError("no foreground pixels (image is empty)")
    erosions, _ = rule.scaled(image.shape[0])
    core = ndimage.binary_erosion(fg, iterations=erosions)
    if not core.any():  # breast thinner than the erosion: use the foreground as it is
        core = fg
    labels, n = ndimage.label(core)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    largest = labels == sizes.argmax()
    return ndimage.binary_dilation(largest, iterations=erosions) if core is not fg else largest


def chest_wall_on_left(mask: np.ndarray) -> bool:
    """True when the breast mask has at least as many pixels in the left half (the breast
    faces right). Same halves as orientation.faces_right, but not faces_right(mask): its
    percentile foreground is empty for a mask covering over 95% of the frame (a tight crop)
    and it counts a tie as not facing right; here a tie leaves the image unflipped."""
    left, right = half_masses(np.asarray(mask, dtype=bool))
    return left >= right


def crop_box(mask: np.ndarray, faces_right: bool, margin: int) -> tuple[slice, slice]:
    """Bounding box of the mask plus `margin` above, below and on the nipple side."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    top, bottom = max(rows[0] - margin, 0), min(rows[-1] + 1 + margin, h)
    left, right = cols[0], cols[-1] + 1
    if faces_right:
        right = min(right + margin, w)
    else:
        left = max(left - margin, 0)
    return slice(top, bottom), slice(left, right)


def pad_to_aspect(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pad a right-facing (C, h, w) crop with zeros to the aspect ratio of `size` (H, W):
    on the right (nipple side) when too narrow, evenly above and below when too wide."""
    _, h, w = arr.shape
    H, W = size
    if w * H < h * W:
        width = round(h * W / H)
        return np.pad(arr, ((0, 0), (0, 0), (0, width - w)))
    height = round(w * H / W)
    extra = height - h
    return np.pad(arr, ((0, 0), (extra // 2, extra - extra // 2), (0, 0)))


def resize(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize each channel of (C, h, w) to (C, H, W): PIL's bilinear filter, which widens
    its support when shrinking (anti-aliased), in float32."""
    H, W = size
    out = np.empty((arr.shape[0], H, W), np.float32)
    for c, channel in enumerate(arr):
        im = Image.fromarray(np.ascontiguousarray(channel, dtype=np.float32), mode="F")
        out[c] = np.asarray(im.resize((W, H), Image.Resampling.BILINEAR))
    return out


def crop_view(image: np.ndarray, flip: bool | None = None,
              heatmaps: list[np.ndarray] | None = None, rule: CropRule = DEFAULT_RULE
              ) -> np.ndarray:
    """The breast's box of the image (and of its heatmaps), turned to face right: (C, h, w)
    at the image's resolution. `flip`: mirror the image (the NYU rule, see
    orientation.needs_flip); None decides by where the breast mask lies."""
    heatmaps = heatmaps or []
    for hm in heatmaps:
        if hm.shape != image.shape:
            raise ValueError(f"heatmap shape {hm.shape} differs from image shape {image.shape}")
    mask = breast_mask(image, rule)
    if flip is None:
        flip = not chest_wall_on_left(mask)
    _, margin = rule.scaled(image.shape[0])
    rows, cols = crop_box(mask, faces_right=not flip, margin=margin)
    stack = np.stack([image[rows, cols], *[hm[rows, cols] for hm in heatmaps]])
    return stack[..., ::-1] if flip else stack


def prepare_view(image: np.ndarray, size: tuple[int, int], flip: bool | None = None,
                 heatmaps: list[np.ndarray] | None = None, rule: CropRule = DEFAULT_RULE,
                 produce: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Crop, orient (`crop_view`), pad and resize one view: (C, H, W) float32, channel 0 the
    image in [0, 1], then the heatmaps. `produce` makes the heatmaps instead, from the
    cropped right-facing image at full resolution (as the patch classifier of Wu et al.
    2019a sees it: mvlib.data.heatmaps)."""
    stack = crop_view(image, flip, heatmaps, rule)
    if produce is not None:
        crop = np.ascontiguousarray(stack[0])
        stack = np.concatenate([crop[None], produce(crop)])
    out = resize(pad_to_aspect(stack, size), size)
    return np.clip(out, 0.0, 1.0, out=out)
