"""Every pixel mode of images, masks and normal maps is read as the user meant it, or refused clearly."""

from __future__ import annotations

import io

import numpy as np
import pytest

from model.family import DataFormatError
from model.normals.encoding import decode_normals_png, encode_png, read_mask, read_rgb
from model.normals.limits import MAX_ASPECT, MAX_PIXELS
from tests.support_png import header_only_png, palette_png, png_bytes

LEFT_VALID = np.array([[True, False], [True, False]])


def mask(data: bytes) -> np.ndarray:
    return read_mask(io.BytesIO(data))


# -- masks ---------------------------------------------------------------------------------------------
def test_grey_mask_nonzero_is_valid():
    assert (mask(encode_png(np.array([[255, 0], [1, 0]], np.uint8))) == LEFT_VALID).all()


def test_one_bit_mask():
    assert (mask(png_bytes(np.array([[1, 0], [1, 0]], np.uint8), bitdepth=1)) == LEFT_VALID).all()


def test_sixteen_bit_grey_mask_nonzero_is_valid():
    assert (mask(png_bytes(np.array([[300, 0], [65535, 0]], np.uint16), bitdepth=16)) == LEFT_VALID).all()


def test_la_mask_black_opaque_is_invalid_and_alpha_never_validates():
    # grey, alpha: white opaque | black opaque / white opaque | white transparent
    la = np.array([[[255, 255], [0, 255]], [[255, 255], [255, 0]]], np.uint8)
    assert (mask(png_bytes(la)) == LEFT_VALID).all()


def test_rgba_mask_black_opaque_is_invalid_and_transparent_is_invalid():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[:, :, 3] = 255                      # all opaque, all black ...
    rgba[:, 0, :3] = (255, 255, 255)         # ... but the left column white
    rgba[1, 1] = (255, 255, 255, 0)          # white yet fully transparent
    assert (mask(png_bytes(rgba)) == LEFT_VALID).all()


def test_rgb_mask_any_colour_is_valid():
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (0, 0, 40)
    rgb[1, 0] = (200, 0, 0)
    assert (mask(png_bytes(rgb)) == LEFT_VALID).all()


def test_palette_mask_is_read_through_its_palette_not_its_indices():
    # index 0 is white (drawn as "valid"), index 1 black: reading indices would invert the mask
    indices = np.array([[0, 1], [0, 1]])
    assert (mask(palette_png(indices, [(255, 255, 255), (0, 0, 0)])) == LEFT_VALID).all()


def test_palette_mask_transparent_entry_is_invalid():
    indices = np.array([[0, 1], [0, 2]])
    data = palette_png(indices, [(255, 255, 255), (0, 0, 0), (255, 255, 255)], transparent=2)
    assert (mask(data) == LEFT_VALID).all()


# -- images ----------------------------------------------------------------------------------------------
def test_sixteen_bit_grey_image_is_scaled_not_clipped():
    data = png_bytes(np.array([[65535, 32768], [257, 0]], np.uint16), bitdepth=16)
    rgb = read_rgb(io.BytesIO(data))
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    assert rgb[..., 0].tolist() == [[255, 128], [1, 0]]


@pytest.mark.parametrize("arr", [np.full((2, 2), 7, np.uint8), np.full((2, 2, 2), 7, np.uint8),
                                 np.full((2, 2, 4), 7, np.uint8)], ids=["L", "LA", "RGBA"])
def test_grey_and_alpha_images_become_rgb(arr):
    assert (read_rgb(io.BytesIO(png_bytes(arr))) == 7).all()


def test_palette_image_uses_its_palette():
    rgb = read_rgb(io.BytesIO(palette_png(np.array([[0, 1]]), [(10, 20, 30), (40, 50, 60)])))
    assert rgb.tolist() == [[[10, 20, 30], [40, 50, 60]]]


# -- normal maps ----------------------------------------------------------------------------------------
FACING = (128, 128, 255)


@pytest.mark.parametrize("arr, depth", [(np.full((2, 2), 128, np.uint8), 8),
                                        (np.full((2, 2), 30000, np.uint16), 16),
                                        (np.full((2, 2, 2), 128, np.uint8), 8)], ids=["L8", "L16", "LA"])
def test_greyscale_normal_maps_are_refused_with_the_fix(arr, depth):
    with pytest.raises(DataFormatError, match=r"greyscale.*three channels.*RGB PNG"):
        decode_normals_png(png_bytes(arr, bitdepth=depth), "n.png")


def test_rgba_normal_map_alpha_zero_is_no_ground_truth():
    rgba = np.array([[[*FACING, 255], [*FACING, 0]]], np.uint8)
    vec, valid = decode_normals_png(png_bytes(rgba))
    assert valid.tolist() == [[True, False]] and np.allclose(vec[0, 0], (0, 0, 1), atol=0.01)


def test_sixteen_bit_rgba_normal_map_alpha_zero_is_no_ground_truth():
    rgba = np.array([[[32768, 32768, 65535, 65535], [32768, 32768, 65535, 0]]], np.uint16)
    _, valid = decode_normals_png(png_bytes(rgba, bitdepth=16))
    assert valid.tolist() == [[True, False]]


def test_palette_normal_map_is_read_through_its_palette():
    vec, valid = decode_normals_png(palette_png(np.array([[1, 0]]), [(0, 0, 0), FACING]))
    assert valid.tolist() == [[True, False]] and np.allclose(vec[0, 0], (0, 0, 1), atol=0.01)


def test_a_jpeg_is_not_a_normal_map():
    from tests.support_png import jpeg_bytes

    with pytest.raises(DataFormatError, match="not a PNG"):
        decode_normals_png(jpeg_bytes(np.zeros((8, 8, 3), np.uint8)), "n.png")


# -- size guards, decided from the header before decoding -------------------------------------------------
def test_a_huge_sixteen_bit_normal_map_is_refused_before_decoding():
    side = int(MAX_PIXELS**0.5) + 1
    with pytest.raises(DataFormatError, match="over the limit"):
        decode_normals_png(header_only_png(side, side, bitdepth=16), "n.png")


@pytest.mark.parametrize("reader", [read_rgb, read_mask])
def test_huge_images_and_masks_are_refused_before_decoding(reader):
    side = int(MAX_PIXELS**0.5) + 1
    with pytest.raises(DataFormatError, match="over the limit"):
        reader(io.BytesIO(header_only_png(side, side, colour_type=0)))


@pytest.mark.parametrize("reader", [read_rgb, read_mask])
def test_decompression_bombs_are_data_errors(reader):
    # Pillow itself refuses > 2 x Image.MAX_IMAGE_PIXELS at open, before our own limit is consulted
    with pytest.raises(DataFormatError, match=r"(?i)decompression|over the limit"):
        reader(io.BytesIO(header_only_png(20000, 20000, colour_type=0)))


def test_extreme_aspect_ratios_are_refused():
    with pytest.raises(DataFormatError, match="aspect ratio"):
        read_rgb(io.BytesIO(png_bytes(np.zeros((2, 2 * MAX_ASPECT + 2), np.uint8))))
    with pytest.raises(DataFormatError, match="aspect ratio"):
        decode_normals_png(header_only_png(2, 20000, bitdepth=16), "n.png")


def test_truncated_and_empty_files_are_data_errors_naming_the_file(tmp_path):
    good = png_bytes(np.full((16, 16, 3), 128, np.uint8))
    for name, data in (("empty.png", b""), ("cut.png", good[: len(good) // 2])):
        path = tmp_path / name
        path.write_bytes(data)
        for reader in (read_rgb, read_mask):
            with pytest.raises(DataFormatError, match=name):
                reader(path)
