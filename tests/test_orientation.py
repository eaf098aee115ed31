"""Every breast faces right: the NYU flip rule and the foreground-mass check."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import mvlib.experiment.profiles
from mvlib.data.orientation import face_right, faces_right, needs_flip
from mvlib.synth.generate import generate_chunk


@pytest.mark.parametrize(("laterality", "horizontal_flip", "flip"), [
    ("L", "NO", False),
    ("R", "NO", True),
    ("L", "YES", True),
    ("R", "YES", False),
])
def test_needs_flip_truth_table(laterality, horizontal_flip, flip):
    assert needs_flip(laterality, horizontal_flip) is flip


def test_needs_flip_defaults_to_no_and_accepts_nyu_spellings():
    assert needs_flip("L") is False
    assert needs_flip("R") is True
    assert needs_flip("r", "yes") is False
    assert needs_flip("L-CC", "NO") is False  # NYU view names start with the laterality
    assert needs_flip("R-MLO", "NO") is True


@pytest.mark.parametrize(("laterality", "horizontal_flip"), [
    ("X", "NO"), ("", "NO"), ("L", "MAYBE"), ("R", ""), ("L", "Y"),
])
def test_needs_flip_rejects_bad_input(laterality, horizontal_flip):
    with pytest.raises(ValueError):
        needs_flip(laterality, horizontal_flip)


def test_face_right_mirrors_the_last_axis_only_when_needed():
    img = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(face_right(img, "L", "NO"), img)
    np.testing.assert_array_equal(face_right(img, "R", "NO"), img[..., ::-1])
    np.testing.assert_array_equal(face_right(img, "L", "YES"), img[..., ::-1])
    np.testing.assert_array_equal(face_right(img, "R", "YES"), img)


def test_faces_right_on_a_simple_shape():
    img = np.zeros((20, 30))
    img[4:16, :10] = 0.7  # tissue against the left edge
    assert faces_right(img)
    assert not faces_right(img[:, ::-1])


@pytest.fixture(scope="module")
def synthetic_views() -> dict[str, np.ndarray]:
    cfg = dataclasses.replace(mvlib.experiment.profiles.get("smoke").synthetic_config(),
                              patients={"train": 4, "val": 2, "test": 2})
    batch = generate_chunk(cfg, 0)
    return {view: batch.views[view][:, 0] for view in ("cc", "mlo")}


@pytest.mark.parametrize("view", ["cc", "mlo"])
def test_generator_output_faces_right(synthetic_views, view):
    images = synthetic_views[view]
    assert len(images) == 16
    for img in images:
        assert faces_right(img)
        assert not faces_right(img[:, ::-1])


@pytest.mark.parametrize("view", ["cc", "mlo"])
def test_generator_output_faces_right_in_float16_with_channel_axis(synthetic_views, view):
    # As stored on disk: float16, with a leading channel axis.
    img = synthetic_views[view][0].astype(np.float16)[None]
    assert faces_right(img)
    assert not faces_right(img[..., ::-1])


# --- real NYU sample images --------------------------------------------------------------

@pytest.fixture(scope="module")
def real_exams(real_dir, real_stems, real_flips):
    from PIL import Image

    images = {}
    for stem in real_stems:
        with Image.open(real_dir / f"{stem}.png") as im:
            full = np.asarray(im)
        assert full.shape == (3328, 2560)
        images[stem] = full[::8, ::8]
    return images, real_flips


def _laterality(stem: str) -> str:
    return stem.split("_")[1]


def test_real_images_before_flipping(real_exams):
    images, flip_of = real_exams
    for stem, img in images.items():
        assert flip_of[stem] == "NO"
        assert bool(faces_right(img)) == (_laterality(stem) == "L"), stem


def test_real_images_face_right_after_face_right(real_exams):
    images, flip_of = real_exams
    for stem, img in images.items():
        out = face_right(img, _laterality(stem), flip_of[stem])
        assert out.shape == img.shape
        assert faces_right(out), stem
