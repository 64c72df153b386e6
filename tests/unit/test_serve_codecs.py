import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from serve import codecs, decoding
from serve.encoding import encode
from serve.errors import BadRequest, NotAcceptable, UnsupportedMediaType

LIMITS = decoding.Limits(max_pixels=64 * 64, max_images=4)


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def media(value: str) -> codecs.MediaType:
    return codecs.parse_media_type(value)


def test_content_type_parameters_are_parsed_not_string_compared():
    decoder, m = decoding.decoder_for("Application/JSON ; charset=UTF-8")
    assert decoder is decoding.decode_json
    assert m.params["charset"] == "UTF-8"
    assert decoding.decoder_for("image/jpg")[0] is decoding.decode_image


@pytest.mark.parametrize("value", [None, "", "text/csv", "image/gif"])
def test_unknown_content_type_names_the_supported_ones(value):
    with pytest.raises(UnsupportedMediaType, match="image/png"):
        decoding.decoder_for(value)


def test_npy_single_and_batch_layouts():
    img = np.zeros((5, 7, 3), np.uint8)
    assert not decoding.decode_npy(npy(img), media("application/x-npy"), LIMITS).batched
    chw = decoding.decode_npy(npy(np.zeros((2, 3, 5, 7), np.float32)), media("application/x-npy"), LIMITS)
    assert chw.batched
    assert [im.shape for im in chw.images] == [(5, 7, 3), (5, 7, 3)]


@pytest.mark.parametrize(
    ("arr", "fragment"),
    [
        (np.zeros((5, 7), np.uint8), "shape"),
        (np.zeros((5, 7, 4), np.uint8), "shape"),
        (np.zeros((0, 7, 3), np.uint8), "empty"),
        (np.zeros((65, 65, 3), np.uint8), "over the limit"),
        (np.full((5, 7, 3), np.nan, np.float32), "NaN"),
        (np.full((5, 7, 3), np.inf, np.float64), "NaN or Inf"),
        (np.full((5, 7, 3), 200.0, np.float32), r"\[0, 1\]"),
        (np.zeros((5, 7, 3), np.int64), "dtype"),
        (np.zeros((5, 2, 2, 3), np.uint8), "over the limit of 4"),
    ],
)
def test_npy_bad_arrays_are_400_with_a_reason(arr, fragment):
    with pytest.raises(BadRequest, match=fragment):
        decoding.decode_npy(npy(arr), media("application/x-npy"), LIMITS)


def test_npy_header_claiming_more_data_than_sent_is_rejected_without_allocating():
    body = npy(np.zeros((8, 8, 3), np.uint8)).replace(b"(8, 8, 3)", b"(8, 9, 3)")
    with pytest.raises(BadRequest, match="data bytes"):
        decoding.decode_npy(body, media("application/x-npy"), LIMITS)


def test_npy_pickled_objects_are_refused():
    arr = np.array([[[object()] * 3]], dtype=object)
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    with pytest.raises(BadRequest):
        decoding.decode_npy(buf.getvalue(), media("application/x-npy"), LIMITS)


def test_png_canvas_over_the_pixel_limit_is_refused_before_decoding():
    with pytest.raises(BadRequest, match="over the limit"):
        decoding.decode_image(png(np.zeros((100, 100, 3), np.uint8)), media("image/png"), LIMITS)


def test_grey_png_is_read_as_rgb():
    out = decoding.decode_image(png(np.zeros((4, 6), np.uint8)), media("image/png"), LIMITS)
    assert out.images[0].shape == (4, 6, 3)


def test_json_instances_mix_base64_and_nested_lists():
    img = (np.arange(4 * 5 * 3) % 256).astype(np.uint8).reshape(4, 5, 3)
    doc = {"instances": [base64.b64encode(png(img)).decode(), {"b64": base64.b64encode(png(img)).decode()},
                         img.tolist(), (img / 255.0).tolist()]}
    out = decoding.decode_json(json.dumps(doc).encode(), media("application/json"), LIMITS)
    assert out.batched
    assert [im.shape for im in out.images] == [(4, 5, 3)] * 4
    np.testing.assert_array_equal(out.images[0], img)
    np.testing.assert_array_equal(out.images[2], img)


@pytest.mark.parametrize(
    "body",
    [b"{", b"[]", b'{"instances": 3}', b'{"instances": []}', b'{"instances": ["%%%"]}',
     b'{"instances": [[[1, 2], [3]]]}', b'{"instances": [[[[true, false, true]]]]}', b'{"instances": [{"x": 1}]}',
     b'{"instances": [[[[NaN, 0, 0]]]]}', b"[" * 100000, b"\xff\xfe"],
)
def test_malformed_json_is_400(body):
    with pytest.raises(BadRequest):
        decoding.decode_json(body, media("application/json"), LIMITS)


def test_jsonlines_one_instance_per_line_blank_lines_ignored():
    img = np.zeros((3, 3, 3), np.uint8).tolist()
    body = (json.dumps(img) + "\n\n" + json.dumps(img) + "\n").encode()
    assert len(decoding.decode_jsonlines(body, media("application/jsonlines"), LIMITS).images) == 2


def test_unknown_charset_is_415():
    with pytest.raises(UnsupportedMediaType, match="charset"):
        decoding.decode_json(b"{}", media("application/json; charset=klingon"), LIMITS)


def test_accept_honours_q_values_and_wildcards():
    default = codecs.MediaType(codecs.JSON)
    pick = lambda header, n=1: codecs.negotiate(codecs.parse_accept(header), default, count=n, same_shape=True)  # noqa: E731
    assert pick(None).essence == codecs.JSON
    assert pick("*/*").essence == codecs.JSON
    assert pick("image/*").essence == codecs.PNG
    assert pick("image/png;q=0.5, application/x-npy").essence == codecs.NPY
    assert pick("image/png, application/jsonlines;q=0.1", n=2).essence == codecs.JSONLINES
    assert pick("application/x-npy; dtype=float16").params["dtype"] == "float16"


@pytest.mark.parametrize("header", ["text/html", "image/png;q=0", "application/x-npy; dtype=int8", "nonsense"])
def test_unsatisfiable_accept_is_406(header):
    with pytest.raises(NotAcceptable):
        codecs.check_acceptable(codecs.parse_accept(header))
        codecs.negotiate(codecs.parse_accept(header), codecs.MediaType(codecs.JSON), count=1, same_shape=True)


def test_ragged_batch_cannot_be_npy():
    with pytest.raises(NotAcceptable, match="differently sized"):
        codecs.negotiate(codecs.parse_accept("application/x-npy"), codecs.MediaType(codecs.JSON), count=2,
                         same_shape=False)


def test_encoders_keep_count_order_and_dtype():
    preds = [np.full((2, 3, 3), i / 10, np.float32) for i in range(3)]
    arr = np.load(io.BytesIO(encode(preds, True, media("application/x-npy; dtype=float16"), None)))
    assert arr.shape == (3, 2, 3, 3)
    assert arr.dtype == np.float16
    lines = encode(preds, True, media(codecs.JSONLINES), None).decode().splitlines()
    assert [json.loads(line)["normals"][0][0][0] for line in lines] == [0.0, 0.1, 0.2]
    single = json.loads(encode(preds[:1], False, media(codecs.JSON), None))
    assert single["shape"] == [2, 3, 3]


def test_an_unexpected_decoder_failure_is_still_a_400():
    def leaky(body, media, limits, cache_pixels):
        raise KeyError("surprise")

    with pytest.raises(BadRequest, match="surprise"):
        decoding.decode(leaky, b"x", media("image/png"), LIMITS)
