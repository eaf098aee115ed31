"""The paper's heads on ResNet-22 columns: shapes, parameter groups, fusion, noise."""

import pytest
import torch

from mvlib.models.heads import (
    MODELS,
    InputNoise,
    JointResNet,
    OutputLayer,
    SharedResNet,
    SplitResNet,
    UniView,
    build_model,
    loss_fn,
)
from mvlib.models.resnet22 import resnet22

COLUMN = sum(p.numel() for p in resnet22(3).parameters())
FC, OUT = 256 * 512 + 512, 512 * 2 + 2


def views(b=2, c=3):
    g = torch.Generator().manual_seed(0)
    return {"cc": torch.randn(b, c, 64, 48, generator=g),
            "mlo": torch.randn(b, c, 72, 42, generator=g)}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("channels", [1, 3])
def test_every_model_gives_two_logits_per_breast(name, channels):
    model = build_model(name, channels).eval()
    out = model(views(c=channels))
    assert out.shape == (2, 2) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_groups_partition_the_parameters(name):
    model = build_model(name)
    names = model.group_names()
    assert set(names) == {"cc", "mlo", "shared"}
    flat = [n for group in names.values() for n in group]
    assert sorted(flat) == sorted(n for n, _ in model.named_parameters())
    assert len(flat) == len(set(flat))


def test_group_sizes_follow_the_paper():
    def size(model, g):
        return sum(p.numel() for p in model.param_groups()[g])
    joint = JointResNet()
    assert size(joint, "cc") == size(joint, "mlo") == COLUMN + FC
    assert size(joint, "shared") == OUT
    shared = SharedResNet()
    assert size(shared, "cc") == size(shared, "mlo") == FC
    assert size(shared, "shared") == COLUMN + OUT
    split = SplitResNet()
    assert size(split, "cc") == size(split, "mlo") == COLUMN + FC + OUT
    assert size(split, "shared") == 0
    uni = UniView("mlo")
    assert size(uni, "mlo") == COLUMN + FC and size(uni, "cc") == 0


def test_joint_fuses_by_summing_view_representations():
    model = JointResNet().eval()
    x = views()
    h = model.representations(x)
    assert torch.allclose(model(x), model.output(h["cc"] + h["mlo"]))
    # Changing one view changes the output through that view's column only.
    x2 = {"cc": x["cc"], "mlo": x["mlo"] + 1}
    h2 = model.representations(x2)
    assert torch.equal(h["cc"], h2["cc"]) and not torch.equal(h["mlo"], h2["mlo"])


def test_shared_uses_one_column_for_both_views():
    model = SharedResNet().eval()
    x = views()
    feats = model.column(x["cc"]).mean(dim=(2, 3))
    assert torch.allclose(model.representations(x)["cc"], torch.relu(model.fc_cc(feats)))
    assert not hasattr(model, "cc")


def test_split_predicts_the_mean_of_its_two_models():
    model = SplitResNet().eval()
    x = views()
    mean = (torch.sigmoid(model.cc(x)) + torch.sigmoid(model.mlo(x))) / 2
    assert torch.allclose(torch.sigmoid(model(x)), mean, atol=1e-6)


def test_uniview_reads_only_its_view():
    model = UniView("cc").eval()
    x = views()
    y = model(x)
    assert torch.equal(y, model({"cc": x["cc"], "mlo": torch.zeros(1)}))
    with pytest.raises(ValueError):
        UniView("lateral")


def test_input_noise_only_in_training():
    noise = InputNoise(0.01)
    x = torch.zeros(1000)
    assert torch.equal(noise.eval()(x), x)
    std = noise.train()(x).std().item()
    assert 0.008 < std < 0.012


def test_loss_is_the_sum_of_two_cross_entropies():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.0]])
    labels = torch.tensor([[1, 0], [0, 1]])
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = bce(logits[:, 0], labels[:, 0].float()) + bce(logits[:, 1], labels[:, 1].float())
    assert torch.isclose(loss_fn(logits, labels), expected)


def test_unknown_model_name():
    with pytest.raises(ValueError, match="joint"):
        build_model("late_fusion")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_scores_stay_fp32_under_bf16_autocast(name):
    """Under autocast (bf16 on CUDA; checked here with the CPU's) every head's logits come
    out of an fp32 output layer."""
    torch.manual_seed(0)
    model = build_model(name).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = model.heads(views(4)) if hasattr(model, "heads") else {"joint": model(views(4))}
    for head, logits in outputs.items():
        assert logits.dtype == torch.float32, head


def test_the_output_layer_does_not_tie_bf16_representations():
    """bf16 logits (8 bits of mantissa) tie the scores that AUCs rank; the fp32 output layer
    keeps 400 different representations apart, where a plain Linear under autocast does not."""
    torch.manual_seed(0)
    h = (0.5 + 0.01 * torch.randn(400, 512)).to(torch.bfloat16)  # a bf16 column's output
    layer = OutputLayer(512, 2)
    plain = torch.nn.Linear(512, 2)
    plain.load_state_dict(layer.state_dict())
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        ours, theirs = layer(h), plain(h)
    assert ours.dtype == torch.float32 and theirs.dtype == torch.bfloat16
    assert len(torch.unique(ours[:, 0])) == 400
    assert len(torch.unique(theirs[:, 0])) < 200
