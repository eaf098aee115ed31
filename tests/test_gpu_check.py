"""The GPU check runs where no GPU is lent: on the CPU, at a reduced size, fp32 only."""

import torch

from mvlib.tools import gpu_check


def test_the_gpu_check_measures_on_the_cpu_at_a_reduced_size(tmp_path):
    cpu = torch.device("cpu")
    t = gpu_check.training(cpu, scale=0.03, seconds=0.3)
    assert "bf16" not in t and t["fp32"]["steps_s"] > 0 and t["fp32"]["tflops"] > 0
    assert t["fp32"]["images_s"] == 2 * t["batch"] * t["fp32"]["steps_s"]
    r = gpu_check.tta(cpu, scale=0.03, windows=2, batch=2, seconds=0.3)
    assert r["test_set_minutes"] == r["test_breasts"] / r["breasts_s"] / 60
    a = gpu_check.agreement(tmp_path, cpu)  # fp32 against fp64 at a trained checkpoint
    assert a["within"] and set(a) == {"profile", "tolerances", "cpu fp32", "within",
                                      "uint16_conversion_exact"}
    assert a["uint16_conversion_exact"]
    assert a["cpu fp32"]["step"]["within"] and a["cpu fp32"]["checkpoint"]["within"]


def test_peaks_and_the_paper_sweep_in_gpu_hours():
    assert gpu_check.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0  # the SXM part
    assert gpu_check.peak_tflops("NVIDIA H200") == 989.0
    assert gpu_check.peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert gpu_check.peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert gpu_check.peak_tflops("Quadro K620") is None
    epochs = gpu_check.paper_sweep_epochs()
    assert epochs.runs.sum() == 60 + 90 + 60 + 60 + 60 + 18 + 60 + 30
    hours = gpu_check.gpu_hours(steps_s=1.0)
    assert hours == epochs["joint epochs"].sum() * gpu_check.ITERATIONS_PER_EPOCH / 3600


def test_the_data_path_section_runs_on_the_cpu_at_a_reduced_size(tmp_path):
    d = gpu_check.data_path(torch.device("cpu"), tmp_path, scale=0.03, patients=2,
                            threads=(1, 2), seconds=0.3)
    assert d["breasts"] == 4 and set(d["loader_breasts_s"]) == {1, 2}
    assert all(r > 0 for r in d["loader_breasts_s"].values()) and d["loader_threads"] == 2
    assert d["fed_share"] == d["train_from_loader_steps_s"] / d["train_on_device_steps_s"]


def test_runs_sharing_a_device_and_the_step_variants_measure_on_the_cpu():
    cpu = torch.device("cpu")
    shared = gpu_check.shared_gpu(cpu, scale=0.03, ks=(1, 2), batch=2, seconds=0.3)
    assert set(shared["by_k"]) == {1, 2} and shared["best_k"] in (1, 2)
    two = shared["by_k"][2]
    assert len(two["steps_s_each"]) == 2 and two["breasts_s"] == 2 * sum(two["steps_s_each"])
    assert shared["paper_sweep_gpu_hours_at_best_k"] is None  # not at the paper's size
    v = gpu_check.step_variants(cpu, scale=0.03, batch=2, seconds=0.3)
    assert set(v) == {"default_steps_s", "contiguous"} and v["contiguous"] > 0
