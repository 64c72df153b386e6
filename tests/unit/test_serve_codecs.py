import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from model.normals.spec import SPEC
from serve import codecs, decoding
from serve.encoding import Output, encode
from serve.errors import BadRequest, NotAcceptable, UnsupportedMediaType

NORMALS = Output.of(SPEC)  # the built-in family's answers: key "normals", HxWx3 in [-1, 1]

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
    arr = np.load(io.BytesIO(encode(preds, True, media("application/x-npy; dtype=float16"), None, NORMALS)))
    assert arr.shape == (3, 2, 3, 3)
    assert arr.dtype == np.float16
    lines = encode(preds, True, media(codecs.JSONLINES), None, NORMALS).decode().splitlines()
    assert [json.loads(line)["normals"][0][0][0] for line in lines] == [0.0, 0.1, 0.2]
    single = json.loads(encode(preds[:1], False, media(codecs.JSON), None, NORMALS))
    assert single["shape"] == [2, 3, 3]


def test_an_unexpected_decoder_failure_is_still_a_400():
    def leaky(body, media, limits, cache_pixels):
        raise KeyError("surprise")

    with pytest.raises(BadRequest, match="surprise"):
        decoding.decode(leaky, b"x", media("image/png"), LIMITS)


# -- issue 10: odd but valid files, and clean messages ---------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_a_png_whose_data_ends_before_its_last_row_is_400_not_zero_rows():
    import struct
    import zlib

    rows = b"".join(b"\x00" + bytes(range(1, 1 + 16 * 3)) for _ in range(16))
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0))
    short = b"\x89PNG\r\n\x1a\n" + header + _png_chunk(b"IDAT", zlib.compress(rows[: 4 * 49])) + _png_chunk(
        b"IEND", b"")
    with pytest.raises(BadRequest, match="truncated"):
        decoding.decode_image(short, media("image/png"), LIMITS)
    whole = short.replace(_png_chunk(b"IDAT", zlib.compress(rows[: 4 * 49])), _png_chunk(b"IDAT", zlib.compress(rows)))
    assert decoding.decode_image(whole, media("image/png"), LIMITS).images[0].shape == (16, 16, 3)


def test_an_interlaced_png_is_complete_and_a_short_one_is_not():
    import struct
    import zlib

    img = np.random.default_rng(1).integers(0, 256, (13, 29, 3), dtype=np.uint8)
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
    raw = b"".join(b"\x00" + row.tobytes() for x0, y0, dx, dy in passes for row in img[y0::dy, x0::dx]
                   if row.size)
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 29, 13, 8, 2, 0, 0, 1))  # interlace method 1: Adam7

    def png_of(data: bytes) -> bytes:
        return b"\x89PNG\r\n\x1a\n" + header + _png_chunk(b"IDAT", zlib.compress(data)) + _png_chunk(b"IEND", b"")

    np.testing.assert_array_equal(decoding.decode_image(png_of(raw), media("image/png"), LIMITS).images[0], img)
    with pytest.raises(BadRequest, match="truncated"):
        decoding.decode_image(png_of(raw[:-30]), media("image/png"), LIMITS)


def test_sixteen_bit_grey_is_scaled_to_floats_not_clipped_to_eight_bits():
    levels = (np.arange(40 * 40, dtype=np.uint32) * 40).reshape(40, 40).astype(np.uint16)  # 1600 levels to 63960
    buf = io.BytesIO()
    Image.fromarray(levels).save(buf, format="PNG")
    limits = decoding.Limits(max_pixels=64 * 64)
    out = decoding.decode_image(buf.getvalue(), media("image/png"), limits).images[0]
    assert out.shape == (40, 40, 3)
    assert out.dtype == np.float32
    assert len(np.unique(out[..., 0])) == 1600
    np.testing.assert_allclose(out[..., 0], levels / 65535.0, atol=1e-6)


def test_jpeg_exif_orientation_is_applied():
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view": viewers show it 40 high, 20 wide
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", exif=exif, quality=95)
    out = decoding.decode_image(buf.getvalue(), media("image/jpeg"), LIMITS).images[0]
    assert out.shape == (40, 20, 3)
    assert out[:20].mean() > 200 > 50 > out[20:].mean()  # the white half is now on top


@pytest.mark.parametrize("decoder", ["decode_json", "decode_jsonlines"])
def test_json_with_a_utf8_byte_order_mark_is_accepted(decoder):
    img = np.zeros((3, 3, 3), np.uint8).tolist()
    body = json.dumps({"instances": [img]} if decoder == "decode_json" else img).encode()
    plan = getattr(decoding, decoder)(b"\xef\xbb\xbf" + body, media("application/json; charset=utf-8"), LIMITS)
    assert plan.count == 1


def test_utf16_json_lines_are_read():
    body = (json.dumps(np.zeros((2, 2, 3), np.uint8).tolist()) + "\n") * 2
    plan = decoding.decode_jsonlines(body.encode("utf-16"), media("application/jsonlines; charset=utf-16"), LIMITS)
    assert plan.count == 2


@pytest.mark.parametrize("body", [b"\x89PNG\r\n\x1a\nxx", b"garbage", png(np.zeros((4, 4, 3), np.uint8))[:30]])
def test_messages_never_show_object_addresses(body):
    with pytest.raises(BadRequest) as info:
        decoding.decode(decoding.decode_image, body, media("image/png"), LIMITS)
    assert "0x" not in str(info.value)
    assert "object at" not in str(info.value)


def test_a_configured_png_default_falls_back_to_json_for_a_batch():
    defaults = [codecs.MediaType(codecs.PNG), codecs.MediaType(codecs.JSON)]
    for header in (None, "*/*"):
        assert codecs.negotiate(codecs.parse_accept(header), defaults, count=2, same_shape=True).essence == codecs.JSON
        assert codecs.negotiate(codecs.parse_accept(header), defaults, count=1, same_shape=True).essence == codecs.PNG


def test_request_pixel_total_is_limited_naming_the_setting():
    limits = decoding.Limits(max_pixels=64 * 64, max_request_pixels=3 * 100)
    with pytest.raises(BadRequest, match="SERVE_MAX_REQUEST_PIXELS"):
        decoding.decode_npy(npy(np.zeros((4, 10, 10, 3), np.uint8)), media("application/x-npy"), limits)
    assert decoding.decode_npy(npy(np.zeros((3, 10, 10, 3), np.uint8)), media("application/x-npy"), limits).count == 3


def test_no_record_limit_when_none_is_set():
    limits = decoding.Limits(max_pixels=64 * 64, max_images=None)
    body = (json.dumps([[[0, 0, 0]]]) + "\n").encode() * 5000
    plan = decoding.decode_jsonlines(body, media("application/jsonlines"), limits)
    assert plan.count == 5000
    assert plan.shapes.shape == (5000, 2)


def test_the_plan_keeps_only_the_first_slice_decoded():
    body = npy(np.zeros((10, 8, 8, 3), np.float64))
    plan = decoding.decode_npy(body, media("application/x-npy"), decoding.Limits(64 * 64), cache_pixels=3 * 64)
    assert sorted(plan.cache) == [0, 1, 2]
    assert [im.dtype for im in plan.images] == [np.float32] * 10


@pytest.mark.parametrize(
    ("request_type", "configured", "expected"),
    [
        (codecs.PNG, None, [codecs.JSON]),
        (codecs.NPY, None, [codecs.JSON]),
        (codecs.JSON, None, [codecs.JSON]),
        (codecs.JSONLINES, None, [codecs.JSONLINES]),
        (codecs.JSONLINES, codecs.PNG, [codecs.PNG, codecs.JSONLINES]),
        (codecs.NPY, codecs.NPY, [codecs.NPY, codecs.JSON]),
    ],
)
def test_a_missing_accept_falls_back_to_the_configured_type_then_to_the_requests_own_json(request_type, configured,
                                                                                          expected):
    chosen = codecs.fallback_types(codecs.MediaType(request_type), configured and codecs.MediaType(configured))
    assert [m.essence for m in chosen] == expected


def test_a_default_accept_must_be_a_type_we_answer_in():
    assert codecs.answer_type("Application/JSONL").essence == codecs.JSONLINES
    with pytest.raises(ValueError, match="image/png"):
        codecs.answer_type("image/jpeg")
