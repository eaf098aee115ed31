"""Benign and malignant heatmaps of a cropped mammogram from the patch classifier of Wu et al.
2019a, computed as the producer of nyukat/breast_cancer_classifier
(`src/heatmaps/run_producer.py`, read at commit 6176ebe, not copied: AGPL) computes them:

- the cropped image, facing right, is standardised over the whole image in float64
  (population std, floored at 1e-5);
- 256x256 patches are taken on a grid with a fixed stride of 70 whose first patch starts at
  0 and last ends at the border; the leftover is spread as steps one pixel shorter, at
  positions drawn by Python's `random.sample` (rows' steps, then columns');
- each patch (repeated over three channels) goes through the classifier, columns outside and
  rows inside, 100 patches a batch, fp32 (no TF32 on GPUs); the softmax of class 1 is the
  benign heatmap, of class 0 the malignant one;
- each pixel's value is the mean of the probabilities of the patches that cover it.

One difference, on purpose: the reference seeds `random` once per run, so an image's steps
depend on the images before it; here every image draws from its own Random(seed), so a
heatmap depends only on its image (the first image of a reference run gets the same draws).
The classifier's outputs per image are cached by content (`HeatmapCache`): a second data set
at another size, or a re-run after a kill, reuses them.
"""

from __future__ import annotations

import hashlib
import random
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from mvlib.core.atomic import write_atomic
from mvlib.core.device import pick_device
from mvlib.models.patch_densenet import BENIGN, CLASSES, MALIGNANT, file_digest, load_weights

PATCH = 256
STRIDE = 70
BATCH = 100
SEED = 0
PRODUCER_VERSION = 1  # bump when a change alters the cached outputs


def stride_list(length: int, rng: random.Random, patch: int = PATCH,
                stride: int = STRIDE) -> list[int]:
    """The steps between patch origins along an axis of `length` pixels: `stride` each when
    the patches tile it exactly; otherwise one more patch, so the last ends at the border, and
    the overlap this adds spread as steps one pixel shorter at positions `rng` samples."""
    if length < patch:
        raise ValueError(f"{length} px is shorter than the patch classifier's {patch}-px "
                         "patch: heatmaps need full-resolution images")
    steps, left = divmod(length - patch, stride)
    if left == 0:
        return [stride] * steps
    steps += 1
    overlap = stride - left
    strides = [stride - overlap // steps] * steps
    for i in rng.sample(range(steps), overlap % steps):
        strides[i] -= 1
    return strides


def origins(strides: list[int]) -> np.ndarray:
    """Patch origins along an axis: 0, then the running sum of the steps."""
    return np.concatenate([[0], np.cumsum(strides, dtype=np.int64)])


def standardise(image: np.ndarray) -> np.ndarray:
    """(image - mean) / max(std, 1e-5) over the whole image, in float64."""
    x = np.asarray(image, dtype=np.float64)
    x = x - x.mean()
    return x / max(x.std(), 1e-5)


def overlap_average(probs: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                    shape: tuple[int, int], patch: int = PATCH) -> np.ndarray:
    """The (H, W) map whose pixels are the mean of `probs[i, j]` over the patches (origins
    rows[i], cols[j]) covering them: R^T P C over count, with R and C the patches' row and
    column indicators (exact sums in float64; the reference adds in float32)."""
    H, W = shape
    R = np.zeros((len(rows), H))
    C = np.zeros((len(cols), W))
    for i, r in enumerate(rows):
        R[i, r:r + patch] = 1
    for j, c in enumerate(cols):
        C[j, c:c + patch] = 1
    total = R.T @ probs.astype(np.float64) @ C
    count = np.outer(R.sum(0), C.sum(0))
    return (total / count).astype(np.float32)


@torch.inference_mode()
def patch_probabilities(image: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                        model: torch.nn.Module, batch: int = BATCH) -> np.ndarray:
    """The classifier's softmax of every patch of the standardised `image`: (len(rows),
    len(cols), 4) float32, patches fed column by column as the reference feeds them."""
    device = next(model.parameters()).device
    x = torch.from_numpy(standardise(image).astype(np.float32))
    grid = [(i, j) for j in range(len(cols)) for i in range(len(rows))]
    out = np.zeros((len(rows), len(cols), CLASSES), np.float32)
    with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True,
                                    allow_tf32=False):
        for lo in range(0, len(grid), batch):
            part = grid[lo:lo + batch]
            patches = torch.stack([x[rows[i]:rows[i] + PATCH, cols[j]:cols[j] + PATCH]
                                   for i, j in part])[:, None].to(device)
            p = torch.softmax(model(patches.expand(-1, 3, -1, -1)), dim=1).float().cpu()
            for (i, j), row in zip(part, p.numpy(), strict=True):
                out[i, j] = row
    return out


def grid_of(shape: tuple[int, int], seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Patch origins (rows, cols) of an image of `shape`, rows' steps drawn first."""
    rng = random.Random(seed)
    rows = origins(stride_list(shape[0], rng))
    return rows, origins(stride_list(shape[1], rng))


def heatmaps(image: np.ndarray, model: torch.nn.Module, seed: int = SEED,
             batch: int = BATCH) -> np.ndarray:
    """(2, H, W) float32: the benign then the malignant heatmap of a cropped image that faces
    right (the order of mvlib.data.store.CHANNELS after the image)."""
    rows, cols = grid_of(image.shape, seed)
    probs = patch_probabilities(image, rows, cols, model, batch)
    return maps_of(probs, rows, cols, image.shape)


def maps_of(probs: np.ndarray, rows: np.ndarray, cols: np.ndarray,
            shape: tuple[int, int]) -> np.ndarray:
    """(2, H, W): the benign and malignant heatmaps from the patches' probabilities."""
    return np.stack([overlap_average(probs[..., k], rows, cols, shape)
                     for k in (BENIGN, MALIGNANT)])


def _save(path: Path, **arrays: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: savez would append ".npz" to a name
        np.savez(f, **arrays)


class HeatmapCache:
    """Heatmaps of cropped images, made by the classifier of one weights file and cached by
    content under `root/<weights sha256[:16]>/`: per image the patches' probabilities and
    origins (a few kB; the maps are recomputed from them in well under a second)."""

    def __init__(self, weights: str | Path, root: str | Path, seed: int = SEED,
                 batch: int = BATCH, device: torch.device | str | None = None):
        self.weights, self.seed, self.batch = Path(weights), seed, batch
        self._model = load_weights(self.weights)  # a bad file fails here, naming it
        self.digest = file_digest(self.weights)
        self.root = Path(root) / self.digest[:16]
        self.device = device
        self._placed = False
        self.made = self.reused = 0

    def identity(self) -> dict:
        """What the heatmaps depend on besides the images (part of a data set's name)."""
        return {"weights_sha256": self.digest, "producer": PRODUCER_VERSION, "seed": self.seed,
                "patch": PATCH, "stride": STRIDE}

    def key(self, image: np.ndarray) -> str:
        """Names an image's entry: its pixels and shape, the weights, seed and producer."""
        h = hashlib.sha256(f"{PRODUCER_VERSION}/{self.seed}/{self.digest}/{image.shape}/"
                           f"{image.dtype}".encode())
        h.update(np.ascontiguousarray(image).data)
        return h.hexdigest()

    def model(self) -> torch.nn.Module:
        """The classifier, moved to its device on first use (CUDA when present)."""
        if not self._placed:
            self._model.to(self.device or pick_device())
            self._placed = True
        return self._model

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """(2, H, W) benign and malignant heatmaps of a cropped, right-facing image."""
        path = self.root / (k := self.key(image))[:2] / f"{k}.npz"
        rows, cols = grid_of(image.shape, self.seed)
        probs = self._read(path, rows, cols)
        if probs is None:
            probs = patch_probabilities(image, rows, cols, self.model(), self.batch)
            write_atomic(path, lambda p: _save(p, probs=probs, rows=rows, cols=cols))
            self.made += 1
        else:
            self.reused += 1
        return maps_of(probs, rows, cols, image.shape)

    @staticmethod
    def _read(path: Path, rows: np.ndarray, cols: np.ndarray) -> np.ndarray | None:
        """A cached entry's probabilities; None when absent, or damaged (then redone)."""
        if not path.exists():
            return None
        try:
            with np.load(path) as f:
                probs = f["probs"]
                if (np.array_equal(f["rows"], rows) and np.array_equal(f["cols"], cols)
                        and probs.shape == (len(rows), len(cols), CLASSES)):
                    return probs
            problem = "its patch grid differs from this image's"
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
            problem = f"{type(e).__name__}: {e}"
        warnings.warn(f"{path}: cached heatmap entry unusable ({problem}); making it again",
                      stacklevel=3)
        return None
