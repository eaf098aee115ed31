"""The heatmap producer of Wu et al. 2019a (mvlib.data.heatmaps, mvlib.models.patch_densenet)
against hand-computed cases and a loop written from the method's description; no published
weights needed (random ones, or a stand-in classifier whose outputs are known)."""

from __future__ import annotations

import random
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from mvlib.data import heatmaps as hm
from mvlib.models import patch_densenet as pd121


def test_same_padding_puts_the_larger_half_after():
    assert pd121.same_padding(256, 7, 2) == (2, 3)  # the stem's conv on a patch
    assert pd121.same_padding(128, 3, 2) == (0, 1)  # its max-pool
    assert pd121.same_padding(5, 3, 2) == (1, 1)  # odd size: kernel - size % stride
    assert pd121.same_padding(64, 3, 1) == (1, 1)
    assert pd121.same_padding(64, 1, 1) == (0, 0)


@pytest.mark.parametrize("size, expected", [
    # 3x3 ones, stride 2, on ones: each output counts the input pixels its window covers
    (5, [[4, 6, 4], [6, 9, 6], [4, 6, 4]]),  # padded 1 before, 1 after
    (6, [[9, 9, 6], [9, 9, 6], [6, 6, 4]]),  # padded 0 before, 1 after
])
def test_a_padded_conv_counts_what_tensorflow_same_covers(size, expected):
    conv = pd121.pad_same(nn.Conv2d(1, 1, 3, 2, padding=1, bias=False))
    nn.init.ones_(conv.weight)
    out = conv(torch.ones(1, 1, size, size))
    assert out[0, 0].tolist() == expected


def test_the_patch_classifier_keeps_torchvisions_names_and_gives_four_classes():
    from torchvision.models import densenet121

    model = pd121.patch_classifier().eval()
    assert list(model.state_dict()) == list(densenet121(num_classes=4).state_dict())
    with torch.no_grad():
        features = model.features(torch.zeros(2, 3, 256, 256))
        assert features.shape == (2, 1024, 8, 8)  # 256 / 32, as with TF's SAME
        assert model(torch.zeros(2, 3, 256, 256)).shape == (2, 4)


@pytest.mark.parametrize("length, strides", [
    (256, []),  # one patch
    (326, [70]),  # the stride tiles it exactly
    (300, [44]),  # a second patch ends at the border
    (400, [48, 48, 48]),  # 144 px: 3 steps, overlap 66 spread evenly
])
def test_stride_lists_by_hand(length, strides):
    assert hm.stride_list(length, random.Random(0)) == strides


def test_the_shorter_steps_sit_where_pythons_random_sample_puts_them():
    # 510 px: 254 px to cover in 4 steps (overlap 26): 64 each, two of them 63
    strides = hm.stride_list(510, random.Random(0))
    short = sorted(random.Random(0).sample(range(4), 2))
    assert strides == [63 if i in short else 64 for i in range(4)]


@pytest.mark.parametrize("length", list(range(256, 1400, 7)) + [2677, 1942, 3328])
def test_patches_start_at_zero_end_at_the_border_and_cover_every_pixel(length):
    strides = hm.stride_list(length, random.Random(length))
    starts = hm.origins(strides)
    assert starts[0] == 0 and starts[-1] + hm.PATCH == length
    assert all(0 < s <= hm.STRIDE for s in strides) and len(set(strides)) <= 2
    assert max(strides, default=0) - min(strides, default=0) <= 1
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s:s + hm.PATCH] = True
    assert covered.all()
    assert len(starts) == (length - hm.PATCH) // hm.STRIDE + 1 + bool((length - hm.PATCH)
                                                                       % hm.STRIDE)


def test_an_image_smaller_than_a_patch_is_refused():
    with pytest.raises(ValueError, match="shorter than the patch classifier's 256-px patch"):
        hm.stride_list(200, random.Random(0))


def test_overlap_averaging_by_hand():
    rows, cols = np.array([0, 44]), np.array([0])
    probs = np.array([[0.2], [0.6]], np.float32)
    out = hm.overlap_average(probs, rows, cols, (300, 256))
    assert np.allclose(out[:44], 0.2) and np.allclose(out[44:256], 0.4)
    assert np.allclose(out[256:], 0.6)


class MeanClassifier(nn.Module):
    """A stand-in classifier with known outputs: logits (m, -m, -1, -2) of a patch's mean m;
    it records the batches it is fed (their size and each patch's mean)."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the producer a device
        self.batches: list[torch.Tensor] = []

    def forward(self, x):
        assert x.shape[1:] == (3, 256, 256) and torch.equal(x[:, 0], x[:, 2])
        m = x[:, 0].mean(dim=(1, 2)).double()
        self.batches.append(m)
        return torch.stack([m, -m, -torch.ones_like(m), -2 * torch.ones_like(m)], 1).float()


def reference_loop(image: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, list]:
    """The method as described (Wu et al. 2019a's producer): standardise in float64, draw the
    row then the column steps from one seeded random, visit patches column by column, add
    each patch's probability and a count into float32 maps, divide."""
    x = image.astype(np.float64)
    x = (x - x.mean()) / max(x.std(), 1e-5)
    rng = random.Random(seed)
    rs = hm.origins(hm.stride_list(x.shape[0], rng))
    cs = hm.origins(hm.stride_list(x.shape[1], rng))
    maps = {k: np.zeros(x.shape, np.float32) for k in ("benign", "malignant", "count")}
    means = []
    for c in cs:
        for r in rs:
            m = x[r:r + 256, c:c + 256].astype(np.float32).astype(np.float64).mean()
            means.append(m)
            e = np.exp(np.array([m, -m, -1, -2]) - m)
            p = (e / e.sum()).astype(np.float32)
            maps["malignant"][r:r + 256, c:c + 256] += p[0]
            maps["benign"][r:r + 256, c:c + 256] += p[1]
            maps["count"][r:r + 256, c:c + 256] += 1
    return maps["benign"] / maps["count"], maps["malignant"] / maps["count"], means


def test_heatmaps_match_a_loop_of_the_method_with_a_known_classifier():
    rng = np.random.default_rng(0)
    image = rng.random((700, 530)).astype(np.float32)
    image[200:400, 100:300] += 2  # something for the maps to find
    model = MeanClassifier()
    out = hm.heatmaps(image, model, seed=3)
    benign, malignant, means = reference_loop(image, seed=3)
    assert out.shape == (2, 700, 530) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], benign, atol=1e-6)
    np.testing.assert_allclose(out[1], malignant, atol=1e-6)
    # fed column by column, 100 patches a batch
    assert [len(b) for b in model.batches] == [100] * (len(means) // 100) + \
        ([len(means) % 100] if len(means) % 100 else [])
    np.testing.assert_allclose(torch.cat(model.batches).numpy(), means, atol=1e-5)


def test_the_cache_reuses_an_images_outputs_and_remakes_a_damaged_entry(patch_weights, tmp_path):
    image = np.random.default_rng(1).random((300, 260)).astype(np.float32)
    cache = hm.HeatmapCache(patch_weights, tmp_path, device="cpu")
    first = cache(image)
    assert first.shape == (2, 300, 260) and (first >= 0).all() and (first <= 1).all()
    again = hm.HeatmapCache(patch_weights, tmp_path, device="cpu")
    np.testing.assert_array_equal(again(image), first)
    assert (cache.made, again.made, again.reused) == (1, 0, 1)
    np.testing.assert_allclose(first, hm.heatmaps(image, cache.model()), atol=1e-6)
    entry, = tmp_path.rglob("*.npz")
    entry.write_bytes(entry.read_bytes()[:100])  # a killed copy, say
    with pytest.warns(UserWarning, match="cached heatmap entry unusable"):
        np.testing.assert_array_equal(again(image), first)
    assert again.made == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again(image[::-1].copy())  # another image: a new entry, no warning
    assert len(list(tmp_path.rglob("*.npz"))) == 2


def test_weights_files_that_cannot_be_used_are_named(patch_weights, tmp_path):
    missing = tmp_path / "sample_patch_model.p"
    with pytest.raises(pd121.WeightsError, match=f"{missing}: .*not found.*{pd121.WEIGHTS_URL}"):
        pd121.load_weights(missing)
    cut = tmp_path / "cut.p"
    cut.write_bytes(patch_weights.read_bytes()[:5000])
    with pytest.raises(pd121.WeightsError, match=f"{cut}: cannot read the weights"):
        pd121.load_weights(cut)
    other = tmp_path / "imagenet_densenet.p"
    from torchvision.models import densenet121

    torch.save(densenet121(num_classes=1000).state_dict(), other)
    with pytest.raises(pd121.WeightsError, match=f"{other}: not the weights of a four-class"):
        pd121.load_weights(other)
    with pytest.raises(pd121.WeightsError, match=f"{missing}"):
        hm.HeatmapCache(missing, tmp_path)  # the producer fails up front, naming it


def test_old_torchvision_names_load_as_the_new(patch_weights, tmp_path):
    state = torch.load(patch_weights, weights_only=True)
    old = {k.replace("norm1.", "norm.1.").replace("conv2.", "conv.2."): v
           for k, v in state.items()}
    assert old != state
    path = tmp_path / "old.p"
    torch.save(old, path)
    for a, b in zip(pd121.load_weights(path).state_dict().values(), state.values(),
                    strict=True):
        assert torch.equal(a, b)
