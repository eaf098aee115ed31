"""Batches of breasts for training and evaluation.

The torch `Dataset` only reads float16 arrays from the data set (in memory, or per breast
from its zarr store); windows,
standardisation and channel selection happen per batch on the training device
(`to_model_input`), where they are cheap and batched.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.utils.data

from mvlib.data.sampler import EpochSampler
from mvlib.data.store import VIEWS, BreastDataset
from mvlib.data.windows import WindowNoise, full_window, train_windows


class BreastArrays(torch.utils.data.Dataset):
    """Item i -> {'cc': (C,H,W) float16, 'mlo': ..., 'labels': [malignant, benign],
    'index': i}."""

    def __init__(self, data: BreastDataset, channels: int = 3):
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (image) or 3 (image + heatmaps), got {channels}")
        if channels > data.cc.shape[1]:
            raise ValueError(f"{data.root}: has {data.cc.shape[1]} channel(s), "
                             f"{channels} requested")
        self.data, self.channels = data, channels
        self.labels = torch.from_numpy(data.labels())

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        c = self.channels
        # np.array copies out of the read-only array.
        return {"cc": torch.from_numpy(np.array(self.data.cc[i, :c])),
                "mlo": torch.from_numpy(np.array(self.data.mlo[i, :c])),
                "labels": self.labels[i], "index": i}


def train_loader(data: BreastDataset, seed: int, batch_size: int = 4, channels: int = 3,
                 workers: int = 0, unit: str = "exam", fraction: float = 1.0
                 ) -> torch.utils.data.DataLoader:
    """Training batches with the paper's epoch sampler (exams by default; `unit` and
    `fraction` as in `EpochSampler`); call `loader.sampler.set_epoch(e)`."""
    idx = data.indices("train")
    labels = data.labels()[idx]
    sampler = EpochSampler(idx, labels.any(axis=1), seed, exams=data.exams()[idx], unit=unit,
                           fraction=fraction)
    return torch.utils.data.DataLoader(BreastArrays(data, channels), batch_size=batch_size,
                                       sampler=sampler, num_workers=workers,
                                       persistent_workers=workers > 0)


def eval_loader(data: BreastDataset, split: str, batch_size: int = 16, channels: int = 3,
                workers: int = 0) -> torch.utils.data.DataLoader:
    subset = torch.utils.data.Subset(BreastArrays(data, channels), data.indices(split).tolist())
    return torch.utils.data.DataLoader(subset, batch_size=batch_size, shuffle=False,
                                       num_workers=workers)


def to_model_input(batch: dict, device: torch.device, augment: bool,
                   generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """float32 views on `device`, windowed (training) or whole (evaluation), standardised."""
    out = {}
    for view in VIEWS:
        x = batch[view].to(device, non_blocking=True).float()
        if augment:
            out[view] = train_windows(x, WindowNoise.paper(view), generator)
        else:
            out[view] = full_window(x)
    return out
