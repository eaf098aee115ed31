"""Where training runs: CUDA with bf16 autocast when present, else CPU fp32; channels_last."""

from __future__ import annotations

import contextlib
import os

import torch


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; nothing on CPU (bf16 is several times slower there)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def set_threads() -> None:
    """Honour MVLIB_THREADS (set by the sweep executor when runs share the cores)."""
    threads = os.environ.get("MVLIB_THREADS")
    if threads:
        torch.set_num_threads(int(threads))


def to_device(x: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Views in channels_last: faster convolutions on CPU and on CUDA tensor cores."""
    return {k: v.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            for k, v in x.items()}
