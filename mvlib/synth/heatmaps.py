"""Simulated patch-classifier heatmaps: benign and malignant probability maps in [0, 1].

A patch classifier (256x256 patches at full resolution, as in Wu et al. 2019a) sees a finding
as a smooth blob about one patch wide. Each visible finding is detected with the view's
sensitivity; a detected finding lights its own map and, by cross-talk, the other one.
False-positive blobs and smooth noise make the maps imperfect. Blobs combine by
noisy-OR, 1 - prod(1 - p), so the maps stay probabilities.
"""

from __future__ import annotations

import numpy as np

from mvlib.synth.anatomy import power_law_noise, upsample
from mvlib.synth.findings import local_grid


def _blob(size, row, col, sigma):
    sl, rr, cc = local_grid(size, row, col, 3 * sigma)
    return sl, np.exp(-(rr**2 + cc**2) / (2 * sigma**2))


def render_heatmaps(rng: np.random.Generator, size: tuple[int, int], mask: np.ndarray,
                    detections: list[tuple[int, float, float, float, bool, float]],
                    crosstalk: float, false_positives: float,
                    false_positive_amplitude: tuple[float, float], noise: float,
                    out: np.ndarray | None = None) -> np.ndarray:
    """Return (n, 2, H, W) float32 maps [benign, malignant] (written into `out` if given).

    `detections`: (breast, row, col, radius_px, malignant, amplitude) of detected findings.
    """
    n, (h, w) = mask.shape[0], size
    patch_sigma = 0.05 * min(h, w)  # one simulated patch, in pixels
    miss = np.empty((n, 2, h, w), np.float32) if out is None else out
    miss.fill(1.0)  # prod(1 - p) per map
    for b, row, col, radius, malignant, amp in detections:
        sl, g = _blob(size, row, col, max(0.8 * radius, patch_sigma))
        own, other = (1, 0) if malignant else (0, 1)
        miss[b, own][sl] *= 1 - amp * g
        miss[b, other][sl] *= 1 - crosstalk * rng.uniform(0, 1) * amp * g
    # False positives: blobs at random tissue positions (rejection-sampled in the mask).
    counts = rng.poisson(false_positives, size=(n, 2))
    for b, m in zip(*np.nonzero(counts), strict=True):
        placed = 0
        for _ in range(50 * counts[b, m]):
            row, col = rng.integers(h), rng.integers(w)
            if not mask[b, row, col]:
                continue
            sl, g = _blob(size, row, col, patch_sigma * rng.uniform(0.6, 1.4))
            miss[b, m][sl] *= 1 - rng.uniform(*false_positive_amplitude) * g
            placed += 1
            if placed == counts[b, m]:
                break
    maps = np.subtract(1.0, miss, out=miss)
    # Smooth background noise, independent per map, drawn on a coarse grid (cheap).
    coarse = power_law_noise(rng, 2 * n, (max(h // 8, 4), max(w // 8, 4)), 3.0)
    maps += noise * np.abs(upsample(coarse, size)).reshape(n, 2, h, w)
    np.clip(maps, 0.0, 1.0, out=maps)
    maps *= mask[:, None]
    return maps
