"""Where training runs: CUDA with bf16 autocast when present, else CPU fp32; channels_last."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import threadpoolctl
import torch


def pick_device() -> torch.device:
    """CUDA when present (made deterministic where it can be), else the CPU; MVLIB_DEVICE=cpu
    keeps runs on the CPU on a GPU machine."""
    if torch.cuda.is_available() and os.environ.get("MVLIB_DEVICE", "cuda") != "cpu":
        deterministic_cuda()
        return torch.device("cuda")
    return torch.device("cpu")


def deterministic_cuda() -> None:
    """Same seed, same metrics on one GPU: cuDNN picks deterministic convolution algorithms
    (no autotuning) and cuBLAS a fixed workspace. Max-pool's backward still accumulates with
    atomics on CUDA, so the last bits can differ between runs there (never on the CPU)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (fp32 there with MVLIB_CUDA_FP32=1); nothing on CPU (bf16 is
    several times slower there)."""
    if device.type == "cuda" and os.environ.get("MVLIB_CUDA_FP32", "0") != "1":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """Run the block with `n` intra-op CPU threads, then restore the caller's count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def one_thread_worker() -> None:
    """Set-up of a data-preparation worker process, as torch's DataLoader workers do: one
    BLAS and one torch thread, so that `workers` processes share the cores."""
    threadpoolctl.threadpool_limits(1, user_api="blas")
    torch.set_num_threads(1)


def to_device(x: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Views in channels_last: faster convolutions on CPU and on CUDA tensor cores."""
    return {k: v.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            for k, v in x.items()}


def machine() -> dict[str, str | int]:
    """This machine as a measurement record names it: CPU model, cores, torch, and the GPU
    when one is present."""
    model = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    out: dict[str, str | int] = {"cpu": model, "cores": os.cpu_count() or 0,
                                 "torch": torch.__version__}
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    return out
