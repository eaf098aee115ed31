"""The device choices of training: CPU fp32 here; on CUDA bf16 autocast and deterministic
cuDNN (checked without a GPU: only flags and context objects are involved)."""

import contextlib
import warnings

import torch

from mvlib.core import device


def test_the_cpu_runs_fp32_without_autocast(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpu = device.pick_device()
    assert cpu.type == "cpu"
    with device.autocast(cpu):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    assert isinstance(device.autocast(cpu), contextlib.nullcontext)


def test_cuda_gets_bf16_autocast_and_deterministic_cudnn(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", "")  # recorded, so restored after the test
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG")
    gpu = device.pick_device()
    assert gpu.type == "cuda"
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert device.os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # autocast would query it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CUDA is not available" on a CPU-only machine
        ctx = device.autocast(gpu)
    assert isinstance(ctx, torch.autocast)
    assert ctx.device == "cuda" and ctx.fast_dtype == torch.bfloat16


def test_inputs_go_channels_last():
    x = device.to_device({"cc": torch.randn(2, 3, 8, 6)}, torch.device("cpu"))["cc"]
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert not x.is_contiguous()
