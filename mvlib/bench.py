"""`make bench`: throughput figures, each measured beside its baseline in this process.

- generator: synthetic breasts per second at 256x192 (target >= 200), in memory and as a
  full data-set build including the writes;
- loader vs training: batches per second the loader delivers (epoch sampler, windows,
  standardisation) against batches per second a two-column ResNet-22 trains on, both at the
  laptop size and the paper's batch size 4 (target: loader >= 5x).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time

import threadpoolctl
import torch

from mvlib import profiles
from mvlib.data.loader import to_model_input, train_loader
from mvlib.data.prepare import prepare
from mvlib.models.resnet22 import resnet22
from mvlib.synth.generate import CHUNK, generate_chunk, generate_dataset

GENERATOR_TARGET = 200.0
LOADER_TARGET = 5.0


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


class _TwoColumns(torch.nn.Module):
    """Two ResNet-22 columns, pooled, summed and classified: the cost of a two-view step."""

    def __init__(self, channels: int = 3):
        super().__init__()
        self.cc, self.mlo = resnet22(channels), resnet22(channels)
        self.fc_cc, self.fc_mlo = torch.nn.Linear(256, 512), torch.nn.Linear(256, 512)
        self.out = torch.nn.Linear(512, 2)

    def forward(self, cc: torch.Tensor, mlo: torch.Tensor) -> torch.Tensor:
        h = (torch.relu(self.fc_cc(self.cc(cc).mean((2, 3))))
             + torch.relu(self.fc_mlo(self.mlo(mlo).mean((2, 3)))))
        return self.out(h)


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
    model = _TwoColumns().to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = load_step()
    cc = x["cc"].contiguous(memory_format=torch.channels_last)
    mlo = x["mlo"].contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (len(cc), 2)).float()

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(cc, mlo), y)
        loss.backward()
        opt.step()

    train = _rate(train_step, warmup=3)
    return {"loader": load, "train": train, "ratio": load / train}


def main() -> None:
    torch.manual_seed(0)
    g = bench_generator()
    verdict = "met" if g["build"] >= GENERATOR_TARGET else "NOT met"
    print(f"generator @256x192: {g['one_thread']:.0f} breasts/s in memory on one thread; "
          f"building a data set on disk (2 worker processes, writes included): "
          f"{g['build']:.0f} breasts/s "
          f"= {g['build'] / GENERATOR_TARGET:.2f}x the {GENERATOR_TARGET:.0f}/s target ({verdict})")
    r = bench_loader_vs_training()
    verdict = "met" if r["ratio"] >= LOADER_TARGET else "NOT met"
    print(f"loader @laptop size, batch 4: {r['loader']:.1f} batches/s; two-column ResNet-22 "
          f"training: {r['train']:.1f} batches/s; loader/training = {r['ratio']:.1f}x "
          f"(target >= {LOADER_TARGET:.0f}x: {verdict})")


if __name__ == "__main__":
    main()
