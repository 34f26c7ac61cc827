"""sensor_msgs/Image + CompressedImage conversion: every encoding against references computed another way."""
import array
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from emotion_ros.ingest.errors import InputError
from emotion_ros.ingest.image_conversion import (
    SUPPORTED_ENCODINGS,
    compressed_to_rgb,
    image_to_rgb,
    rgb_to_compressed,
    rgb_to_image_fields,
)

RNG = np.random.default_rng(7)


def _rand_rgb(h=6, w=8):
    return RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _pack_rows(pixel_bytes_per_row, pad=0):
    """Join per-row byte strings built by hand, adding `pad` junk bytes per row."""
    return b"".join(r + bytes([0xAB]) * pad for r in pixel_bytes_per_row)


@pytest.mark.parametrize("pad", [0, 5])
def test_packed_rgb_family_matches_hand_built_bytes(pad):
    rgb = _rand_rgb()
    h, w, _ = rgb.shape
    layouts = {
        "rgb8": lambda p: bytes([p[0], p[1], p[2]]),
        "bgr8": lambda p: bytes([p[2], p[1], p[0]]),
        "rgba8": lambda p: bytes([p[0], p[1], p[2], 77]),
        "bgra8": lambda p: bytes([p[2], p[1], p[0], 77]),
    }
    for enc, fn in layouts.items():
        rows = [b"".join(fn(rgb[y, x]) for x in range(w)) for y in range(h)]
        step = len(rows[0]) + pad
        out = image_to_rgb(enc, h, w, step, _pack_rows(rows, pad))
        assert out.dtype == np.uint8 and out.shape == (h, w, 3)
        np.testing.assert_array_equal(out, rgb, err_msg=enc)
        assert out.flags.writeable and out.flags.c_contiguous


def test_mono8_and_mono16_both_endiannesses():
    h, w = 3, 4
    vals8 = RNG.integers(0, 256, size=(h, w), dtype=np.uint8)
    out = image_to_rgb("mono8", h, w, w + 3, _pack_rows([bytes(r) for r in vals8], 3))
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], vals8)

    vals16 = [[0, 257, 65535, 32896], [128, 129, 65000, 1], [255 * 257, 100 * 257, 3, 60000]]
    expect = np.array([[round(v * 255 / 65535) for v in row] for row in vals16], dtype=np.uint8)
    for big, fmt in ((0, "<H"), (1, ">H")):
        rows = [b"".join(struct.pack(fmt, v) for v in row) for row in vals16]
        out = image_to_rgb("mono16", h, w, 2 * w, _pack_rows(rows), is_bigendian=big)
        np.testing.assert_array_equal(out[:, :, 1], expect)
    assert expect[0].tolist() == [0, 1, 255, 128]


def _ycbcr_pairs(h=4, w=6):
    """Random Y per pixel, Cb/Cr shared by each horizontal pixel pair (what 4:2:2 can carry)."""
    y = RNG.integers(0, 256, size=(h, w), dtype=np.uint8)
    cb = np.repeat(RNG.integers(0, 256, size=(h, w // 2), dtype=np.uint8), 2, axis=1)
    cr = np.repeat(RNG.integers(0, 256, size=(h, w // 2), dtype=np.uint8), 2, axis=1)
    return y, cb, cr


def _uyvy_bytes(y, cb, cr):
    h, w = y.shape
    return b"".join(bytes(v for x in range(0, w, 2) for v in (cb[r, x], y[r, x], cr[r, x], y[r, x + 1])) for r in range(h))


def _yuyv_bytes(y, cb, cr):
    h, w = y.shape
    return b"".join(bytes(v for x in range(0, w, 2) for v in (y[r, x], cb[r, x], y[r, x + 1], cr[r, x])) for r in range(h))


@pytest.mark.parametrize("enc,packer", [("yuv422", _uyvy_bytes), ("uyvy", _uyvy_bytes),
                                        ("yuv422_yuy2", _yuyv_bytes), ("yuyv", _yuyv_bytes)])
def test_yuv422_full_range_matches_pillow_ycbcr(enc, packer):
    y, cb, cr = _ycbcr_pairs()
    h, w = y.shape
    ref = np.asarray(Image.merge("YCbCr", [Image.fromarray(a) for a in (y, cb, cr)]).convert("RGB"))
    out = image_to_rgb(enc, h, w, 2 * w, packer(y, cb, cr), yuv_range="full")
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1


def test_yuv422_limited_range_matches_hand_formula():
    # BT.601 studio range, the textbook coefficients, computed per pixel in plain Python.
    y, cb, cr = _ycbcr_pairs()
    h, w = y.shape
    ref = np.zeros((h, w, 3), dtype=np.uint8)
    for r in range(h):
        for c in range(w):
            Y, U, V = float(y[r, c]) - 16, float(cb[r, c]) - 128, float(cr[r, c]) - 128
            rgb = (1.164 * Y + 1.596 * V, 1.164 * Y - 0.392 * U - 0.813 * V, 1.164 * Y + 2.017 * U)
            ref[r, c] = [min(255, max(0, round(v))) for v in rgb]
    for enc, packer in (("yuv422", _uyvy_bytes), ("yuv422_yuy2", _yuyv_bytes)):
        out = image_to_rgb(enc, h, w, 2 * w + 4, _pack_rows([packer(y[i:i + 1], cb[i:i + 1], cr[i:i + 1]) for i in range(h)], 4))
        assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1, enc


def test_yuv_limited_known_colours():
    # studio white / black / red (Y, Cb, Cr) from the BT.601 tables
    for (Y, U, V), rgb in (((235, 128, 128), (255, 255, 255)), ((16, 128, 128), (0, 0, 0)), ((81, 90, 240), (255, 0, 0))):
        out = image_to_rgb("uyvy", 1, 2, 4, bytes([U, Y, V, Y]))
        assert np.abs(out[0, 0].astype(int) - np.array(rgb)).max() <= 2
        np.testing.assert_array_equal(out[0, 0], out[0, 1])


@pytest.mark.parametrize("enc", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_publisher_round_trip_exact(enc):
    rgb = _rand_rgb(5, 7)
    h, w, step, data = rgb_to_image_fields(rgb, enc, row_padding=3)
    assert (h, w) == (5, 7) and len(data) == h * step
    np.testing.assert_array_equal(image_to_rgb(enc, h, w, step, data), rgb)


@pytest.mark.parametrize("enc", ["mono8", "mono16"])
def test_publisher_round_trip_gray(enc):
    g = RNG.integers(0, 256, size=(4, 6), dtype=np.uint8)
    gray = np.repeat(g[:, :, None], 3, axis=2)
    for big in (False, True):
        h, w, step, data = rgb_to_image_fields(gray, enc, is_bigendian=big)
        np.testing.assert_array_equal(image_to_rgb(enc, h, w, step, data, is_bigendian=int(big)), gray)


@pytest.mark.parametrize("enc", ["yuv422", "yuv422_yuy2"])
@pytest.mark.parametrize("rng", ["limited", "full"])
def test_publisher_round_trip_yuv(enc, rng):
    # pixel pairs of one colour survive 4:2:2 subsampling up to rounding
    rgb = np.repeat(_rand_rgb(4, 3), 2, axis=1)
    h, w, step, data = rgb_to_image_fields(rgb, enc, yuv_range=rng)
    out = image_to_rgb(enc, h, w, step, data, yuv_range=rng)
    assert np.abs(out.astype(int) - rgb.astype(int)).max() <= 3


def test_buffer_types_rclpy_array_memoryview_list():
    rgb = _rand_rgb(2, 2)
    h, w, step, data = rgb_to_image_fields(rgb, "rgb8")
    for d in (array.array("B", data), memoryview(data), bytearray(data), list(data)):
        np.testing.assert_array_equal(image_to_rgb("rgb8", h, w, step, d), rgb)
    out = image_to_rgb("RGB8", h, w, step, data)  # case-insensitive
    np.testing.assert_array_equal(out, rgb)


def test_output_does_not_alias_message_buffer():
    buf = bytearray(rgb_to_image_fields(_rand_rgb(2, 2), "rgb8")[3])
    out = image_to_rgb("rgb8", 2, 2, 6, buf)
    before = out.copy()
    buf[:] = bytes(len(buf))
    np.testing.assert_array_equal(out, before)


@pytest.mark.parametrize("args,reason", [
    (("8UC3", 2, 2, 6, bytes(12)), "unknown_encoding"),
    ((None, 2, 2, 6, bytes(12)), "unknown_encoding"),
    (("rgb8", 0, 2, 6, b""), "image_zero_size"),
    (("rgb8", 2, -1, 6, bytes(12)), "image_zero_size"),
    (("rgb8", 5000, 2, 6, bytes(30000)), "image_too_large"),
    (("rgb8", 2, 4097, 3 * 4097, b""), "image_too_large"),
    (("yuv422", 2, 3, 6, bytes(12)), "image_odd_width"),
    (("rgb8", 2, 2, 5, bytes(10)), "image_step_too_small"),
    (("mono16", 2, 2, 3, bytes(6)), "image_step_too_small"),
    (("rgb8", 2, 2, 6, bytes(11)), "image_data_too_short"),
    (("rgb8", 2, 2, 6, bytes(13)), "image_data_size_mismatch"),
    (("rgb8", 2.0, 2, 6, bytes(12)), "image_bad_field"),
    (("rgb8", 2, 2, "6", bytes(12)), "image_bad_field"),
    (("rgb8", 2, 2, 6, 12345), "image_bad_data_type"),
    (("rgb8", 2, 2, 6, [0, 1, 300]), "image_bad_data_type"),
])
def test_error_reasons(args, reason):
    with pytest.raises(InputError) as exc:
        image_to_rgb(*args)
    assert exc.value.reason == reason


def test_size_cap_is_a_parameter():
    h, w, step, data = rgb_to_image_fields(_rand_rgb(4, 4), "rgb8")
    with pytest.raises(InputError, match="image_too_large"):
        image_to_rgb("rgb8", h, w, step, data, max_width=3)
    assert image_to_rgb("rgb8", h, w, step, data, max_width=4).shape == (4, 4, 3)


def test_supported_list_is_what_converts():
    rgb = np.repeat(_rand_rgb(2, 2), 2, axis=1)
    for enc in SUPPORTED_ENCODINGS:
        h, w, step, data = rgb_to_image_fields(rgb, enc)
        assert image_to_rgb(enc, h, w, step, data).shape == (2, 4, 3)


# ------------------------------------------------------------------------------ CompressedImage

def test_png_round_trip_exact_and_jpeg_close():
    rgb = _rand_rgb(16, 24)
    fmt, data = rgb_to_compressed(rgb, "png")
    np.testing.assert_array_equal(compressed_to_rgb(fmt, data), rgb)
    smooth = np.repeat(np.repeat(_rand_rgb(2, 3), 16, axis=0), 16, axis=1)  # MCU-aligned flat blocks
    fmt, data = rgb_to_compressed(smooth, "jpeg", quality=95)
    for f in (fmt, "rgb8; jpeg compressed bgr8", "JPEG"):
        out = compressed_to_rgb(f, data)
        assert out.shape == smooth.shape
        assert np.median(np.abs(out.astype(int) - smooth.astype(int))) <= 3


def _png_header_only(width, height):
    """A syntactically valid PNG start whose IHDR claims a huge size (decompression-bomb probe)."""
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def test_compressed_bomb_rejected_from_header():
    with pytest.raises(InputError) as exc:
        compressed_to_rgb("png", _png_header_only(100_000, 100_000))  # Pillow's guard
    assert exc.value.reason == "image_too_large"
    with pytest.raises(InputError) as exc:
        compressed_to_rgb("png", _png_header_only(5000, 10))  # our cap, checked before decoding
    assert exc.value.reason == "image_too_large"


@pytest.mark.parametrize("fmt,data,reason", [
    ("rgb8; compressedDepth", b"\x89PNG\r\n\x1a\n", "compressed_unsupported_format"),
    ("webp", b"RIFF", "compressed_unsupported_format"),
    (None, b"", "compressed_unsupported_format"),
    ("png", b"", "compressed_empty"),
    ("jpeg", b"\x89PNG\r\n\x1a\n....", "compressed_format_mismatch"),
    ("png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "compressed_decode_failed"),
    ("png", 3.5, "compressed_decode_failed"),
])
def test_compressed_error_reasons(fmt, data, reason):
    with pytest.raises(InputError) as exc:
        compressed_to_rgb(fmt, data)
    assert exc.value.reason == reason


def test_compressed_truncated_and_size_cap():
    fmt, data = rgb_to_compressed(_rand_rgb(32, 32), "png")
    with pytest.raises(InputError) as exc:
        compressed_to_rgb(fmt, data[: len(data) // 2])
    assert exc.value.reason == "compressed_decode_failed"
    fmt, data = rgb_to_compressed(_rand_rgb(32, 32), "jpeg")
    with pytest.raises(InputError) as exc:
        compressed_to_rgb(fmt, data[: len(data) // 2])
    assert exc.value.reason == "compressed_decode_failed"
    with pytest.raises(InputError) as exc:
        compressed_to_rgb(fmt, data, max_bytes=100)
    assert exc.value.reason == "compressed_too_large"


def test_compressed_gray_and_palette_become_rgb():
    gray = RNG.integers(0, 256, size=(5, 5), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(gray, mode="L").save(buf, format="PNG")
    out = compressed_to_rgb("png", buf.getvalue())
    np.testing.assert_array_equal(out[:, :, 0], gray)
    np.testing.assert_array_equal(out[:, :, 2], gray)
