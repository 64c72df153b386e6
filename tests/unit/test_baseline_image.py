"""The drift baseline reads training images as training and serving do: 16-bit grey is scaled, not clipped."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
from PIL import Image

from model.normals.family import SurfaceNormals
from train.baseline import raw_image


def _grey16_png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((4, 6), value, dtype=np.uint16)).save(buf, "PNG")
    return buf.getvalue()


def test_a_sixteen_bit_grey_training_file_is_scaled_to_eight_bits(tmp_path):
    path = tmp_path / "mid.png"
    path.write_bytes(_grey16_png(32768))
    image = raw_image(SurfaceNormals(), SimpleNamespace(image=path))
    assert image.shape == (4, 6, 3) and image.dtype == np.uint8
    assert (image == 128).all()  # Pillow's convert("RGB") gives 255: half grey would read as white


def test_a_sixteen_bit_grey_pipe_record_is_scaled_too():
    image = raw_image(SurfaceNormals(), SimpleNamespace(files={"png": _grey16_png(65535 // 4)}))
    assert (image == 64).all()


def test_an_eight_bit_rgb_file_is_read_as_stored(tmp_path):
    pixels = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    path = tmp_path / "rgb.png"
    Image.fromarray(pixels).save(path)
    assert np.array_equal(raw_image(SurfaceNormals(), SimpleNamespace(image=path)), pixels)
