"""Random cropping windows: geometry of crop_resize, box noise, standardisation."""

from __future__ import annotations

import math

import pytest
import torch

from mvlib.data.windows import (
    WindowNoise,
    crop_resize,
    full_window,
    sample_boxes,
    standardise,
    train_windows,
)
from mvlib.data.windows import tta_windows as make_test_windows
from mvlib.experiment.profiles import PAPER_CC_SIZE, PAPER_MLO_SIZE

NOISE = WindowNoise(shift=(0.05, 0.08), border=(0.03, 0.04))
ZERO = WindowNoise(shift=(0.0, 0.0), border=(0.0, 0.0))


def _smooth(b: int = 2, c: int = 3, h: int = 40, w: int = 32) -> torch.Tensor:
    y = torch.linspace(0, 1, h)[:, None]
    x = torch.linspace(0, 1, w)[None, :]
    img = torch.stack([torch.sin(math.pi * (k + 1) * y) * torch.cos(2 * x + k)
                       for k in range(b * c)])
    return (0.5 + 0.4 * img).reshape(b, c, h, w)


def _marker(h: int, w: int, row: int, col: int) -> torch.Tensor:
    """A bright Gaussian spot (sigma 1.5 px) centred on pixel (row, col)."""
    rr = torch.arange(h, dtype=torch.float32)[:, None] - row
    cc = torch.arange(w, dtype=torch.float32)[None, :] - col
    return torch.exp(-(rr**2 + cc**2) / (2 * 1.5**2))[None, None]


def _centre(img: torch.Tensor) -> tuple[float, float]:
    """Centre of mass (row, col) of the spot, in pixels; bicubic undershoot ignored."""
    m = img.clamp_min(0)
    rows = torch.arange(img.shape[-2], dtype=m.dtype)[:, None]
    cols = torch.arange(img.shape[-1], dtype=m.dtype)[None, :]
    return float((m * rows).sum() / m.sum()), float((m * cols).sum() / m.sum())


def _random_batch(gen: torch.Generator, b: int = 3, h: int = 36, w: int = 28) -> torch.Tensor:
    image = torch.rand(b, 1, h, w, generator=gen) * 0.6 + 0.2
    heat = torch.rand(b, 2, h, w, generator=gen)
    return torch.cat([image, heat], dim=1)


# --- crop_resize -------------------------------------------------------------------------

def test_identity_box_reproduces_a_smooth_image():
    x = _smooth()
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0]]).repeat(len(x), 1)
    out = crop_resize(x, boxes)
    assert out.shape == x.shape
    torch.testing.assert_close(out, x, atol=1e-4, rtol=0)


@pytest.mark.parametrize("frac", [0.125, 0.25])
def test_box_shifted_right_moves_marker_left(frac):
    h, w = 40, 64
    x = _marker(h, w, row=20, col=44)
    out = crop_resize(x, torch.tensor([[0.0, frac, 1.0, 1.0 + frac]]))
    row, col = _centre(out[0, 0])
    assert abs(row - 20) <= 1
    assert abs(col - (44 - frac * w)) <= 1


def test_box_shifted_down_moves_marker_up():
    h, w = 64, 40
    x = _marker(h, w, row=40, col=20)
    out = crop_resize(x, torch.tensor([[0.25, 0.0, 1.25, 1.0]]))
    row, col = _centre(out[0, 0])
    assert abs(row - (40 - 0.25 * h)) <= 1
    assert abs(col - 20) <= 1


def test_half_size_box_zooms_by_two():
    h, w = 64, 64
    x = _marker(h, w, row=10, col=20)  # inside the top-left quadrant
    out = crop_resize(x, torch.tensor([[0.0, 0.0, 0.5, 0.5]]))
    row, col = _centre(out[0, 0])
    # Pixel centre c maps to 2 * (c + 0.5) - 0.5 under a x2 zoom with align_corners=False.
    assert abs(row - 20.5) <= 1
    assert abs(col - 40.5) <= 1
    assert out[0, 0].max() > 0.9  # the spot is magnified (wider), not dimmed


def test_outside_the_image_is_zero():
    x = torch.ones(1, 1, 20, 32)
    out = crop_resize(x, torch.tensor([[0.0, 0.5, 1.0, 1.5]]))
    # Left half of the output sees the right half of the image, right half sees outside.
    assert torch.allclose(out[..., :14], torch.ones(()), atol=1e-5)
    assert torch.allclose(out[..., 18:], torch.zeros(()), atol=1e-5)


def test_each_example_gets_its_own_box():
    h, w = 40, 64
    x = torch.cat([_marker(h, w, 20, 44), _marker(h, w, 20, 44)])
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.25, 1.0, 1.25]])
    out = crop_resize(x, boxes)
    assert _centre(out[0, 0]) == pytest.approx((20, 44), abs=1e-2)
    assert _centre(out[1, 0]) == pytest.approx((20, 28), abs=1)


# --- sample_boxes / WindowNoise --------------------------------------------------------------

def test_sample_boxes_stay_within_noise_bounds():
    gen = torch.Generator().manual_seed(0)
    boxes = sample_boxes(4000, NOISE, gen)
    assert boxes.shape == (4000, 4)
    top, left, bottom, right = boxes.unbind(1)
    (sy, sx), (by, bx) = NOISE.shift, NOISE.border
    eps = 1e-6
    for lo_edge, hi_edge, s, b in ((top, bottom, sy, by), (left, right, sx, bx)):
        assert lo_edge.abs().max() <= s + b + eps
        assert (hi_edge - 1).abs().max() <= s + b + eps
        # The window size moves only by the two border noises; its centre by shift + border.
        assert ((hi_edge - lo_edge) - 1).abs().max() <= 2 * b + eps
        assert ((lo_edge + hi_edge) / 2 - 0.5).abs().max() <= s + b + eps
        # ... and the noise is actually used, not (near) zero.
        assert lo_edge.abs().max() > 0.8 * (s + b)
        assert ((hi_edge - lo_edge) - 1).abs().max() > 1.5 * b


def test_zero_noise_gives_the_whole_image():
    boxes = sample_boxes(5, ZERO, torch.Generator().manual_seed(0))
    torch.testing.assert_close(boxes, torch.tensor([[0.0, 0.0, 1.0, 1.0]]).repeat(5, 1))


def test_sample_boxes_deterministic_for_the_same_generator_seed():
    a = sample_boxes(16, NOISE, torch.Generator().manual_seed(123))
    b = sample_boxes(16, NOISE, torch.Generator().manual_seed(123))
    c = sample_boxes(16, NOISE, torch.Generator().manual_seed(124))
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert not torch.equal(a, c)


def test_paper_noise_is_100_px_at_paper_resolution():
    cc = WindowNoise.paper("cc")
    assert cc.shift == pytest.approx((100 / 2677, 100 / 1942))
    assert cc.border == pytest.approx((100 / 2677, 100 / 1942))
    mlo = WindowNoise.paper("mlo")
    assert mlo.shift == pytest.approx((100 / 2974, 100 / 1748))
    assert mlo.border == pytest.approx((100 / 2974, 100 / 1748))
    assert PAPER_CC_SIZE == (2677, 1942) and PAPER_MLO_SIZE == (2974, 1748)


# --- standardise ---------------------------------------------------------------------------

def test_standardise_image_channel_per_example():
    gen = torch.Generator().manual_seed(1)
    x = _random_batch(gen, b=4)
    x[1, 0] = x[1, 0] * 5 + 3  # examples with very different scales
    x[2, 0] = x[2, 0] * 0.01
    out = standardise(x)
    assert out.shape == x.shape
    image = out[:, 0]
    # Population std, as the reference standardises with numpy's default.
    torch.testing.assert_close(image.mean(dim=(1, 2)), torch.zeros(4), atol=1e-5, rtol=0)
    std = image.std(dim=(1, 2), unbiased=False)
    torch.testing.assert_close(std, torch.ones(4), atol=1e-4, rtol=0)


def test_standardise_clamps_but_does_not_standardise_heatmaps():
    gen = torch.Generator().manual_seed(2)
    x = _random_batch(gen)
    x[:, 1:] = x[:, 1:] * 1.4 - 0.2  # bicubic overshoot on both sides
    out = standardise(x)
    heat = out[:, 1:]
    assert heat.min() >= 0 and heat.max() <= 1
    assert (heat == 0).any() and (heat == 1).any()  # clamped values really occur
    inside = (x[:, 1:] >= 0) & (x[:, 1:] <= 1)
    assert torch.equal(heat[inside], x[:, 1:][inside])  # values in range pass unchanged


def test_standardise_constant_image_gives_no_nan():
    x = torch.full((2, 3, 16, 12), 0.5)
    out = standardise(x)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[:, 0], torch.zeros(2, 16, 12))
    torch.testing.assert_close(out[:, 1:], x[:, 1:])


def test_standardise_single_channel():
    x = torch.rand(2, 1, 10, 8, generator=torch.Generator().manual_seed(3))
    out = standardise(x)
    assert out.shape == (2, 1, 10, 8)
    std = out.std(dim=(1, 2, 3), unbiased=False)
    torch.testing.assert_close(std, torch.ones(2), atol=1e-4, rtol=0)


def test_full_window_is_standardise():
    x = _random_batch(torch.Generator().manual_seed(4))
    torch.testing.assert_close(full_window(x), standardise(x))


# --- train_windows / test_windows ----------------------------------------------------------

def test_test_windows_shape_and_windows_differ():
    x = _random_batch(torch.Generator().manual_seed(5), b=3)
    out = make_test_windows(x, NOISE, torch.Generator().manual_seed(0), n_windows=10)
    assert out.shape == (10, *x.shape)
    for w in range(1, 10):
        assert (out[w] - out[0]).abs().max() > 1e-2
    assert out[:, :, 1:].min() >= 0 and out[:, :, 1:].max() <= 1


def test_test_windows_keep_examples_in_place():
    # With no noise each window is the whole crop: window w of example b must come from x[b].
    x = _random_batch(torch.Generator().manual_seed(6), b=3)
    out = make_test_windows(x, ZERO, torch.Generator().manual_seed(0), n_windows=4)
    expected = standardise(x)
    for w in range(4):
        torch.testing.assert_close(out[w], expected, atol=1e-4, rtol=0)


def test_test_windows_deterministic_for_the_same_generator_seed():
    x = _random_batch(torch.Generator().manual_seed(7))
    a = make_test_windows(x, NOISE, torch.Generator().manual_seed(9), n_windows=3)
    b = make_test_windows(x, NOISE, torch.Generator().manual_seed(9), n_windows=3)
    torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_train_windows_shape_and_augmentation():
    x = _random_batch(torch.Generator().manual_seed(8), b=4)
    out = train_windows(x, NOISE, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert not torch.allclose(out, standardise(x), atol=1e-2)
    torch.testing.assert_close(out[:, 0].mean(dim=(1, 2)), torch.zeros(4), atol=1e-5, rtol=0)
    assert out[:, 1:].min() >= 0 and out[:, 1:].max() <= 1
    same = train_windows(x, ZERO, torch.Generator().manual_seed(0))
    torch.testing.assert_close(same, standardise(x), atol=1e-4, rtol=0)
