"""The device agreement check (mvlib.engine.agreement) on the CPU, fp32 against fp64: it
passes on the real model at a trained checkpoint and fails on each injected fault."""

import copy

import pytest
import torch

from mvlib.data.loader import VIEWS, BreastArrays
from mvlib.data.windows import full_window
from mvlib.engine import agreement
from mvlib.engine.train import train
from mvlib.experiment.prepare import prepare
from mvlib.experiment.runs import RunConfig
from mvlib.models.heads import JointResNet, OutputLayer

FP32 = agreement.Setting("cpu", "fp32")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A Joint ResNet trained 3 smoke epochs (at initialisation BatchNorm's gradients are
    ill-conditioned: fp32 alone moves some by percents), a training batch and the data."""
    store = tmp_path_factory.mktemp("store")
    run = train(RunConfig(model="joint", lr=3e-4, epochs=3, profile="smoke", tta_windows=1,
                          experiment="agreement"), store)
    model = JointResNet()
    model.load_state_dict(run.load("best.pt"))
    data = prepare("synthetic", "smoke", progress=False)
    items = BreastArrays(data, 3)
    batch = items.batch(data.indices("train")[:4])
    x = {v: full_window(batch[v].float()) for v in VIEWS}
    return model, x, batch["labels"], data


@pytest.fixture(scope="module")
def reference(trained):
    model, x, y, _ = trained
    return agreement.step_outputs(model, x, y, agreement.REFERENCE)


def test_fp32_agrees_with_fp64_on_the_real_model(trained, reference):
    model, x, y, data = trained
    step = agreement.compare_steps(agreement.step_outputs(model, x, y, FP32), reference, "fp32")
    assert step["within"], step
    assert step["parameters_compared"] > 100 and step["missing_gradients"] == []
    assert step["logits"] < 1e-5 and step["grads"] < agreement.TOLERANCES["fp32"]["grads"]
    ckpt = agreement.compare_checkpoint(model, data, FP32)
    assert ckpt["within"] and ckpt["auc"] == pytest.approx(ckpt["auc_reference"])
    assert agreement.check(model, x, y, [FP32])["within"]


class BF16Logits(OutputLayer):
    def forward(self, h):
        return super().forward(h).bfloat16().float()


class Frozen(torch.nn.BatchNorm2d):
    """A BatchNorm that stays in eval mode: running statistics, never the batch's."""

    def train(self, mode: bool = True):
        return super().train(False)


def _padded(m):
    m.cc.column.first_conv.padding = (1, 1)


def _bn_not_updated(m):
    for mod in m.modules():
        if type(mod) is torch.nn.BatchNorm2d:
            mod.__class__ = Frozen


def _bf16_logits(m):
    m.output.__class__ = BF16Logits


@pytest.mark.parametrize("fault, expect", [(_padded, "logits"), (_bn_not_updated, "logits"),
                                           (_bf16_logits, "logits")])
def test_an_injected_fault_fails_the_check(trained, reference, fault, expect):
    model, x, y, _ = trained
    faulty = copy.deepcopy(model)
    fault(faulty)
    r = agreement.compare_steps(agreement.step_outputs(faulty, x, y, FP32), reference, "fp32")
    assert not r["within"], r
    assert r[expect] > agreement.TOLERANCES["fp32"][expect]


def test_swapped_views_fail_the_check(trained, reference):
    model, x, y, _ = trained
    swapped = {"cc": x["mlo"], "mlo": x["cc"]}
    r = agreement.compare_steps(agreement.step_outputs(model, swapped, y, FP32), reference,
                                "fp32")
    assert not r["within"] and r["logits"] > 1e-2


def test_a_parameter_without_its_gradient_fails_the_check(trained, reference):
    model, x, y, _ = trained
    frozen = copy.deepcopy(model)
    frozen.output.bias.requires_grad_(False)
    r = agreement.compare_steps(agreement.step_outputs(frozen, x, y, FP32), reference, "fp32")
    assert not r["within"] and r["missing_gradients"] == ["output.bias"]
