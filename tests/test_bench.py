"""`make bench`'s pieces run (their figures are machine-dependent and not asserted)."""

from mvlib import bench


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
