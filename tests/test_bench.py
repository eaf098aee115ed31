"""`make bench`'s pieces run (their figures are machine-dependent and not asserted)."""

import json

import numpy as np
import pytest

from mvlib.tools import bench


def test_conv_bound_times_every_convolution_in_both_layouts(monkeypatch):
    timed = []
    real_rate = bench._rate

    def rate(step, min_seconds=3.0, warmup=1):
        timed.append(step)
        return real_rate(step, min_seconds=0.01, warmup=0)

    monkeypatch.setattr(bench, "_rate", rate)
    out = bench.bench_conv_bound(batch=2, size=(64, 48))
    assert len(timed) == 2 * 26  # 26 convolutions in ResNet-22 (stem, 20 in blocks, 5 projections)
    for layout in ("nchw", "channels_last"):
        assert out[layout]["seconds"] > 0 and out[layout]["gflops"] > 0


def test_store_figures_compare_the_store_with_raw_float16(tmp_path, monkeypatch):
    import numpy as np

    real_rate = bench._rate
    monkeypatch.setattr(bench, "_rate", lambda step, min_seconds=3.0, warmup=1:
                        real_rate(step, min_seconds=0.01, warmup=0))
    rng = np.random.default_rng(0)
    image = np.zeros((16, 3, 32, 24), np.float16)
    image[:, 0, 8:24, :12] = rng.random((16, 16, 12))  # a breast on a dark background
    out = bench._store_figures({"cc": image, "mlo": image[:, :, :30]}, 8, tmp_path / "s")
    assert out["raw_per_breast"] == (3 * 32 * 24 + 3 * 30 * 24) * 2
    assert out["ratio"] > 1  # the dark background compresses
    assert out["zarr_breasts_s"] > 0 and out["npy_breasts_s"] > 0
    assert out["reader_breasts_s"] > 0  # the loader's read, straight into buffers


@pytest.mark.parametrize("processes", [False, True])
def test_the_loader_is_measured_with_threads_and_with_worker_processes(tmp_path, processes):
    import dataclasses

    from mvlib.data.store import BreastDataset
    from mvlib.experiment import profiles
    from mvlib.synth.generate import generate_dataset

    cfg = dataclasses.replace(profiles.get("smoke").synthetic_config(),
                              patients={"train": 4, "val": 0, "test": 0})
    data = BreastDataset.open(generate_dataset(cfg, tmp_path, progress=False).root,
                              in_memory=False)
    assert bench.loader_breasts_s(data, 2, batch=2, seconds=0.2, processes=processes) > 0
    assert bench.STORE_CODEC in [f"{c} {lv} {sh}" for c, lv, sh in bench.CODECS]


def test_the_gpu_rate_comes_from_the_recorded_gpu_check(tmp_path, monkeypatch):
    rate, source = bench.gpu_rate()
    record = json.loads(bench.GPU_RECORD.read_text())
    assert rate == 4 * record["run3"]["data_path"]["train_on_device_steps_s"]
    assert record["date"] in source
    monkeypatch.setattr(bench, "GPU_RECORD", tmp_path / "none.json")
    assert bench.gpu_rate() == (bench.ASSUMED_GPU_RATE, "assumed")


def test_the_heatmap_producers_rate_adds_up():
    h = bench.heatmap_rate("cpu", shape=(400, 330), batches=1, grid=(2, 2))
    assert h["patches_per_image"] == 4 * 3 and h["patches_s"] > 0 and h["average_s"] > 0
    per_image = h["patches_per_image"] / h["patches_s"] + h["average_s"]
    assert h["images_s"] == 1 / per_image
    assert h["rsna_hours"] == bench.RSNA_IMAGES * per_image / 3600


def test_the_codec_table_measures_each_setting_on_whole_breasts():
    rng = np.random.default_rng(0)
    smooth = np.cumsum(rng.normal(size=(2, 3, 64, 48)), axis=-1).astype(np.float16)
    breasts = [{"cc": smooth[0], "mlo": smooth[1]}]
    rows = bench.bench_codecs(breasts, gpu_breasts_s=90.0, seconds=0.05)
    assert [r["codec"] for r in rows] == [f"{c} {lv} {sh}" for c, lv, sh in bench.CODECS]
    raw = smooth.nbytes
    for r in rows:
        assert r["ratio"] == pytest.approx(raw / (r["stored_mb"] * 1e6))
        assert r["cores_for_gpu"] == pytest.approx(90.0 / r["decode_breasts_s"])
        assert r["decode_mb_s"] == pytest.approx(r["decode_breasts_s"] * raw / 1e6)
