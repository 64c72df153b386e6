"""The offline drift report reads captured requests into the same pixels the endpoint scored them on."""

from __future__ import annotations

import io

import numpy as np
import pytest

from container.capture import Observed, Skipped, read_capture_file, read_inputs
from serve import decoding
from serve.settings import settings_from_env
from tests.capture_support import capture_line, write_capture
from tests.support_png import jpeg_bytes, png_bytes


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _server_images(body: bytes, content_type: str) -> list[np.ndarray]:
    """What the endpoint's pipeline hands its drift monitor: the decoded plan, under the default limits."""
    settings = settings_from_env({})
    decoder, media = decoding.decoder_for(content_type)
    limits = decoding.Limits(settings.max_image_pixels, settings.max_images, settings.max_request_pixels)
    return decoding.decode(decoder, body, media, limits).images


_RNG = np.random.default_rng(7)
_RGB = _RNG.integers(0, 256, (20, 40, 3), dtype=np.uint8)
_GREY16 = _RNG.integers(0, 65536, (12, 10), dtype=np.uint16)
_CHW = _RNG.random((3, 8, 6), dtype=np.float32)
CASES = {
    # stored 40 wide x 20 high, orientation 6: viewers (and the server) show it 40 high x 20 wide
    "EXIF-rotated JPEG": (jpeg_bytes(_RGB, orientation=6), "image/jpeg", (40, 20, 3)),
    "16-bit grey PNG": (png_bytes(_GREY16, bitdepth=16), "image/png", (12, 10, 3)),
    "channels-first npy": (_npy(_CHW), "application/x-npy", (8, 6, 3)),
}


@pytest.mark.parametrize("name", CASES)
def test_a_captured_request_decodes_to_the_pixels_the_server_scored(tmp_path, name):
    body, content_type, shape = CASES[name]
    path = write_capture(tmp_path, [capture_line(body, content_type)])
    (observed,) = read_capture_file(path)
    assert isinstance(observed, Observed), observed
    (server,) = _server_images(body, content_type)
    (image,) = observed.images
    assert image.shape == server.shape == shape
    assert image.dtype == server.dtype
    np.testing.assert_array_equal(image, server)


def test_sixteen_bit_grey_keeps_its_precision_rather_than_eight_bits(tmp_path):
    body, content_type, _ = CASES["16-bit grey PNG"]
    (observed,) = read_capture_file(write_capture(tmp_path, [capture_line(body, content_type)]))
    np.testing.assert_allclose(observed.images[0][..., 0], _GREY16 / 65535.0, atol=1e-6)


def test_an_image_file_in_the_input_folder_decodes_like_a_request_body(tmp_path):
    (tmp_path / "portrait.jpg").write_bytes(CASES["EXIF-rotated JPEG"][0])
    (observed,) = read_inputs(tmp_path)
    assert isinstance(observed, Observed) and observed.images[0].shape == (40, 20, 3)


def test_a_body_the_server_would_reject_is_skipped_with_the_servers_reason(tmp_path):
    bad = _npy(np.zeros((4, 4, 3), dtype=np.int64))
    (skipped,) = read_capture_file(write_capture(tmp_path, [capture_line(bad, "application/x-npy")]))
    assert isinstance(skipped, Skipped) and "int64" in skipped.reason

