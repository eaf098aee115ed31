"""`make gpu-check`: the CUDA path, measured on a machine with a GPU (under 8 minutes there).

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
from pathlib import Path

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from mvlib import paper
from mvlib.device import autocast, deterministic_cuda, to_device
from mvlib.models.heads import JointResNet, loss_fn
from mvlib.runs import RunConfig
from mvlib.sweep import InProcess, sweep

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
    """Test and validation AUCs of the smoke configs trained on `device` against the CPU."""
    cfgs = [RunConfig(model="joint", lr=lr, epochs=2, profile="smoke", tta_windows=2,
                      experiment="gpu_check", threads=1) for lr in (1e-4, 3e-4)]
    runs = {}
    for where in ("cpu", device.type):
        with _device(where):
            runs[where] = sweep(cfgs, InProcess(), store / where)
    val, test = [], []
    for a, b in zip(runs["cpu"], runs[device.type], strict=True):
        val.append((a.metrics().val_auc_malignant - b.metrics().val_auc_malignant).abs().max())
        test.append(abs(a.status()["test_auc"] - b.status()["test_auc"]))
    return {"max_val_auc_gap": float(max(val)), "max_test_auc_gap": float(max(test)),
            "tolerance": TOLERANCE, "within": bool(max(val + test) <= TOLERANCE)}


@contextlib.contextmanager
def _device(name: str):
    """Train on `name` ("cpu" or "cuda") in this block (mvlib.device.pick_device)."""
    before = os.environ.get("MVLIB_DEVICE")
    os.environ["MVLIB_DEVICE"] = name
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MVLIB_DEVICE")
        else:
            os.environ["MVLIB_DEVICE"] = before


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
    parser = argparse.ArgumentParser(prog="python -m mvlib.gpu_check")
    parser.add_argument("--scale", type=float, default=None,
                        help="image size relative to the paper's (default 1 on CUDA, 0.1 on "
                             "the CPU)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    if cuda:
        deterministic_cuda()
    scale = args.scale or (1.0 if cuda else 0.1)
    with tempfile.TemporaryDirectory() as store:
        result = {"device": torch.cuda.get_device_name() if cuda else "cpu", "scale": scale,
                  "agreement": agreement(Path(store), device) if cuda else None,
                  "training": training(device, scale, seconds=args.seconds),
                  "tta": tta(device, scale, seconds=args.seconds)}
    best = result["training"].get("bf16", result["training"]["fp32"])["steps_s"]
    result["paper_sweep_gpu_hours"] = gpu_hours(best) if scale == 1.0 else None
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
