"""The paper's random cropping windows, for training augmentation and the 10-window
test-time augmentation (Wu et al. 2019a, nyukat/breast_cancer_classifier), batched on
whatever device holds the images.

A window is the whole stored crop with its position shifted and each border moved
independently, then resized back to the input size (bicubic). The image channel of each
window is standardised on its own; heatmap channels stay probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mvlib.core.paper import CC_SIZE as PAPER_CC_SIZE
from mvlib.core.paper import MLO_SIZE as PAPER_MLO_SIZE

PAPER_NOISE_PX = 100  # position and border noise at full resolution


@dataclass(frozen=True)
class WindowNoise:
    """Maximum shift and border move, as fractions of the image height and width."""

    shift: tuple[float, float]
    border: tuple[float, float]

    @classmethod
    def paper(cls, view: str) -> WindowNoise:
        """100 px at the paper's resolution, whatever size the images are stored at."""
        h, w = PAPER_CC_SIZE if view == "cc" else PAPER_MLO_SIZE
        frac = (PAPER_NOISE_PX / h, PAPER_NOISE_PX / w)
        return cls(shift=frac, border=frac)


def sample_boxes(n: int, noise: WindowNoise, generator: torch.Generator) -> torch.Tensor:
    """(n, 4) windows [top, left, bottom, right] in units of the image size ([0,0,1,1] = all)."""
    u = torch.rand(n, 6, generator=generator) * 2 - 1
    sy, sx = noise.shift
    by, bx = noise.border
    dy, dx = u[:, 0] * sy, u[:, 1] * sx
    return torch.stack([dy + u[:, 2] * by, dx + u[:, 3] * bx,
                        1 + dy + u[:, 4] * by, 1 + dx + u[:, 5] * bx], dim=1)


def crop_resize(x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Crop each (C, H, W) image to its box and resize back to (H, W), bicubic; zeros outside."""
    boxes = boxes.to(device=x.device, dtype=x.dtype)
    top, left, bottom, right = boxes.unbind(1)
    theta = torch.zeros(len(x), 2, 3, device=x.device, dtype=x.dtype)
    # affine_grid maps output coords in [-1, 1] to input coords: x_in = a * x_out + b.
    theta[:, 0, 0] = right - left
    theta[:, 0, 2] = right + left - 1
    theta[:, 1, 1] = bottom - top
    theta[:, 1, 2] = bottom + top - 1
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bicubic", padding_mode="zeros", align_corners=False)


def standardise(x: torch.Tensor) -> torch.Tensor:
    """Image channel: subtract its mean, divide by its std (floor 1e-5), per example.
    Heatmap channels are clamped to [0, 1] (bicubic resampling can overshoot)."""
    image = x[:, :1]
    mean = image.mean(dim=(1, 2, 3), keepdim=True)
    std = image.std(dim=(1, 2, 3), keepdim=True, unbiased=False).clamp_min(1e-5)
    return torch.cat([(image - mean) / std, x[:, 1:].clamp(0, 1)], dim=1)


def train_windows(x: torch.Tensor, noise: WindowNoise, generator: torch.Generator
                  ) -> torch.Tensor:
    """One random window per example (training augmentation)."""
    return standardise(crop_resize(x, sample_boxes(len(x), noise, generator)))


def tta_windows(x: torch.Tensor, noise: WindowNoise, generator: torch.Generator,
                 n_windows: int = 10) -> torch.Tensor:
    """(n_windows, B, C, H, W) random windows per example; predictions average over dim 0."""
    boxes = sample_boxes(n_windows * len(x), noise, generator)
    tiled = x.repeat(n_windows, 1, 1, 1)
    return standardise(crop_resize(tiled, boxes)).view(n_windows, *x.shape)


def full_window(x: torch.Tensor) -> torch.Tensor:
    """The stored crop itself, standardised (validation)."""
    return standardise(x)
