"""`make bench`: throughput figures, each measured beside its baseline in this process.

- generator: synthetic breasts per second at 256x192 (target >= 200), in memory and as a
  full data-set build including the writes;
- training: ResNet-22 images/s and GFLOP/s against a matmul and an NCHW baseline;
- instruments: gradient-norm overhead, and a run with online LCA against one without;
- loader vs training: batches per second the loader delivers (epoch sampler, windows,
  standardisation) against batches per second Joint ResNet trains on, both at the laptop
  size and the paper's batch size 4, with the same threads (target: loader >= 5x);
- the store (zarr, Blosc; its codec chosen from a table of settings): bytes per breast
  against raw float16, and its decode rate (through zarr, and straight into a batch's
  buffers as the loader reads) against reading the raw float16 arrays, at the laptop size,
  on full-size synthetic breasts (three channels) and, on the real sample mammograms when
  present (MVLIB_REALDATA), at the paper's CC size (image channel as uint16), with the
  preparation rate from PNG and DICOM; the loader's threads against DataLoader worker
  processes, and the cores a GPU needs at the training rate `make gpu-check` measured
  (`gpu_rate`; target <= 8);
- the heatmap producer (the patch classifier of Wu et al. 2019a) at the paper's CC size:
  patches/s, images/s and what RSNA's training images would cost.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import threadpoolctl
import torch
from torch.utils.flop_counter import FlopCounterMode

from mvlib.core import paper, paths
from mvlib.core.atomic import write_atomic
from mvlib.core.device import machine, to_device
from mvlib.data import heatmaps, store
from mvlib.data.adapters.examples import write_dicom
from mvlib.data.crop import prepare_view
from mvlib.data.dicom import read_image
from mvlib.data.loader import Batches, BreastArrays, to_model_input, train_loader
from mvlib.data.store import BreastDataset
from mvlib.engine.dynamics import RK4, group_grad_norms, mlo_share
from mvlib.engine.train import train
from mvlib.experiment import profiles
from mvlib.experiment.prepare import prepare
from mvlib.experiment.runs import RunConfig
from mvlib.models.heads import JointResNet, UniView, loss_fn
from mvlib.models.patch_densenet import patch_classifier
from mvlib.synth.generate import CHUNK, generate_chunk, generate_dataset

GENERATOR_TARGET = 200.0
LOADER_TARGET = 5.0
CORES_TARGET = 8  # cores that feed a GPU training at `gpu_rate` at the paper's size
ASSUMED_GPU_RATE = 50.0  # breasts/s a GPU trains on at the paper's size, until measured
GPU_RECORD = paths.REPO / "figures" / "gpu_check_h200.json"  # make gpu-check on a lent H200
BENCH_RECORD = paths.REPO / "figures" / "bench.json"  # make bench on this machine


def gpu_rate() -> tuple[float, str]:
    """Breasts/s a GPU trains Joint ResNet on at the paper's size with the paper's windows
    (the data-path baseline of the recorded `make gpu-check`), and where the figure is from;
    ASSUMED_GPU_RATE where no record is."""
    try:
        record = json.loads(GPU_RECORD.read_text())
        runs = [r["data_path"] for k, r in sorted(record.items()) if k.startswith("run")
                and "train_on_device_steps_s" in r.get("data_path", {})]
        return 4 * runs[-1]["train_on_device_steps_s"], f"{record['machine']}, {record['date']}"
    except (OSError, json.JSONDecodeError, KeyError, IndexError):
        return ASSUMED_GPU_RATE, "assumed"


class _BatchReads(torch.utils.data.Dataset):
    """`BreastArrays.batch` keyed by a batch's indices: a DataLoader with `batch_size=None`
    and a batch sampler runs it in its worker processes, into shared memory."""

    def __init__(self, items: BreastArrays):
        self.items = items

    def __getitem__(self, indices: list[int]) -> dict:
        return self.items.batch(indices)


def random_loader(data: store.BreastDataset, threads: int, batch: int = 4,
                  pin_memory: bool = False, processes: bool = False) -> Iterable[dict]:
    """Batches of breasts drawn at random (with replacement) from `data`, read and decoded by
    `threads` loader threads (the training loop's `Batches`), or with `processes` by as many
    persistent DataLoader worker processes: the loader's part of training."""
    sampler = torch.utils.data.RandomSampler(range(len(data.manifest)), replacement=True,
                                             num_samples=10**6)
    if not processes:
        return Batches(BreastArrays(data), sampler, batch, threads, pin_memory)
    batches = torch.utils.data.BatchSampler(sampler, batch, drop_last=False)
    return torch.utils.data.DataLoader(_BatchReads(BreastArrays(data)), batch_size=None,
                                       sampler=batches, num_workers=threads,
                                       persistent_workers=True, pin_memory=pin_memory,
                                       prefetch_factor=2)


def loader_breasts_s(data: store.BreastDataset, threads: int, batch: int = 4,
                     seconds: float = 3.0, pin_memory: bool = False,
                     processes: bool = False) -> float:
    """Breasts/s `random_loader` delivers to a consumer that only takes them, once its
    threads (or worker processes) have filled their queue."""
    it = iter(random_loader(data, threads, batch, pin_memory, processes))
    for _ in range(2 * threads):
        next(it)
    rate = batch * _rate(lambda: next(it), min_seconds=seconds, warmup=0)
    if processes:
        it._shutdown_workers()  # none left to compete with what is measured next
    else:
        it.close()
    return rate


RSNA_IMAGES = 54_706  # images of RSNA's screening mammography training set (Kaggle, 2023)


def heatmap_rate(device: torch.device | str = "cpu", shape: tuple[int, int] = paper.CC_SIZE,
                 batches: int = 2, grid: tuple[int, int] = (10, 10)) -> dict:
    """The heatmap producer (mvlib.data.heatmaps, random weights) on a crop of `shape`:
    patches a second through the classifier in batches of a `grid` of patches (10 x 10: the
    producer's 100; after one warm-up batch), the time to average a whole image's patches
    into its two maps, and from them images/s and RSNA's training images in hours of this
    device."""
    device = torch.device(device)
    torch.manual_seed(0)
    model = patch_classifier().to(device).eval()
    rows, cols = heatmaps.grid_of(shape)
    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    sub = rows[:grid[0]], cols[:grid[1]]
    heatmaps.patch_probabilities(image, *sub, model)
    _sync(device)
    start = time.perf_counter()
    for _ in range(batches):
        heatmaps.patch_probabilities(image, *sub, model)
    _sync(device)
    patches_s = batches * len(sub[0]) * len(sub[1]) / (time.perf_counter() - start)
    probs = np.random.default_rng(1).random((len(rows), len(cols), 4), dtype=np.float32)
    start = time.perf_counter()
    heatmaps.maps_of(probs, rows, cols, shape)
    average_s = time.perf_counter() - start
    per_image = len(rows) * len(cols) / patches_s + average_s
    return {"shape": list(shape), "patches_per_image": len(rows) * len(cols),
            "patches_s": patches_s, "average_s": average_s, "images_s": 1 / per_image,
            "rsna_images": RSNA_IMAGES, "rsna_hours": RSNA_IMAGES * per_image / 3600}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(step, min_seconds: float = 3.0, warmup: int = 1) -> float:
    """Calls per second of `step()` over at least `min_seconds`."""
    for _ in range(warmup):
        step()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds:
        step()
        n += 1
    return n / (time.perf_counter() - start)


def bench_generator() -> dict:
    cfg = dataclasses.replace(profiles.get("laptop").synthetic_config(),
                              cc_size=(256, 192), mlo_size=(288, 168),
                              patients={"train": 256, "val": 64, "test": 64})
    counter = iter(range(10**6))
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        one_thread = CHUNK * _rate(lambda: generate_chunk(cfg, next(counter) % 24))
    with tempfile.TemporaryDirectory() as store:
        start = time.perf_counter()
        data = generate_dataset(cfg, store, progress=False)
        build = len(data.manifest) / (time.perf_counter() - start)
    return {"one_thread": one_thread, "build": build}


def bench_loader_vs_training() -> dict:
    data = prepare("synthetic", "laptop", progress=False)
    loader = train_loader(data, seed=0, batch_size=4)
    gen = torch.Generator().manual_seed(0)
    device = torch.device("cpu")
    state = {"epoch": 0, "it": iter(())}

    def next_batch():
        try:
            batch = next(state["it"])
        except StopIteration:
            state["epoch"] += 1
            loader.sampler.set_epoch(state["epoch"])
            state["it"] = iter(loader)
            batch = next(state["it"])
        return batch

    def load_step():
        return to_model_input(next_batch(), device, augment=True, generator=gen)

    load = _rate(load_step)
    model = JointResNet().to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = to_device(load_step(), device)
    y = torch.randint(0, 2, (len(x["cc"]), 2))

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    train = _rate(train_step, warmup=3)
    return {"loader": load, "train": train, "ratio": load / train}


def _store_figures(arrays: dict[str, np.ndarray], shard: int, folder: Path,
                   image_dtype: str = "float16") -> dict:
    """Stored bytes against raw float16, and breasts/s read one by one from the store
    against the same reads from raw float16 .npy memory maps, on one thread."""
    n = len(next(iter(arrays.values())))
    meta = {"shapes": {v: list(a.shape[1:]) for v, a in arrays.items()}, "shard": shard,
            "image_dtype": image_dtype}
    store.create_arrays(folder, n, meta["shapes"], shard, image_dtype)
    for lo in range(0, n, shard):
        store.write_arrays(folder, lo, {v: a[lo:lo + shard] for v, a in arrays.items()})
    raw = sum(a.size * 2 for a in arrays.values())  # as float16
    stored = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    views = {v: store.ViewArray(folder / f"{v}.zarr", n, meta) for v in arrays}
    for v, a in arrays.items():
        np.save(folder / f"{v}.npy", a.astype(np.float16))
    maps = {v: np.load(folder / f"{v}.npy", mmap_mode="r") for v in arrays}
    counter = iter(range(10**9))

    def read(source):
        i = next(counter) % n
        for arr in source.values():
            np.array(arr[i])

    # the loader's read: each view's stored parts straight into buffers a batch would hold
    buffers = {v: [np.empty(shape, dtype) for _, shape, dtype in a.stored_parts(a.shape[1])]
               for v, a in views.items()}

    def read_stored():
        i = next(counter) % n
        for v, arr in views.items():
            arr.read_stored(i, buffers[v])

    with threadpoolctl.threadpool_limits(1):
        zarr_rate, npy_rate = _rate(lambda: read(views), 2.0), _rate(lambda: read(maps), 2.0)
        reader_rate = _rate(read_stored, 2.0)
    return {"raw_per_breast": raw / n, "stored_per_breast": stored / n, "ratio": raw / stored,
            "zarr_breasts_s": zarr_rate, "npy_breasts_s": npy_rate,
            "zarr_mb_s": zarr_rate * raw / n / 1e6, "reader_breasts_s": reader_rate}


# Blosc settings tried for the store: (cname, clevel, shuffle); the store's is STORE_CODEC.
CODECS = (("zstd", 1, "bitshuffle"), ("zstd", 3, "bitshuffle"), ("zstd", 5, "bitshuffle"),
          ("zstd", 3, "shuffle"), ("zstd", 3, "noshuffle"), ("lz4", 5, "bitshuffle"),
          ("lz4", 5, "shuffle"), ("blosclz", 5, "bitshuffle"))


STORE_CODEC = "{cname} {clevel} {shuffle}".format(
    **store.COMPRESSORS[0].to_dict()["configuration"])


def bench_codecs(breasts: list[dict[str, np.ndarray]], gpu_breasts_s: float,
                 seconds: float = 1.0) -> list[dict]:
    """Each Blosc setting of `CODECS` on whole breasts as the store keeps them (one chunk a
    view): stored bytes against raw, and one thread's decode rate (the codec alone, no zarr
    or loader around it), with the cores a GPU training at `gpu_breasts_s` needs at it."""
    from numcodecs import Blosc, blosc

    shuffles = {"noshuffle": Blosc.NOSHUFFLE, "shuffle": Blosc.SHUFFLE,
                "bitshuffle": Blosc.BITSHUFFLE}
    raw = sum(a.nbytes for b in breasts for a in b.values()) / len(breasts)
    before = blosc.get_nthreads()
    blosc.set_nthreads(1)
    rows = []
    try:
        for cname, level, shuffle in CODECS:
            codec = Blosc(cname=cname, clevel=level, shuffle=shuffles[shuffle])
            encoded = [{v: codec.encode(np.ascontiguousarray(a)) for v, a in b.items()}
                       for b in breasts]
            counter = iter(range(10**9))

            def decode(encoded=encoded, codec=codec, counter=counter):
                for buf in encoded[next(counter) % len(encoded)].values():
                    codec.decode(buf)

            rate = _rate(decode, seconds)
            stored = sum(len(x) for e in encoded for x in e.values()) / len(breasts)
            rows.append({"codec": f"{cname} {level} {shuffle}", "ratio": raw / stored,
                         "stored_mb": stored / 1e6, "decode_breasts_s": rate,
                         "decode_mb_s": rate * raw / 1e6,
                         "cores_for_gpu": gpu_breasts_s / rate})
    finally:
        blosc.set_nthreads(before)
    return rows


def bench_store() -> dict:
    """The store at the laptop size (the synthetic data set) and at the paper's CC size
    (the real sample mammograms, when present: image channel only, CC views only)."""
    data = prepare("synthetic", "laptop", progress=False)
    out = {}
    rate, source = gpu_rate()
    out["gpu_rate"], out["gpu_rate_source"] = rate, source
    with tempfile.TemporaryDirectory() as tmp:
        laptop = {v: np.asarray(getattr(data, v)) for v in store.VIEWS}
        out["laptop"] = _store_figures(laptop, data.meta["shard"], Path(tmp) / "laptop")
        # four full-size synthetic breasts, as the generator stores them (float16, 3 channels)
        cfg = profiles.get("paper").synthetic_config(patients={"train": 2, "val": 0, "test": 0})
        cfg = dataclasses.replace(cfg, cc_size=profiles.get("paper").cc_size,
                                  mlo_size=profiles.get("paper").mlo_size)
        full_set = BreastDataset.open(generate_dataset(cfg, Path(tmp), progress=False).root,
                                      in_memory=False)  # read per breast, as at full scale
        full = _store_figures({v: getattr(full_set, v).read_all() for v in store.VIEWS},
                              1, Path(tmp) / "synthetic")
        full["codecs"] = bench_codecs(
            [{v: np.asarray(getattr(full_set, v)[i]) for v in store.VIEWS}
             for i in range(len(full_set.manifest))], rate)
        # the loader: threads (what training uses) against DataLoader worker processes
        full["loader_breasts_s"] = {
            kind: {n: loader_breasts_s(full_set, n, processes=kind == "processes")
                   for n in (1, 2)} for kind in ("threads", "processes")}
        one = full["loader_breasts_s"]["threads"][1]
        full["threads"] = math.ceil(rate / one)
        # what one loader thread keeps of the store's codec alone on one thread, and the
        # cores a GPU needs at that rate
        full["codec_breasts_s"] = next(c["decode_breasts_s"] for c in full["codecs"]
                                       if c["codec"] == STORE_CODEC)
        full["loader_decode_ratio"] = one / full["codec_breasts_s"]
        full["cores_for_gpu"] = rate / one
        out["paper_synthetic"] = full
        shutil.rmtree(Path(tmp) / "synthetic")
        real = sorted((paths.realdata() / "nyu_sample").glob("*_CC.png"))
        if real:
            size = profiles.get("paper").cc_size
            start = time.perf_counter()
            with threadpoolctl.threadpool_limits(1):
                views = [prepare_view(read_image(p), size)[:1] for p in real]
            per_view = (time.perf_counter() - start) / len(real)
            # the same images as 12-bit uncompressed DICOM, the common real-data format
            dicoms = [Path(tmp) / f"{p.stem}.dcm" for p in real]
            for p, d in zip(real, dicoms, strict=True):
                write_dicom(d, read_image(p))
            start = time.perf_counter()
            with threadpoolctl.threadpool_limits(1):
                for d in dicoms:
                    prepare_view(read_image(d), size)
            per_dicom = (time.perf_counter() - start) / len(dicoms)
            # as preparation stores them: the image channel as uint16
            paper = _store_figures({"cc": np.stack(views)}, 1, Path(tmp) / "paper", "uint16")
            # a breast is two views: per-breast rates are half the per-view ones
            paper.update(views=len(real), prepare_breasts_s=1 / per_view / 2,
                         prepare_dicom_breasts_s=1 / per_dicom / 2,
                         zarr_breasts_s=paper["zarr_breasts_s"] / 2,
                         reader_breasts_s=paper["reader_breasts_s"] / 2,
                         npy_breasts_s=paper["npy_breasts_s"] / 2,
                         raw_per_breast=2 * paper["raw_per_breast"] * 3,
                         stored_per_breast=2 * paper["stored_per_breast"])
            paper["threads"] = math.ceil(rate / paper["reader_breasts_s"])
            # the codecs on the image channel as stored (uint16), CC standing in for MLO
            paper["codecs"] = bench_codecs(
                [{"cc": u, "mlo": u} for u in
                 (np.round(v * store.IMAGE_SCALE).astype(np.uint16) for v in views)], rate)
            out["paper"] = paper
            shutil.rmtree(Path(tmp) / "paper")
    return out


def matmul_gflops(n: int = 2048) -> float:
    """fp32 n^3 matmul rate in this process: the machine's practical compute peak."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 * _rate(lambda: a @ b, min_seconds=2.0) / 1e9


def bench_training(batch: int = 8, size: tuple[int, int] = (256, 192)) -> dict:
    """Uni-view ResNet-22 training steps (forward, backward, Adam) at 256x192, batch 8:
    images/s and GFLOP/s of train.py's step (channels_last, fused Adam) against a plain
    NCHW eager step (default Adam)."""
    out = {}
    for layout in ("nchw", "channels_last"):
        torch.manual_seed(0)
        model = UniView("cc")
        x = {"cc": torch.randn(batch, 3, *size)}
        if layout == "channels_last":
            model = model.to(memory_format=torch.channels_last)
            x = to_device(x, torch.device("cpu"))
        y = torch.randint(0, 2, (batch, 2))
        opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=layout == "channels_last")

        def step(model=model, x=x, y=y, opt=opt):
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            opt.step()

        with FlopCounterMode(display=False) as counter:
            step()
        steps = _rate(step, min_seconds=4.0, warmup=2)
        out[layout] = {"images_s": steps * batch, "gflops": steps * counter.get_total_flops() / 1e9}
    return out


def bench_conv_bound(batch: int = 8, size: tuple[int, int] = (256, 192)) -> dict:
    """An upper bound for the training step: each of ResNet-22's convolutions alone
    (forward and backward, the input gradient too except at the stem), timed in isolation
    on its own input shape and summed, per layout. BatchNorm, ReLU, pooling, the adds, the
    noise layer and Adam cost extra, so no step can beat these rates."""
    inputs = []
    model = UniView("cc")
    hooks = [m.register_forward_hook(lambda m, i, o: inputs.append((m, i[0].shape)))
             for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    model({"cc": torch.randn(batch, 3, *size)})
    for h in hooks:
        h.remove()
    out = {}
    for layout in ("nchw", "channels_last"):
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        seconds = flops = 0.0
        for i, (conv, shape) in enumerate(inputs):
            conv = conv.to(memory_format=fmt)
            x = torch.randn(shape).contiguous(memory_format=fmt).requires_grad_(i > 0)
            grad = torch.randn_like(conv(x))

            def step(conv=conv, x=x, grad=grad):
                conv.zero_grad(set_to_none=True)
                x.grad = None
                conv(x).backward(grad)

            with FlopCounterMode(display=False) as counter:
                step()
            seconds += 1 / _rate(step, min_seconds=0.3, warmup=2)
            flops += counter.get_total_flops()
        out[layout] = {"seconds": seconds, "gflops": flops / seconds / 1e9}
    return out


def bench_dynamics() -> dict:
    """Cost of the instruments at the laptop size: per-iteration gradient norms against a
    plain Joint ResNet step, and one regular epoch's worth of the paper's LCA runs (Appendix
    A: ten shrunken epochs of 10% of the exams, windows of k iterations, the loss measured on
    each shrunken epoch's own sample, Simpson refined up to 32 sub-intervals while
    |error| > 1e-3) against the same shrunken epochs with LCA off, at the paper's LCA
    learning rate (1e-5) and at 1e-4 (its Figure 6); at 1e-4 also with refinement off (RK4
    only), which shows what the refinement costs."""
    from mvlib.study import training_dynamics

    data = prepare("synthetic", "laptop", progress=False)
    batch = next(iter(train_loader(data, seed=0)))
    x = to_device(to_model_input(batch, torch.device("cpu"), augment=False), torch.device("cpu"))
    model = JointResNet().to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
    groups = model.param_groups()

    def step(norms: bool):
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), batch["labels"]).backward()
        if norms:
            group_grad_norms(groups)
        opt.step()

    # Interleaved best-of-5: a few percent is within this machine's run-to-run noise.
    plain = with_norms = 0.0
    for _ in range(5):
        plain = max(plain, _rate(lambda: step(False), min_seconds=2.0, warmup=2))
        with_norms = max(with_norms, _rate(lambda: step(True), min_seconds=2.0, warmup=2))
    setup = training_dynamics.lca_setup(profiles.get("laptop"))
    shrunk = dict(epoch_fraction=setup["epoch_fraction"], val_every=setup["val_every"],
                  epochs=setup["val_every"])  # one regular epoch's worth, validated once
    lca_on = {"lca_every": setup["lca_every"]}
    seconds, records = {}, {}
    with tempfile.TemporaryDirectory() as store:
        # Untimed warm-up: the first run in a process also pays for loading the data set.
        train(RunConfig(model="joint", lr=1e-5, epochs=1, profile="laptop", tta_windows=1,
                        seed=1, experiment="bench"), store)
        for lr, name, kw in ((1e-5, "off", {}), (1e-5, "lca", lca_on),
                             (1e-4, "off", {}), (1e-4, "lca", lca_on),
                             (1e-4, "rk4", {**lca_on, "lca_max_splits": 2})):
            cfg = RunConfig(model="joint", lr=lr, profile="laptop", tta_windows=1,
                            experiment="bench", **shrunk, **kw)
            start = time.perf_counter()
            run = train(cfg, store)
            seconds[lr, name] = time.perf_counter() - start
            if cfg.lca_every:
                records[lr, name] = run.dynamics("lca")
    lca_cost = {}
    for lr in (1e-5, 1e-4):
        w = records[lr, "lca"]  # each window also records its unrefined RK4 level
        lca_cost[lr] = {"ratio": seconds[lr, "lca"] / seconds[lr, "off"],
                        "splits": w.splits.tolist(),
                        "max_error": w.error.abs().max(),
                        "rk4_max_error": w[f"{RK4}error"].abs().max(),
                        "mlo_share": mlo_share(w), "rk4_mlo_share": mlo_share(w, RK4)}
    # Gradient evaluations of the epoch's whole sample per breast trained, at RK4: a
    # shrunken epoch of n iterations in windows of k costs 1 + 2 ceil(n / k) of them.
    n = len(train_loader(data, 0, fraction=setup["epoch_fraction"]))
    evaluations = 1 + 2 * -(-n // setup["lca_every"])
    return {"norm_slowdown": plain / with_norms - 1, "lca": lca_cost, "k": setup["lca_every"],
            "iterations": n, "evaluations": evaluations,
            "rk4_ratio": seconds[1e-4, "rk4"] / seconds[1e-4, "off"]}


def main(out: Path | None = None) -> list[str]:
    """Run every benchmark, print one line per figure and write the lines with the raw
    numbers to `out` (default figures/bench.json), which the README's measurements are
    rendered from (`mvlib.tools.readme`)."""
    torch.manual_seed(0)
    lines: list[str] = []

    def say(line: str) -> None:  # each figure printed, and kept for the record
        print(line, flush=True)
        lines.append(line)

    g = bench_generator()
    verdict = "met" if g["build"] >= GENERATOR_TARGET else "NOT met"
    say(f"generator @256x192: {g['one_thread']:.0f} breasts/s in memory on one thread; "
        f"building a data set on disk (2 worker processes, writes included): "
        f"{g['build']:.0f} breasts/s "
        f"= {g['build'] / GENERATOR_TARGET:.2f}x the {GENERATOR_TARGET:.0f}/s target ({verdict})")
    r = bench_loader_vs_training()
    verdict = "met" if r["ratio"] >= LOADER_TARGET else "NOT met"
    say(f"loader @laptop size, batch 4: {r['loader']:.1f} batches/s; Joint ResNet "
        f"training: {r['train']:.1f} batches/s; loader/training = {r['ratio']:.1f}x "
        f"(target >= {LOADER_TARGET:.0f}x: {verdict})")
    st = bench_store()
    lap = st["laptop"]
    say(f"store @laptop size: {lap['stored_per_breast'] / 1e3:.0f} kB a breast stored against "
        f"{lap['raw_per_breast'] / 1e3:.0f} kB raw float16 ({lap['ratio']:.2f}x smaller); "
        f"one thread reads {lap['zarr_breasts_s']:.0f} breasts/s one by one from it, "
        f"{lap['npy_breasts_s']:.0f}/s from raw .npy memory maps "
        f"({lap['zarr_breasts_s'] / lap['npy_breasts_s']:.2f}x); data sets this small are "
        "decoded into memory when opened")
    full = st["paper_synthetic"]
    threads, procs = full["loader_breasts_s"]["threads"], full["loader_breasts_s"]["processes"]
    verdict = "met" if full["cores_for_gpu"] <= CORES_TARGET else "NOT met"
    say(f"store @paper's size, four full-size synthetic breasts (3 channels, float16): "
        f"{full['stored_per_breast'] / 1e6:.1f} MB a breast stored against "
        f"{full['raw_per_breast'] / 1e6:.1f} MB raw ({full['ratio']:.2f}x smaller); one "
        f"thread reads {full['reader_breasts_s']:.1f} breasts/s straight from the shards into "
        f"a batch's buffers, {full['zarr_breasts_s']:.1f} through zarr (raw .npy "
        f"{full['npy_breasts_s']:.1f}), the codec alone decodes "
        f"{full['codec_breasts_s']:.1f}; the loader delivers {threads[1]:.1f} and "
        f"{threads[2]:.1f} breasts/s with 1 and 2 threads, DataLoader worker processes "
        f"{procs[1]:.1f} and {procs[2]:.1f}; a GPU training at {st['gpu_rate']:.0f} "
        f"breasts/s ({st['gpu_rate_source']}) needs {full['threads']} loader threads at the "
        f"one-thread rate (cores_for_gpu {full['cores_for_gpu']:.1f}, target <= "
        f"{CORES_TARGET}: {verdict}; one thread keeps {full['loader_decode_ratio']:.0%} of "
        "the codec's rate: loader_decode_ratio)")
    say("  codecs on those breasts, one thread, the codec alone (stored size; decode; cores "
        f"for {st['gpu_rate']:.0f} breasts/s): " + "; ".join(
            f"{c['codec']} {c['ratio']:.2f}x, {c['decode_mb_s']:.0f} MB/s, "
            f"{c['cores_for_gpu']:.1f}" for c in full["codecs"]))
    if "paper" in st:
        pp = st["paper"]
        say(f"store @paper's CC size, {pp['views']} real sample mammograms (image channel): "
              f"{pp['ratio']:.2f}x smaller than raw float16; one thread reads "
              f"{pp['reader_breasts_s']:.1f} breasts/s (two views) straight into a batch's "
              f"buffers as uint16, {pp['zarr_breasts_s']:.1f} through zarr as float32 ("
              f"{pp['zarr_mb_s']:.0f} MB/s; raw .npy: {pp['npy_breasts_s']:.1f}); a breast "
              f"with heatmaps is "
              f"{pp['raw_per_breast'] / 1e6:.0f} MB raw, about "
              f"{(pp['raw_per_breast'] / pp['ratio']) / 1e6:.0f} MB stored if the heatmaps "
              f"compress like the image; preparing from PNG: {pp['prepare_breasts_s']:.2f} "
              f"breasts/s a core, from 12-bit DICOM: {pp['prepare_dicom_breasts_s']:.2f}; "
              f"a GPU at {st['gpu_rate']:.0f} breasts/s needs {pp['threads']} loader "
              f"thread{'s' if pp['threads'] != 1 else ''} for images alone")
        say("  codecs on those images (uint16), one thread, the codec alone (stored size; "
            "decode): " + "; ".join(f"{c['codec']} {c['ratio']:.2f}x, {c['decode_mb_s']:.0f} "
                                    "MB/s" for c in pp["codecs"]))
    else:
        say("store @paper's size: not measured (no real sample mammograms at "
              f"{paths.realdata() / 'nyu_sample'})")
    h = heatmap_rate()
    say(f"heatmap producer @paper's CC crop ({h['shape'][0]}x{h['shape'][1]}, "
        f"{h['patches_per_image']} patches of 256 px), DenseNet-121 with random weights, "
        f"{torch.get_num_threads()} threads: {h['patches_s']:.1f} patches/s, averaging "
        f"{h['average_s']:.2f} s an image: {h['images_s'] * 3600:.0f} images an hour; "
        f"RSNA's {h['rsna_images']:,} training images: {h['rsna_hours']:,.0f} hours of "
        "this CPU (a GPU: `make gpu-check`)")
    peak = matmul_gflops()
    t = bench_training()
    ours, base = t["channels_last"], t["nchw"]
    say(f"training ResNet-22 @256x192, batch 8, {torch.get_num_threads()} threads: "
        f"{ours['images_s']:.1f} img/s channels_last ({ours['gflops']:.0f} GFLOP/s = "
        f"{ours['gflops'] / peak:.0%} of a {peak:.0f} GFLOP/s fp32 matmul), "
        f"{base['images_s']:.1f} img/s NCHW baseline -> "
        f"{ours['images_s'] / base['images_s']:.2f}x")
    c = bench_conv_bound()
    cl, nchw = c["channels_last"], c["nchw"]
    say(f"  bound: its convolutions alone (oneDNN, each in isolation) run at "
        f"{cl['gflops']:.0f} GFLOP/s = {cl['gflops'] / peak:.0%} of the matmul in "
        f"channels_last, {nchw['seconds'] / cl['seconds']:.2f}x their NCHW time; the "
        f"convolutions are {cl['seconds'] / (8 / ours['images_s']):.0%} of the step")
    d = bench_dynamics()
    say(f"gradient norms every iteration: {d['norm_slowdown']:+.1%} step time (target < 5%)")
    say(f"LCA runs (Appendix A) at the laptop size: shrunken epochs of {d['iterations']} "
        f"iterations, windows of k = {d['k']}: at RK4 each shrunken epoch evaluates the loss "
        f"and its gradient on its whole sample {d['evaluations']} times")
    for lr, run in d["lca"].items():
        counts = dict(sorted(Counter(run["splits"]).items()))
        say(f"shrunken epochs at lr {lr:g} with online LCA: {run['ratio']:.2f}x the time "
            f"without; Simpson sub-intervals per window {counts}; max |error| "
            f"{run['max_error']:.4f} (RK4 alone {run['rk4_max_error']:.4f}); MLO share of the "
            f"reduction {run['mlo_share']:.1%} (RK4 alone {run['rk4_mlo_share']:.1%})")
    say(f"  lr 1e-4 with refinement off (RK4 only, lca_max_splits=2): {d['rk4_ratio']:.2f}x")
    record = {"date": datetime.date.today().isoformat(), "machine": machine(), "lines": lines,
              "results": {"generator": g, "loader": r, "store": st, "heatmaps": h,
                          "matmul_gflops": peak, "training": t, "convolutions": c,
                          "dynamics": d}}
    write_atomic(out or BENCH_RECORD, lambda p: p.write_text(
        json.dumps(record, indent=1, default=_plain) + "\n"))
    return lines


def _plain(x):
    """JSON for what the benchmarks return beside plain numbers (numpy scalars; anything
    else as its text)."""
    return x.item() if hasattr(x, "item") else str(x)

if __name__ == "__main__":
    main()
