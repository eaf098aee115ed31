"""Reading mammogram files: DICOM encodings, photometry, windowing, padding; PNG; HDF5."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import get_decoder
from pydicom.uid import JPEG2000Lossless, JPEGLosslessSV1

from mvlib.data.adapters.examples import breast_image, write_dicom, write_heatmap, write_png
from mvlib.data.dicom import ImageError, read_dicom, read_heatmap, read_image, read_png


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return breast_image(0, "L")


def _minmax(x: np.ndarray) -> np.ndarray:
    return (x - x.min()) / (x.max() - x.min())


def test_monochrome2_is_scaled_to_0_1(tmp_path, image):
    write_dicom(tmp_path / "a.dcm", image)
    out = read_dicom(tmp_path / "a.dcm")
    assert out.dtype == np.float32 and out.shape == image.shape
    np.testing.assert_allclose(out, _minmax(np.round(image * 4095)), atol=1e-3)


def test_jpeg2000_lossless_decodes_to_the_same_image(tmp_path, image):
    write_dicom(tmp_path / "plain.dcm", image)
    write_dicom(tmp_path / "j2k.dcm", image, jpeg2000=True)
    assert pydicom.dcmread(tmp_path / "j2k.dcm").file_meta.TransferSyntaxUID == JPEG2000Lossless
    np.testing.assert_array_equal(read_dicom(tmp_path / "j2k.dcm"),
                                  read_dicom(tmp_path / "plain.dcm"))


def test_jpeg_decoders_are_installed():
    # No JPEG-lossless encoder exists for Python; the decoder that reads RSNA's .70 files
    # is the libjpeg plugin, which also decodes pydicom's bundled 12-bit JPEG Extended file.
    assert get_decoder(JPEGLosslessSV1).is_available
    out = read_dicom(get_testdata_file("JPGExtended.dcm"))
    assert out.shape == (1024, 256) and out.min() == 0 and out.max() == 1


def test_monochrome1_is_inverted(tmp_path, image):
    write_dicom(tmp_path / "m2.dcm", image)
    write_dicom(tmp_path / "m1.dcm", image, monochrome1=True)
    m1 = read_dicom(tmp_path / "m1.dcm")
    np.testing.assert_allclose(m1, read_dicom(tmp_path / "m2.dcm"), atol=1e-3)
    assert m1[image == 0].max() == 0  # background dark


def test_linear_window_saturates_outside_the_window(tmp_path, image):
    write_dicom(tmp_path / "w.dcm", image, window=([2000.0], [1000.0]))
    out, stored = read_dicom(tmp_path / "w.dcm"), np.round(image * 4095)
    assert (out[stored <= 1500] == 0).all() and (out[stored >= 2500] == 1).all()
    mid = (stored > 1600) & (stored < 2400)
    assert mid.any() and ((out[mid] > 0) & (out[mid] < 1)).all()


def test_sigmoid_uses_the_first_of_several_windows(tmp_path, image):
    write_dicom(tmp_path / "s.dcm", image, window=([1800.0, 500.0], [3000.0, 200.0]),
                voi_function="SIGMOID")
    stored = np.round(image * 4095)
    expected = _minmax(1 / (1 + np.exp(-4 * (stored - 1800) / 3000)))
    np.testing.assert_allclose(read_dicom(tmp_path / "s.dcm"), expected, atol=2e-3)


def test_pixel_padding_value_becomes_background(tmp_path, image):
    write_dicom(tmp_path / "p.dcm", image, padding_value=4000, window=None)
    out = read_dicom(tmp_path / "p.dcm")
    assert (out[image == 0] == 0).all()
    tissue = np.round(image[image > 0] * 4095)
    # scaled on the tissue alone: its brightest pixel is 1, its darkest 0
    assert out[image > 0].max() == 1 and out[image > 0].min() == 0
    assert tissue.min() > 0


@pytest.mark.parametrize("content", [b"", b"DICM" + bytes(100), b"not a dicom file"])
def test_corrupt_dicom_names_the_file(tmp_path, content):
    path = tmp_path / "bad.dcm"
    path.write_bytes(content)
    with pytest.raises(ImageError, match="bad.dcm: cannot decode DICOM"):
        read_image(path)


def test_missing_files_are_reported_as_not_found(tmp_path):
    for name in ("x.dcm", "x.png", "x.hdf5"):
        reader = read_heatmap if name.endswith("hdf5") else read_image
        with pytest.raises(ImageError, match=f"{name}: file not found"):
            reader(tmp_path / name)


def test_png_16_bit_and_heatmap_transposed(tmp_path, image):
    write_png(tmp_path / "a.png", image)
    np.testing.assert_allclose(read_png(tmp_path / "a.png"), image, atol=5e-4)
    hm = np.linspace(0, 1, image.size, dtype=np.float32).reshape(image.shape)
    write_heatmap(tmp_path / "h.hdf5", hm)
    np.testing.assert_array_equal(read_heatmap(tmp_path / "h.hdf5"), hm)


def test_colour_png_is_rejected(tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "c.png")
    with pytest.raises(ImageError, match="c.png: expected a grey-level"):
        read_png(tmp_path / "c.png")
