"""`make gpu-check`: the CUDA path, measured on a machine with a GPU (about 3.5 minutes on an H200).

1. Agreement (mvlib.engine.agreement): at a trained Joint ResNet checkpoint, one training
   step's logits, loss and every parameter's gradient, and the checkpoint's test scores, on
   CUDA in fp32 without TF32 and in bf16 autocast against the CPU in fp64, each within the
   tolerances of its dtype.
2. Training at the paper's size (CC 2677x1942, MLO 2974x1748, batch 4, channels_last, fused
   Adam): Joint ResNet steps/s in bf16 autocast and in fp32 in the same process, images/s (two
   views per breast), achieved TFLOP/s (FlopCounterMode on one step) and their share of the
   GPU's bf16 dense peak (`PEAK_BF16_TFLOPS`, by device name).
3. Test-time augmentation at the paper's size: breasts/s with 10 windows, and what a test
   set of the NYU data set's size would take at that rate (`TEST_BREASTS`).
4. The `paper` profile's whole sweep in GPU-hours at the measured training rate
   (`paper_sweep_epochs`: Tables 1-5 as the paper runs them).
5. The data path at the paper's size: a few full-size synthetic breasts (three channels) in
   the zarr store, read per breast by the loader's threads into pinned memory (breasts/s by
   thread count), and training fed by that loader (conversion, windows and augmentation on
   the device) against the same steps on tensors already there: how many threads keep the
   GPU busy.
6. The heatmap producer (the patch classifier of Wu et al. 2019a, fp32 without TF32 as the
   reference computed) at the paper's CC size: patches/s, images/s, and RSNA's training
   images in GPU-hours (`mvlib.tools.bench.heatmap_rate`).
7. Several runs on one GPU (`runs_per_gpu`): k processes each training Joint ResNet at the
   paper's size, for k = 1, 2, 4, 8: breasts/s summed over them, and the sweep's GPU-hours
   at the best k.
8. What else the step leaves: contiguous tensors instead of channels_last, cudnn.benchmark,
   torch.compile, each as a ratio to the default step.
On a machine without CUDA it runs at a reduced size on the CPU in fp32 (what the tests do),
so the script stays tested where no GPU is lent.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from mvlib.core import paper
from mvlib.core.atomic import write_json
from mvlib.core.device import autocast, deterministic_cuda, to_device
from mvlib.data.loader import MAX_THREADS, VIEWS, BreastArrays, to_model_input, view_input
from mvlib.data.store import IMAGE_SCALE, BreastDataset, image_values
from mvlib.data.windows import full_window
from mvlib.engine.agreement import TOLERANCES, Setting, check
from mvlib.executors.sweep import InProcess, sweep
from mvlib.experiment.prepare import prepare
from mvlib.experiment.runs import RunConfig
from mvlib.models.heads import JointResNet, loss_fn
from mvlib.synth.config import SynthConfig
from mvlib.synth.generate import dataset_dir, generate_dataset
from mvlib.tools.bench import heatmap_rate, loader_breasts_s, random_loader

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
    """The agreement check (mvlib.engine.agreement) at a trained checkpoint: Joint ResNet
    trained two epochs here (the laptop profile's data on CUDA, three smoke epochs on the
    CPU), then one training step on four training breasts and the checkpoint's test scores,
    each setting against the CPU in fp64: on CUDA fp32 without TF32 (tight tolerances) and
    bf16 autocast (loose), and the CPU in fp32; on the CPU, its fp32 only. Also: every uint16
    image level converted on the device equals the CPU's conversion."""
    cuda = device.type == "cuda"
    profile = "laptop" if cuda else "smoke"
    cfg = RunConfig(model="joint", lr=3e-4, epochs=2 if cuda else 3, profile=profile,
                    tta_windows=1, experiment="gpu_check")
    run = sweep([cfg], InProcess(), store)[0]
    model = JointResNet()
    model.load_state_dict(run.load("best.pt"))
    data = prepare("synthetic", profile, progress=False)
    items = BreastArrays(data)
    batch = items.batch(data.indices("train")[:4])
    x = {v: full_window(view_input(batch, v, torch.device("cpu"))) for v in VIEWS}
    settings = [Setting("cpu", "fp32")] + ([Setting("cuda", "fp32"), Setting("cuda", "bf16")]
                                           if cuda else [])
    # every uint16 image level, converted on the device, is what the store's numpy read gives
    levels = np.arange(IMAGE_SCALE + 1, dtype=np.uint16)
    got = view_input({"cc": torch.from_numpy(levels).view(1, 1, 256, 256)}, "cc", device)
    exact = bool(np.array_equal(got.cpu().numpy().ravel().view(np.uint32),
                                image_values(levels).view(np.uint32)))
    result = check(model, x, batch["labels"], settings, data)
    return {"profile": profile, "tolerances": TOLERANCES, **result,
            "uint16_conversion_exact": exact, "within": result["within"] and exact}


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


def _joint_step(device: torch.device, cc: tuple, mlo: tuple, batch: int,
                channels_last: bool = True, compile_model: bool = False, bf16: bool = True):
    """A Joint ResNet training step (fused Adam; bf16 autocast on CUDA unless `bf16` is
    False) on a fixed random batch of `batch` breasts at sizes `cc`, `mlo`."""
    torch.manual_seed(0)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = JointResNet().to(device, memory_format=layout).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-5, fused=True)
    x = {k: v.to(device).contiguous(memory_format=layout)
         for k, v in (("cc", torch.randn(batch, 3, *cc)), ("mlo", torch.randn(batch, 3, *mlo)))}
    y = torch.randint(0, 2, (batch, 2), device=device)
    forward = torch.compile(model) if compile_model else model

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast(device) if bf16 else contextlib.nullcontext():
            logits = forward(x)
        loss_fn(logits.float(), y).backward()
        opt.step()

    return step


def _sizes(scale: float) -> tuple[tuple, tuple]:
    return (tuple(round(s * scale) for s in paper.CC_SIZE),
            tuple(round(s * scale) for s in paper.MLO_SIZE))


def training(device: torch.device, scale: float = 1.0, batch: int = 4,
             seconds: float = 10.0) -> dict:
    """Joint ResNet training steps at the paper's size times `scale`, bf16 autocast (on
    CUDA) and fp32."""
    cc, mlo = _sizes(scale)
    out = {"cc_size": cc, "mlo_size": mlo, "batch": batch}
    modes = ("bf16", "fp32") if device.type == "cuda" else ("fp32",)
    for mode in modes:
        step = _joint_step(device, cc, mlo, batch, bf16=mode == "bf16")
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


def _shared_worker(device: str, scale: float, batch: int, seconds: float, barrier, results
                   ) -> None:
    """One of k processes training on the same device: its steps/s once all have warmed up."""
    try:
        dev = torch.device(device)
        step = _joint_step(dev, *_sizes(scale), batch)
        step()
        step()
        _sync(dev)
        barrier.wait(timeout=600)
        results.put(_rate(step, dev, seconds))
    except Exception as e:  # out of memory at large k: recorded, the others still report
        barrier.abort()
        results.put(f"{type(e).__name__}: {e}")


def shared_gpu(device: torch.device, scale: float = 1.0, ks: tuple[int, ...] = (1, 2, 4, 8),
               batch: int = 4, seconds: float = 10.0) -> dict:
    """Aggregate training throughput with k runs' processes sharing one device (what
    `runs_per_gpu` does to a sweep): breasts/s summed over the k, per k, and the `paper`
    profile's sweep in GPU-hours at the best k (at the paper's size only)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # CUDA cannot be forked
    out = {"batch": batch, "by_k": {}}
    for k in ks:
        barrier, results = ctx.Barrier(k), ctx.Queue()
        procs = [ctx.Process(target=_shared_worker,
                             args=(device.type, scale, batch, seconds, barrier, results))
                 for _ in range(k)]
        for p in procs:
            p.start()
        got = [results.get(timeout=900) for _ in procs]
        for p in procs:
            p.join()
        rates = [r for r in got if isinstance(r, float)]
        errors = sorted({r for r in got if not isinstance(r, float)})
        out["by_k"][k] = ({"error": errors[0]} if errors else
                          {"steps_s_each": rates, "breasts_s": batch * sum(rates)})
    ok = {k: r for k, r in out["by_k"].items() if "error" not in r}
    if ok:
        best = max(ok, key=lambda k: ok[k]["breasts_s"])
        out["best_k"] = best
        out["gain_over_one"] = ok[best]["breasts_s"] / ok[ks[0]]["breasts_s"] if ks[0] in ok \
            else None
        out["paper_sweep_gpu_hours_at_best_k"] = (
            gpu_hours(ok[best]["breasts_s"] / batch) if scale == 1.0 else None)
    return out


def step_variants(device: torch.device, scale: float = 1.0, batch: int = 4,
                  seconds: float = 10.0, variants: tuple[str, ...] | None = None) -> dict:
    """What else the training step leaves, each as a ratio to the default step (channels_last,
    cuDNN's deterministic algorithms) in this process: contiguous tensors, cudnn.benchmark
    (CUDA), torch.compile (CUDA)."""
    cuda = device.type == "cuda"
    variants = variants or (("contiguous", "cudnn_benchmark", "compile") if cuda
                            else ("contiguous",))
    cc, mlo = _sizes(scale)
    base = _rate(_joint_step(device, cc, mlo, batch), device, seconds)
    out = {"default_steps_s": base}
    for v in variants:
        before = torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic
        try:
            if v == "cudnn_benchmark":
                torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = True, False
            step = _joint_step(device, cc, mlo, batch, channels_last=v != "contiguous",
                               compile_model=v == "compile")
            step()  # compiles, or autotunes, outside the timing
            out[v] = _rate(step, device, seconds) / base
        except Exception as e:
            out[v] = f"{type(e).__name__}: {e}"
        finally:
            torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before
    return out


@torch.no_grad()
def tta(device: torch.device, scale: float = 1.0, windows: int = 10, batch: int = 8,
        seconds: float = 10.0) -> dict:
    """Breasts per second of test-time augmentation (`windows` forward passes of both views
    per breast) at the paper's size times `scale`, and the NYU test set's time at that rate."""
    cc, mlo = _sizes(scale)
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
              batch: int = 4, threads: tuple[int, ...] = (1, 2, 4, 8, 12),
              seconds: float = 10.0) -> dict:
    """Breasts/s that the loader's threads read (and decode) from a zarr store of
    2 x `patients` synthetic breasts at the paper's size times `scale`, per thread count,
    into pinned memory on CUDA; and Joint ResNet steps/s (bf16 on CUDA) fed by the loader
    with 8 threads (what a run uses by default), against the same steps on a batch already
    on the device."""
    cc, mlo = _sizes(scale)
    cfg = SynthConfig(patients={"train": patients, "val": 0, "test": 0}, cc_size=cc,
                      mlo_size=mlo)
    start = time.perf_counter()
    generate_dataset(cfg, store, progress=False)
    data = BreastDataset.open(dataset_dir(cfg, store), in_memory=False)  # read per breast
    out = {"breasts": len(data.manifest), "generate_s": time.perf_counter() - start,
           "stored_mb_per_breast": sum(f.stat().st_size for f in data.root.rglob("*.zarr/**/*")
                                       if f.is_file()) / len(data.manifest) / 1e6,
           "loader_breasts_s": {}}
    cuda = device.type == "cuda"
    for n in threads:
        out["loader_breasts_s"][n] = loader_breasts_s(data, n, batch, seconds, pin_memory=cuda)
    torch.manual_seed(0)
    model = JointResNet().to(device, memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-5, fused=True)
    windows = torch.Generator().manual_seed(0)
    items = BreastArrays(data)
    fixed = items.batch([i % len(items) for i in range(batch)])

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
    fed_by = min(MAX_THREADS, max(threads))
    it = iter(random_loader(data, fed_by, batch, pin_memory=cuda))
    # the first `seconds` drain what the threads had queued; the next measure the steady rate
    _rate(lambda: step(lambda: next(it)), device, seconds)
    out["train_from_loader_steps_s"] = _rate(lambda: step(lambda: next(it)), device, seconds)
    it.close()
    out["loader_threads"] = fed_by
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
                             "shared_gpu, step_variants, heatmaps)")
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
                "agreement": lambda tmp: agreement(tmp, device),
                "shared_gpu": lambda tmp: shared_gpu(device, scale, seconds=args.seconds,
                                                     ks=(1, 2, 4, 8) if cuda else (1, 2)),
                "step_variants": lambda tmp: step_variants(device, scale,
                                                           seconds=args.seconds),
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
