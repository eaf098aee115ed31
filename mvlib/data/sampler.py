"""The paper's per-epoch sampler (Wu et al. 2020, Section 4; Wu et al. 2019a): "all exams
with followup biopsy records" plus the "same number of exams without any biopsy record",
drawn afresh each epoch; every breast of a drawn exam is an instance.

Two options beside that default: `unit="breast"` draws biopsied and biopsy-free *breasts*
instead (a 50/50 epoch; what this project did before it followed the paper's text), and
`fraction` shrinks each epoch to that share of the positive and of the negative units, the
shrunken epochs of the paper's Loss Change Allocation runs (Appendix A: 10%).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch.utils.data

UNITS = ("exam", "breast")


class EpochSampler(torch.utils.data.Sampler[int]):
    """Yields data set indices for one epoch; call `set_epoch` before each epoch.

    `indices`: the split's data set indices; `biopsied`: matching booleans (malignant or
    benign); `exams`: matching exam keys (one exam per key; needed for `unit="exam"`). An
    exam is positive when any of its breasts is biopsied. The draw depends only on
    (seed, epoch), so runs resume reproducibly.
    """

    def __init__(self, indices: np.ndarray, biopsied: np.ndarray, seed: int,
                 exams: np.ndarray | None = None, unit: str = "exam", fraction: float = 1.0):
        indices, biopsied = np.asarray(indices), np.asarray(biopsied, dtype=bool)
        if indices.shape != biopsied.shape:
            raise ValueError("indices and biopsied must have the same length")
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        if unit == "breast":
            exams = np.arange(len(indices))  # every breast its own unit
        elif exams is None or len(exams) != len(indices):
            raise ValueError("unit='exam' needs one exam key per index")
        keys, unit_of = np.unique(np.asarray(exams), return_inverse=True)
        # Members of each unit, in data set order (a unit's breasts stay together).
        order = np.argsort(unit_of, kind="stable")
        bounds = np.searchsorted(unit_of[order], np.arange(len(keys) + 1))
        self.members = [indices[order[a:b]] for a, b in zip(bounds[:-1], bounds[1:],
                                                            strict=True)]
        positive = np.zeros(len(keys), dtype=bool)
        np.logical_or.at(positive, unit_of, biopsied)
        self.positives = np.flatnonzero(positive)  # unit numbers
        self.negatives = np.flatnonzero(~positive)
        self.seed, self.fraction, self.epoch = seed, fraction, 0
        self._cached: tuple[int | None, np.ndarray] = (None, np.zeros(0, dtype=int))
        # A regular epoch: every positive unit and as many negative ones (all, if fewer).
        n_pos, n_neg = len(self.positives), min(len(self.positives), len(self.negatives))
        self.n_pos = max(1, round(fraction * n_pos)) if n_pos else 0
        self.n_neg = max(1, round(fraction * n_neg)) if n_neg else 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_units(self, epoch: int) -> np.ndarray:
        """The units (exam numbers, or breasts) drawn for `epoch`."""
        rng = np.random.default_rng([self.seed, epoch])
        pos = (self.positives if self.n_pos == len(self.positives)
               else rng.choice(self.positives, size=self.n_pos, replace=False))
        neg = rng.choice(self.negatives, size=self.n_neg, replace=False)
        return np.concatenate([pos, neg])

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """The breasts of `epoch` in training order (drawn units' breasts, shuffled)."""
        if self._cached[0] != epoch:  # len() asks every iteration: draw once per epoch
            rng = np.random.default_rng([self.seed, epoch, 1])
            units = self.epoch_units(epoch)
            breasts = np.concatenate([self.members[u] for u in units]) if len(units) else \
                np.zeros(0, dtype=int)
            self._cached = (epoch, rng.permutation(breasts))
        return self._cached[1].copy()

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_indices(self.epoch).tolist())

    def __len__(self) -> int:
        return len(self.epoch_indices(self.epoch))
