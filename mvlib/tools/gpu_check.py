"""`make gpu-check`: the CUDA path, measured on a machine with a GPU (about 3.5 minutes on an H200).

1. Agreement: a smoke sweep (Joint ResNet, learning rates 1e-4 and 3e-4) on CUDA with bf16
   autocast beside the same configs on the CPU in fp32: the largest difference of a
   validation AUC (any epoch) and of a test AUC, against `TOLERANCE`.
2. Training at the paper's size (CC 2677x1942, MLO 2974x1748, batch 4, channels_last, fused
   Adam): Joint ResNet steps/s in bf16 autocast and in fp32 in the same process, images/s (two
   views per breast), achieved TFLOP/s (FlopCounterMode on one step) and their share of the
   GPU's bf16 dense peak (`PEAK_BF16_TFLOPS`, by device name).
3. Test-time augmentation at the paper's size: breasts/s with 10 windows, and what a test
   set of the NYU data set's size would take at that rate (`TEST_BREASTS`).
4. The `paper` profile's whole sweep in GPU-hours at the measured training rate
   (`paper_sweep_epochs`: Tables 1-5 as the paper runs them).
5. The data path at the paper's size: a few full-size synthetic breasts (three channels) in
   the zarr store, read per breast by DataLoader workers (breasts/s by worker count), and
   training fed by that loader (windows and augmentation on the device) against the same
   steps on tensors already there: how many workers keep the GPU busy.
6. The heatmap producer (the patch classifier of Wu et al. 2019a, fp32 without TF32 as the
   reference computed) at the paper's CC size: patches/s, images/s, and RSNA's training
   images in GPU-hours (`mvlib.tools.bench.heatmap_rate`).
On a machine without CUDA it runs at a reduced size on the CPU in fp32 (what the tests do),
so the script stays tested where no GPU is lent.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
import traceback
from pathlib import Path

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from mvlib.core import paper
from mvlib.core.atomic import write_json
from mvlib.core.device import autocast, deterministic_cuda, to_device
from mvlib.data.loader import BreastArrays, to_model_input
from mvlib.data.store import BreastDataset
from mvlib.executors.sweep import InProcess, sweep
from mvlib.experiment.runs import RunConfig
from mvlib.models.heads import JointResNet, loss_fn
from mvlib.synth.config import SynthConfig
from mvlib.synth.generate import dataset_dir, generate_dataset
from mvlib.tools.bench import heatmap_rate, loader_breasts_s, random_loader

TOLERANCE = 0.05  # AUC: bf16 rounding, amplified by training, on 40 smoke test breasts
# bf16 dense tensor-core peaks (TFLOP/s, vendor data sheets, no sparsity), by the names CUDA
# reports ("NVIDIA H100 80GB HBM3" is the SXM part).
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "H100 PCIe": 756.0, "H100 NVL": 835.0,
                    "A100": 312.0, "L40S": 362.0, "A10": 125.0, "L4": 121.0, "RTX 4090": 165.0}
# NYU test set of Wu et al. (IEEE TMI 2019): 14,148 exams, both breasts of each.
TEST_BREASTS = 2 * 14_148
# One regular epoch at the paper's scale: every biopsied exam plus as many without, about
# 9,700 exams (Appendix A: 970 in a 10% shrunken epoch) = 19,400 breasts at batch 4.
ITERATIONS_PER_EPOCH = 19_400 // 4


def peak_tflops(name: str) -> float | None:
    """The bf16 dense peak of a device by its name (longest matching key), None if unknown."""
    hits = [k for k in PEAK_BF16_TFLOPS if k.lower() in name.lower()]
    return PEAK_BF16_TFLOPS[max(hits, key=len)] if hits else None


def agreement(store: Path, device: torch.device) -> dict:
    """Test and validation AUCs of the smoke configs trained on `device` against the CPU; on
    CUDA also in fp32 there, which tells bf16's rounding from a difference of the device."""
    cfgs = [RunConfig(model="joint", lr=lr, epochs=2, profile="smoke", tta_windows=2,
                      experiment="gpu_check", threads=1) for lr in (1e-4, 3e-4)]
    modes = [("cpu", "0"), (device.type, "0")] + ([("cuda", "1")] if device.type == "cuda"
                                                  else [])
    runs = []
    for i, (where, fp32) in enumerate(modes):
        with _device(where, fp32), _no_tf32(fp32 == "1"):
            runs.append(sweep(cfgs, InProcess(), store / f"{i}-{where}{fp32}"))
    out = {"tolerance": TOLERANCE}
    for (_, fp32), these in zip(modes[1:], runs[1:], strict=True):
        val, test = [], []
        for a, b in zip(runs[0], these, strict=True):
            val.append((a.metrics().val_auc_malignant - b.metrics().val_auc_malignant)
                       .abs().max())
            test.append(abs(a.status()["test_auc"] - b.status()["test_auc"]))
        key = "" if fp32 == "0" else "fp32_"
        out.update({f"{key}max_val_auc_gap": float(max(val)),
                    f"{key}max_test_auc_gap": float(max(test)),
                    f"{key}within": bool(max(val + test) <= TOLERANCE)})
    return out


@contextlib.contextmanager
def _no_tf32(on: bool):
    """fp32 on CUDA without TF32 (PyTorch's default for convolutions uses it) in this block."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    if on:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


@contextlib.contextmanager
def _device(name: str, fp32: str = "0"):
    """Train on `name` ("cpu" or "cuda"; in fp32 there with `fp32` "1") in this block
    (mvlib.core.device.pick_device and autocast)."""
    before = {k: os.environ.get(k) for k in ("MVLIB_DEVICE", "MVLIB_CUDA_FP32")}
    os.environ.update(MVLIB_DEVICE=name, MVLIB_CUDA_FP32=fp32)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k)
            else:
                os.environ[k] = v


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _rate(step, device: torch.device, seconds: float) -> float:
    step()
    _sync(device)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        n += 1
    _sync(device)
    return n / (time.perf_counter() - start)


def training(device: torch.device, scale: float = 1.0, batch: int = 4,
             seconds: float = 10.0) -> dict:
    """Joint ResNet training steps at the paper's size times `scale`, bf16 autocast (on
    CUDA) and fp32."""
    cc = tuple(round(s * scale) for s in paper.CC_SIZE)
    mlo = tuple(round(s * scale) for s in paper.MLO_SIZE)
    out = {"cc_size": cc, "mlo_size": mlo, "batch": batch}
    modes = ("bf16", "fp32") if device.type == "cuda" else ("fp32",)
    for mode in modes:
        torch.manual_seed(0)
        model = JointResNet().to(device, memory_format=torch.channels_last).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-5, fused=True)
        x = to_device({"cc": torch.randn(batch, 3, *cc), "mlo": torch.randn(batch, 3, *mlo)},
                      device)
        y = torch.randint(0, 2, (batch, 2), device=device)
        cast = autocast(device) if mode == "bf16" else contextlib.nullcontext()

        def step(model=model, opt=opt, x=x, y=y, cast=cast):
            opt.zero_grad(set_to_none=True)
            with cast:
                logits = model(x)
            loss_fn(logits.float(), y).backward()
            opt.step()

        with FlopCounterMode(display=False) as counter:
            step()
        steps = _rate(step, device, seconds)
        tflops = steps * counter.get_total_flops() / 1e12
        out[mode] = {"steps_s": steps, "images_s": 2 * batch * steps, "tflops": tflops}
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = peak_tflops(name)
        out["device"] = name
        out["peak_bf16_tflops"] = peak
        for mode in modes:
            out[mode]["share_of_bf16_peak"] = out[mode]["tflops"] / peak if peak else None
    return out


@torch.no_grad()
def tta(device: torch.device, scale: float = 1.0, windows: int = 10, batch: int = 8,
        seconds: float = 10.0) -> dict:
    """Breasts per second of test-time augmentation (`windows` forward passes of both views
    per breast) at the paper's size times `scale`, and the NYU test set's time at that rate."""
    cc = tuple(round(s * scale) for s in paper.CC_SIZE)
    mlo = tuple(round(s * scale) for s in paper.MLO_SIZE)
    model = JointResNet().to(device, memory_format=torch.channels_last).eval()
    x = to_device({"cc": torch.randn(batch, 3, *cc), "mlo": torch.randn(batch, 3, *mlo)}, device)

    def step():
        with autocast(device):
            for _ in range(windows):
                model(x)

    breasts_s = batch * _rate(step, device, seconds)
    return {"windows": windows, "breasts_s": breasts_s, "test_breasts": TEST_BREASTS,
            "test_set_minutes": TEST_BREASTS / breasts_s / 60}


def data_path(device: torch.device, store: Path, scale: float = 1.0, patients: int = 4,
              batch: int = 4, workers: tuple[int, ...] = (1, 2, 4, 8, 12),
              seconds: float = 10.0) -> dict:
    """Breasts/s that DataLoader workers read (and decode) from a zarr store of
    2 x `patients` synthetic breasts at the paper's size times `scale`, per worker count; and
    Joint ResNet steps/s (bf16 on CUDA) fed by the loader with the most workers, against the
    same steps on a batch already on the device."""
    cfg = SynthConfig(patients={"train": patients, "val": 0, "test": 0},
                      cc_size=tuple(round(s * scale) for s in paper.CC_SIZE),
                      mlo_size=tuple(round(s * scale) for s in paper.MLO_SIZE))
    start = time.perf_counter()
    generate_dataset(cfg, store, progress=False)
    data = BreastDataset.open(dataset_dir(cfg, store), in_memory=False)  # read per breast
    out = {"breasts": len(data.manifest), "generate_s": time.perf_counter() - start,
           "stored_mb_per_breast": sum(f.stat().st_size for f in data.root.rglob("*.zarr/**/*")
                                       if f.is_file()) / len(data.manifest) / 1e6,
           "loader_breasts_s": {}}
    cuda = device.type == "cuda"
    for n in workers:
        out["loader_breasts_s"][n] = loader_breasts_s(data, n, batch, seconds, pin_memory=cuda)
    torch.manual_seed(0)
    model = JointResNet().to(device, memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-5, fused=True)
    windows = torch.Generator().manual_seed(0)
    items = BreastArrays(data)
    fixed = torch.utils.data.default_collate([items[i % len(items)] for i in range(batch)])

    def step(batch_of):
        b = batch_of()
        x = to_device(to_model_input(b, device, augment=True, generator=windows), device)
        opt.zero_grad(set_to_none=True)
        with autocast(device):
            logits = model(x)
        loss_fn(logits.float(), b["labels"].to(device)).backward()
        opt.step()

    on_device = {k: v.to(device) if torch.is_tensor(v) else v for k, v in fixed.items()}
    # the baseline first, while no worker competes for the CPU that launches the kernels
    out["train_on_device_steps_s"] = _rate(lambda: step(lambda: on_device), device, seconds)
    it = iter(random_loader(data, max(workers), batch, pin_memory=cuda))
    # the first `seconds` drain what the workers had queued; the next measure the steady rate
    _rate(lambda: step(lambda: next(it)), device, seconds)
    out["train_from_loader_steps_s"] = _rate(lambda: step(lambda: next(it)), device, seconds)
    out["loader_workers"] = max(workers)
    out["fed_share"] = out["train_from_loader_steps_s"] / out["train_on_device_steps_s"]
    return out


def paper_sweep_epochs() -> pd.DataFrame:
    """Every run of Tables 1-5 as the paper trains them (10 sampled settings x 3 seeds per
    group, the winner's seeds among them): runs, epochs each and the cost of one epoch
    relative to Joint ResNet's (a uni-view model computes one view)."""
    rows = [("Table 1: uni-view CC, uni-view MLO", 2 * 30, 100, 0.5),
            ("Table 1: Split, Joint, Shared ResNet", 3 * 30, 100, 1.0),
            ("Table 2: Pretraining (output layer; whole model)", 2 * 30, 50, 1.0),
            ("Table 2: Split Learning Rates (10 per base rate, 2 base rates)", 60, 100, 1.0),
            ("Table 2: Modality Dropout (10 per base rate, 2 base rates)", 60, 150, 1.0),
            ("Tables 4-5: Gradient Blending (3 for weights, 5 weight sets x 3 seeds)", 18, 100,
             1.0),
            ("Table 3: Joint, Shared without heatmaps", 2 * 30, 100, 1.0),
            ("Table 3: Modality Dropout without heatmaps", 30, 150, 1.0)]
    t = pd.DataFrame(rows, columns=["group", "runs", "epochs", "relative cost"])
    t["joint epochs"] = t.runs * t.epochs * t["relative cost"]
    return t.set_index("group")


def gpu_hours(steps_s: float) -> float:
    """The paper profile's sweep at `steps_s` Joint ResNet training steps per second
    (training only: validation and test windows add a few percent)."""
    return paper_sweep_epochs()["joint epochs"].sum() * ITERATIONS_PER_EPOCH / steps_s / 3600


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m mvlib.tools.gpu_check")
    parser.add_argument("--scale", type=float, default=None,
                        help="image size relative to the paper's (default 1 on CUDA, 0.1 on "
                             "the CPU)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", default=None, help="also write the results as JSON here")
    parser.add_argument("--only", nargs="*", default=None,
                        help="run these sections only (training, tta, data_path, agreement, "
                             "heatmaps)")
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    if cuda:
        deterministic_cuda()
    scale = args.scale or (1.0 if cuda else 0.1)
    result = {"device": torch.cuda.get_device_name() if cuda else "cpu", "scale": scale,
              "torch": torch.__version__}
    sections = {"training": lambda tmp: training(device, scale, seconds=args.seconds),
                "tta": lambda tmp: tta(device, scale, seconds=args.seconds),
                "data_path": lambda tmp: data_path(device, tmp, scale, seconds=args.seconds),
                "agreement": lambda tmp: agreement(tmp, device) if cuda else None,
                "heatmaps": lambda tmp: heatmap_rate(device, tuple(
                    max(256, round(s * scale)) for s in paper.CC_SIZE), 5 if cuda else 1)}
    # Each section on its own: one that fails is recorded with its error, the others still
    # run, and the results so far are written after each (a lease can end mid-run).
    for name, run in sections.items():
        if args.only and name not in args.only:
            continue
        start = time.perf_counter()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                result[name] = run(Path(tmp))
        except Exception:
            result[name] = {"error": traceback.format_exc()}
        result.setdefault("seconds", {})[name] = time.perf_counter() - start
        print(f"{name}: {json.dumps(result[name], default=str)}", flush=True)
        if args.out:
            write_json(Path(args.out), result)
    t = result.get("training", {"error": "not run"})
    if "error" not in t:
        best = t.get("bf16", t["fp32"])["steps_s"]
        result["paper_sweep_gpu_hours"] = gpu_hours(best) if scale == 1.0 else None
    if args.out:
        write_json(Path(args.out), result)
    return result


if __name__ == "__main__":
    main()
