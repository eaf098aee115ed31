"""Breast-region crop, orientation, padding and resizing; on real NYU mammograms too."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from mvlib.data.adapters.examples import breast_image
from mvlib.data.crop import (
    CropRule,
    breast_mask,
    chest_wall_on_left,
    crop_box,
    pad_to_aspect,
    prepare_view,
    resize,
)
from mvlib.data.orientation import faces_right, half_masses, needs_flip


def _largest_component(fg: np.ndarray) -> np.ndarray:
    labels, _ = ndimage.label(fg)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == sizes.argmax()


def test_rule_scales_with_image_height():
    rule = CropRule()
    assert rule.scaled(3328) == (100, 50)
    assert rule.scaled(1664) == (50, 25)
    assert rule.scaled(10) == (1, 0)


def test_mask_keeps_the_breast_and_drops_the_label():
    img = breast_image(3, "L")
    mask = breast_mask(img)
    breast = _largest_component(img > 0)
    assert mask[breast].mean() > 0.99
    assert not mask[3:7, -10:-4].any()  # the burned-in label


def test_empty_image_raises():
    with pytest.raises(ValueError, match="no foreground"):
        breast_mask(np.zeros((40, 30), np.float32))


@pytest.mark.parametrize("laterality", ["L", "R"])
def test_box_has_margin_on_the_nipple_side_only(laterality):
    mask = np.zeros((50, 40), bool)
    mask[10:30, 0:20] = True
    if laterality == "R":
        mask = mask[:, ::-1]
    rows, cols = crop_box(mask, faces_right=laterality == "L", margin=3)
    assert (rows.start, rows.stop) == (7, 33)
    assert (cols.start, cols.stop) == ((0, 23) if laterality == "L" else (17, 40))


def test_chest_wall_rule_shares_the_half_masses_with_faces_right():
    mask = np.zeros((20, 31), bool)  # odd width: the middle column counts in neither half
    mask[5:15, :8] = True
    assert half_masses(mask) == (80, 0)
    assert chest_wall_on_left(mask) and faces_right(mask)
    assert not chest_wall_on_left(mask[:, ::-1]) and not faces_right(mask[:, ::-1])
    mask[:, 15] = True
    assert half_masses(mask) == (80, 0)
    # where they differ on purpose: a tie keeps the image (crop must decide), and a mask
    # covering nearly the whole frame has no percentile foreground for faces_right
    tie = np.zeros((20, 30), bool)
    tie[5:15, 5:25] = True
    assert chest_wall_on_left(tie) and not faces_right(tie)
    full = np.ones((20, 30), bool)
    full[:, -1] = False
    assert chest_wall_on_left(full) and not faces_right(full)


def test_pad_to_aspect_pads_nipple_side_or_evenly():
    narrow = np.ones((1, 40, 10), np.float32)
    out = pad_to_aspect(narrow, (40, 30))
    assert out.shape == (1, 40, 30) and out[0, :, :10].all() and not out[0, :, 10:].any()
    wide = np.ones((1, 10, 30), np.float32)
    out = pad_to_aspect(wide, (40, 30))
    assert out.shape == (1, 40, 30) and out[0, 15:25].all() and not out[0, :15].any()


def test_resize_is_antialiased_and_exact_on_constants():
    arr = np.full((2, 90, 70), 0.5, np.float32)
    np.testing.assert_allclose(resize(arr, (30, 20)), 0.5, atol=1e-6)
    stripes = np.tile([0.0, 1.0], (90, 35))[None].astype(np.float32)
    small = resize(stripes, (30, 7))
    assert np.abs(small - 0.5).max() < 0.1  # averaged, not aliased


@pytest.mark.parametrize("laterality", ["L", "R"])
def test_prepare_view_faces_right_and_heatmaps_follow(laterality):
    img = breast_image(5, laterality)
    heat = np.zeros_like(img)
    heat[40:50, :] = 1.0  # a band: survives the flip as the same rows
    heat_lr = np.zeros_like(img)
    heat_lr[:, :20] = 1.0  # the left 20 columns of the raw image
    out = prepare_view(img, (64, 48), flip=None, heatmaps=[heat, heat_lr])
    assert out.shape == (3, 64, 48) and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 1
    assert faces_right(out[0])
    # the raw left columns are the chest wall of a left breast, the nipple side of a right one
    left, right = out[2][:, :24].sum(), out[2][:, 24:].sum()
    assert (left > right) == (laterality == "L")
    flipped = prepare_view(img, (64, 48), flip=laterality == "R", heatmaps=[heat, heat_lr])
    np.testing.assert_array_equal(flipped, out)


def test_prepare_view_rejects_a_heatmap_of_another_shape():
    img = breast_image(5, "L")
    with pytest.raises(ValueError, match="heatmap shape"):
        prepare_view(img, (64, 48), heatmaps=[np.zeros((10, 10), np.float32)])


# --- real NYU sample mammograms ----------------------------------------------------------

@pytest.fixture(scope="module")
def real_images(real_dir, real_stems, real_flips):
    from mvlib.data.dicom import read_png

    # Half resolution keeps the test quick; the crop rule scales with the height.
    return {stem: (read_png(real_dir / f"{stem}.png")[::2, ::2], real_flips[stem])
            for stem in real_stems}


def test_real_crop_keeps_the_whole_breast_and_drops_background(real_images):
    for stem, (img, _) in real_images.items():
        mask = breast_mask(img)
        rows, cols = crop_box(mask, faces_right=chest_wall_on_left(mask),
                              margin=CropRule().scaled(img.shape[0])[1])
        breast = _largest_component(img > 0)
        kept = breast[rows, cols].sum() / breast.sum()
        assert kept > 0.999, (stem, kept)
        box = np.zeros(img.shape, bool)
        box[rows, cols] = True
        assert box.mean() < 0.5, stem  # most of the image was background
        assert (img[box] > 0).mean() > 2 * (img > 0).mean(), stem


def test_real_views_end_up_facing_the_same_way(real_images):
    for stem, (img, flip_rule) in real_images.items():
        laterality = stem.split("_")[1]
        mask = breast_mask(img)
        # the mass rule used for DICOM sources agrees with the NYU rule on real images
        assert chest_wall_on_left(mask) == (not needs_flip(laterality, flip_rule)), stem
        out = prepare_view(img, (96, 72), flip=needs_flip(laterality, flip_rule))
        assert faces_right(out[0]), stem
        np.testing.assert_array_equal(out, prepare_view(img, (96, 72), flip=None))
