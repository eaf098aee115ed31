"""Batches of breasts for training and evaluation.

A batch holds each view in the data set's stored dtypes (float16; a real source's uint16
image and float16 heatmaps), decoded straight into the batch's memory by loader threads
(`Batches`); conversion to float32, windows, standardisation and channel selection happen
per batch on the training device (`to_model_input`), where they are cheap and batched.
"""

from __future__ import annotations

import mmap
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.utils.data

from mvlib.data.sampler import EpochSampler
from mvlib.data.store import IMAGE_SCALE, VIEWS, BreastDataset, ViewArray, image_values
from mvlib.data.windows import WindowNoise, full_window, train_windows

MAX_THREADS = 8  # loader threads a run uses at most by default (`loader_threads`)
AHEAD_BYTES = 1 << 32  # batches a loader holds ahead of its consumer, at most (4 GiB)
HUGE_PAGES_FROM = 1 << 25  # batch tensors of 32 MiB and more are mapped in huge pages


class BreastArrays(torch.utils.data.Dataset):
    """Breasts of a data set as batches (`batch`) or one at a time (item i -> {'cc':
    (C, H, W), 'mlo': ..., 'labels': [malignant, benign], 'index': i}), in the stored dtypes;
    a uint16 image comes with its heatmaps apart, as 'cc_heatmaps' and 'mlo_heatmaps'."""

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
        return {k: v[0] for k, v in self.batch([i]).items()}

    def parts(self, view: str) -> list[tuple[str, tuple[int, ...], np.dtype]]:
        """A breast's tensors for `view` in a batch, as (key, shape, dtype)."""
        arr = getattr(self.data, view)
        if isinstance(arr, ViewArray):
            return [(view + name, shape, dtype)
                    for name, shape, dtype in arr.stored_parts(self.channels)]
        return [(view, (self.channels, *arr.shape[2:]), arr.dtype)]

    def breast_nbytes(self) -> int:
        """Bytes a breast takes in a batch."""
        return sum(int(np.prod(shape)) * np.dtype(dtype).itemsize
                   for view in VIEWS for _, shape, dtype in self.parts(view))

    def batch(self, indices: Sequence[int], pin_memory: bool = False) -> dict:
        """Breasts `indices` as one batch, each decoded straight into its slice of the
        batch's tensors (pinned on request; in a DataLoader worker process, shared memory,
        as torch's collate allocates it)."""
        idx = [int(i) for i in indices]
        out = {}
        for view in VIEWS:
            arr = getattr(self.data, view)
            parts = {key: _empty((len(idx), *shape), dtype, pin_memory)
                     for key, shape, dtype in self.parts(view)}
            arrays = [t.numpy() for t in parts.values()]
            if isinstance(arr, ViewArray):
                for b, i in enumerate(idx):
                    arr.read_stored(i, [a[b] for a in arrays])
            else:  # decoded into memory when the data set was opened
                np.take(arr[:, :self.channels], idx, axis=0, out=arrays[0])
            out.update(parts)
        return {**out, "labels": self.labels[idx], "index": torch.tensor(idx)}


def _empty(shape: tuple[int, ...], dtype: np.dtype, pin_memory: bool) -> torch.Tensor:
    """A batch tensor: pinned (torch's host allocator caches and reuses it), in shared memory
    in a DataLoader worker, else at the paper's size in transparent huge pages: a fresh
    batch of 4 breasts faulted in 4 kB pages cost 5x the decode's own writes into it."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    tdtype = torch.from_numpy(np.empty(0, dtype)).dtype
    if torch.utils.data.get_worker_info() is not None:  # a DataLoader worker process
        storage = torch.UntypedStorage._new_shared(nbytes)
        return torch.empty(0, dtype=tdtype).set_(storage, 0, shape)
    if pin_memory or nbytes < HUGE_PAGES_FROM or not hasattr(mmap, "MADV_HUGEPAGE"):
        return torch.empty(shape, dtype=tdtype, pin_memory=pin_memory)
    pages = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    pages.madvise(mmap.MADV_HUGEPAGE)  # freed with the last tensor that uses it
    return torch.from_numpy(np.frombuffer(pages, dtype).reshape(shape))


def loader_threads(data: BreastDataset) -> int:
    """Loader threads for `data`: $MVLIB_LOADER_THREADS, else none for a data set decoded
    into memory and up to MAX_THREADS (the cores this process may use) for one read per
    breast from its store."""
    if os.environ.get("MVLIB_LOADER_THREADS"):
        return int(os.environ["MVLIB_LOADER_THREADS"])
    if not isinstance(data.cc, ViewArray):
        return 0
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
             else os.cpu_count() or 1)
    return min(MAX_THREADS, cores)


class Batches:
    """Batches of `items` in `sampler`'s order, each decoded by one of `threads` threads
    (none: by the caller) while the consumer works on earlier ones: two per thread ahead, at
    most AHEAD_BYTES of them (at the paper's size 16 training batches of 4 breasts, 4
    evaluation batches of 16).

    Threads, not torch's DataLoader processes: the codecs and file reads release the GIL,
    and a batch made in another process reaches the trainer through fresh shared memory,
    which cost two thirds of one worker's rate at the paper's size (`make bench` measures
    both). The batches, and so a run's metrics, do not depend on `threads`.
    """

    def __init__(self, items: BreastArrays, sampler: Iterable[int], batch_size: int,
                 threads: int = 0, pin_memory: bool = False):
        if threads < 0:
            raise ValueError(f"threads must be >= 0, got {threads}")
        self.items, self.sampler, self.batch_size = items, sampler, batch_size
        self.threads, self.pin_memory = threads, pin_memory
        batch_bytes = batch_size * items.breast_nbytes()
        self.ahead = max(1, min(2 * threads, AHEAD_BYTES // max(1, batch_bytes)))

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)

    def __iter__(self) -> Iterator[dict]:
        # torch's DataLoader drew one number from the global generator as each pass began;
        # so does this, so that runs recorded with it replay (the noise layer draws next).
        torch.empty((), dtype=torch.int64).random_()
        chunks = _chunks(self.sampler, self.batch_size)
        if not self.threads:
            for chunk in chunks:
                yield self.items.batch(chunk, self.pin_memory)
            return
        with ThreadPoolExecutor(self.threads, thread_name_prefix="mvlib-loader") as pool:
            pending: deque = deque()
            try:
                for chunk in chunks:
                    pending.append(pool.submit(self.items.batch, chunk, self.pin_memory))
                    if len(pending) > self.ahead:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:  # the consumer stopped early, or a read failed: drop what is queued
                for future in pending:
                    future.cancel()


def _chunks(indices: Iterable[int], size: int) -> Iterator[list[int]]:
    chunk: list[int] = []
    for i in indices:
        chunk.append(int(i))
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def train_loader(data: BreastDataset, seed: int, batch_size: int = 4, channels: int = 3,
                 threads: int | None = None, unit: str = "exam", fraction: float = 1.0,
                 pin_memory: bool = False) -> Batches:
    """Training batches with the paper's epoch sampler (exams by default; `unit` and
    `fraction` as in `EpochSampler`); call `loader.sampler.set_epoch(e)`. `threads`: as
    `loader_threads` says where None."""
    idx = data.indices("train")
    labels = data.labels()[idx]
    sampler = EpochSampler(idx, labels.any(axis=1), seed, exams=data.exams()[idx], unit=unit,
                           fraction=fraction)
    return Batches(BreastArrays(data, channels), sampler, batch_size,
                   loader_threads(data) if threads is None else threads, pin_memory)


def eval_loader(data: BreastDataset, split: str, batch_size: int = 16, channels: int = 3,
                threads: int | None = None, pin_memory: bool = False) -> Batches:
    """The split's breasts in data set order."""
    return Batches(BreastArrays(data, channels), data.indices(split).tolist(), batch_size,
                   loader_threads(data) if threads is None else threads, pin_memory)


_UNIT = {}  # device -> the table uint16 value k -> image_values(k)


def view_input(batch: dict, view: str, device: torch.device) -> torch.Tensor:
    """A view's channels as float32 on `device`, converted there from the stored dtypes:
    a uint16 image to the store's own values (`store.image_values`), bit for bit, through
    a table of them (a device may divide by a scalar as a reciprocal multiplication, a bit
    off), then its heatmaps."""
    x = batch[view].to(device, non_blocking=True)
    if x.dtype == torch.uint16:
        if device not in _UNIT:
            table = image_values(np.arange(IMAGE_SCALE + 1, dtype=np.uint16))
            _UNIT[device] = torch.from_numpy(table).to(device)
        # as int16 and back to 0..65535: int16 arithmetic runs on every device, while
        # uint16 has only torch's barebones support
        x = _UNIT[device][x.view(torch.int16).int() & 0xFFFF]
    x = x.float()
    if view + "_heatmaps" in batch:
        heat = batch[view + "_heatmaps"].to(device, non_blocking=True).float()
        x = torch.cat([x, heat], dim=1)
    return x


def to_model_input(batch: dict, device: torch.device, augment: bool,
                   generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """float32 views on `device`, windowed (training) or whole (evaluation), standardised."""
    out = {}
    for view in VIEWS:
        x = view_input(batch, view, device)
        if augment:
            out[view] = train_windows(x, WindowNoise.paper(view), generator)
        else:
            out[view] = full_window(x)
    return out
