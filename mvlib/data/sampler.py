"""The paper's per-epoch sampler: every biopsied breast plus as many biopsy-free ones,
drawn afresh each epoch (Wu et al. 2019a; the paper's Section 4)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch.utils.data


class EpochSampler(torch.utils.data.Sampler[int]):
    """Yields data set indices for one epoch; call `set_epoch` before each epoch.

    `indices`: the split's data set indices; `biopsied`: matching booleans (malignant or
    benign). The draw depends only on (seed, epoch), so runs resume reproducibly.
    """

    def __init__(self, indices: np.ndarray, biopsied: np.ndarray, seed: int):
        indices, biopsied = np.asarray(indices), np.asarray(biopsied, dtype=bool)
        if indices.shape != biopsied.shape:
            raise ValueError("indices and biopsied must have the same length")
        self.positives = indices[biopsied]
        self.negatives = indices[~biopsied]
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_indices(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, epoch])
        k = min(len(self.positives), len(self.negatives))
        chosen = rng.choice(self.negatives, size=k, replace=False)
        return rng.permutation(np.concatenate([self.positives, chosen]))

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_indices(self.epoch).tolist())

    def __len__(self) -> int:
        return len(self.positives) + min(len(self.positives), len(self.negatives))
