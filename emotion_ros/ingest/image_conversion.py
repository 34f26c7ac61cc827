"""sensor_msgs/Image and CompressedImage fields -> (H, W, 3) uint8 RGB, without cv_bridge.

ROS 2 cv_bridge is not installable from the registries here, so conversion is our own small numpy
code: one `np.frombuffer` view of the message bytes (free), vectorised slicing/arithmetic, one copy.
Every field is validated first; a bad message raises `InputError` with a counted reason:

  unknown_encoding, image_zero_size, image_too_large, image_odd_width (YUV 4:2:2 needs even width),
  image_step_too_small, image_data_too_short, image_data_size_mismatch (data longer than
  step*height: ROS defines len(data) == step*height, so extra bytes mean the fields lie),
  image_bad_field (height/width/step not integers), image_bad_data_type, image_bad_array (publisher side).
CompressedImage adds: compressed_unsupported_format, compressed_empty, compressed_too_large,
  compressed_format_mismatch, compressed_decode_failed.

Encodings (sensor_msgs/image_encodings.hpp names; lower-case aliases accepted):
  rgb8, bgr8, rgba8, bgra8, mono8, mono16 (scaled to 8 bit: round(v*255/65535), honours is_bigendian),
  yuv422 == UYVY (byte order U0 Y0 V0 Y1; alias "uyvy"),
  yuv422_yuy2 == YUYV (byte order Y0 U0 Y1 V0; aliases "yuyv", "yuy2").
YUV -> RGB uses BT.601. `yuv_range="limited"` (default; Y in 16..235, what V4L2 cameras and
OpenCV's COLOR_YUV2RGB_UYVY/YUY2, hence cv_bridge, use) or "full" (JPEG/JFIF, Y in 0..255).
"""
from __future__ import annotations

import io
import warnings

import numpy as np

from emotion_ros.ingest.errors import InputError, byte_view

DEFAULT_MAX_WIDTH = 4096
DEFAULT_MAX_HEIGHT = 4096
# Largest CompressedImage payload accepted (bytes); a 4096^2 JPEG at high quality is well below this.
DEFAULT_MAX_COMPRESSED_BYTES = 64 * 1024 * 1024

# canonical encoding -> bytes per pixel
_BPP = {
    "rgb8": 3,
    "bgr8": 3,
    "rgba8": 4,
    "bgra8": 4,
    "mono8": 1,
    "mono16": 2,
    "yuv422": 2,
    "yuv422_yuy2": 2,
}
_ALIASES = {
    "uyvy": "yuv422",
    "yuyv": "yuv422_yuy2",
    "yuy2": "yuv422_yuy2",
}

SUPPORTED_ENCODINGS = tuple(_BPP)


def canonical_encoding(encoding) -> str:
    """Canonical lower-case encoding name, or InputError("unknown_encoding")."""
    if not isinstance(encoding, str):
        raise InputError("unknown_encoding", f"encoding must be a string, got {type(encoding).__name__}")
    enc = encoding.strip().lower()
    enc = _ALIASES.get(enc, enc)
    if enc not in _BPP:
        shown = encoding if len(encoding) <= 40 else encoding[:40] + "..."
        raise InputError("unknown_encoding", f"unsupported image encoding {shown!r}; supported: "
                         f"{', '.join(SUPPORTED_ENCODINGS)} (+ aliases uyvy, yuyv, yuy2)")
    return enc


def bytes_per_pixel(encoding: str) -> int:
    return _BPP[canonical_encoding(encoding)]


def _as_int(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InputError("image_bad_field", f"{name} must be an integer, got {type(value).__name__}")
    return int(value)


def _bt601_yuv_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray, yuv_range: str) -> np.ndarray:
    """BT.601 YCbCr -> RGB on float32 arrays of equal shape; returns uint8 (..., 3)."""
    y = y.astype(np.float32)
    u = u.astype(np.float32) - 128.0
    v = v.astype(np.float32) - 128.0
    if yuv_range == "limited":
        c = (y - 16.0) * (255.0 / 219.0)
        kr, kgu, kgv, kb = 1.402 * 255.0 / 224.0, 0.344136 * 255.0 / 224.0, 0.714136 * 255.0 / 224.0, 1.772 * 255.0 / 224.0
    elif yuv_range == "full":
        c = y
        kr, kgu, kgv, kb = 1.402, 0.344136, 0.714136, 1.772
    else:
        raise ValueError(f"yuv_range must be 'limited' or 'full', not {yuv_range!r}")
    out = np.empty(y.shape + (3,), dtype=np.float32)
    out[..., 0] = c + kr * v
    out[..., 1] = c - kgu * u - kgv * v
    out[..., 2] = c + kb * u
    np.rint(out, out=out)
    np.clip(out, 0.0, 255.0, out=out)
    return out.astype(np.uint8)


def image_to_rgb(encoding, height, width, step, data, is_bigendian=0, *,
                 max_width: int = DEFAULT_MAX_WIDTH, max_height: int = DEFAULT_MAX_HEIGHT,
                 yuv_range: str = "limited") -> np.ndarray:
    """Convert sensor_msgs/Image fields to a new (height, width, 3) uint8 RGB array (owns its memory).

    Raises InputError (see module docstring for the reasons); never anything else for bad fields.
    """
    enc = canonical_encoding(encoding)
    bpp = _BPP[enc]
    h = _as_int(height, "height")
    w = _as_int(width, "width")
    s = _as_int(step, "step")
    if h <= 0 or w <= 0:
        raise InputError("image_zero_size", f"image size {w}x{h} is empty")
    if h > max_height or w > max_width:
        raise InputError("image_too_large", f"image size {w}x{h} exceeds the cap {max_width}x{max_height}")
    if enc in ("yuv422", "yuv422_yuy2") and w % 2:
        raise InputError("image_odd_width", f"{enc} packs 2 pixels per 4 bytes; width {w} is odd")
    row_bytes = w * bpp
    if s < row_bytes:
        raise InputError("image_step_too_small", f"step {s} < width*bytes_per_pixel = {w}*{bpp} = {row_bytes}")
    buf = byte_view(data, "image_bad_data_type")
    need = h * s
    if buf.nbytes < need:
        raise InputError("image_data_too_short", f"data has {buf.nbytes} bytes, step*height = {need}")
    if buf.nbytes > need:
        raise InputError("image_data_size_mismatch",
                         f"data has {buf.nbytes} bytes, more than step*height = {need} (ROS requires equality)")

    rows = np.frombuffer(buf, dtype=np.uint8, count=need).reshape(h, s)[:, :row_bytes]
    if enc == "rgb8":
        return rows.reshape(h, w, 3).copy()
    if enc == "bgr8":
        return rows.reshape(h, w, 3)[:, :, ::-1].copy()
    if enc == "rgba8":
        return rows.reshape(h, w, 4)[:, :, :3].copy()
    if enc == "bgra8":
        return rows.reshape(h, w, 4)[:, :, 2::-1].copy()
    if enc == "mono8":
        return np.repeat(rows.reshape(h, w, 1), 3, axis=2)
    if enc == "mono16":
        dt = np.dtype(">u2") if is_bigendian else np.dtype("<u2")
        vals = np.ascontiguousarray(rows).view(dt).reshape(h, w).astype(np.uint32)
        # round(v * 255 / 65535) in integers: 65535 -> 255, 0 -> 0, 32896 -> 128
        mono = ((vals * 255 + 32767) // 65535).astype(np.uint8)
        return np.repeat(mono[:, :, None], 3, axis=2)
    # YUV 4:2:2: 4 bytes carry two pixels sharing one U and one V.
    quads = rows.reshape(h, w // 2, 4)
    if enc == "yuv422":  # UYVY
        u, y0, v, y1 = quads[..., 0], quads[..., 1], quads[..., 2], quads[..., 3]
    else:  # yuv422_yuy2 = YUYV
        y0, u, y1, v = quads[..., 0], quads[..., 1], quads[..., 2], quads[..., 3]
    y = np.stack([y0, y1], axis=-1).reshape(h, w)
    u = np.repeat(u, 2, axis=1)
    v = np.repeat(v, 2, axis=1)
    return _bt601_yuv_to_rgb(y, u, v, yuv_range)


def _bt601_rgb_to_yuv(rgb: np.ndarray, yuv_range: str):
    f = rgb.astype(np.float32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = (b - y) / 1.772
    cr = (r - y) / 1.402
    if yuv_range == "limited":
        y = 16.0 + y * (219.0 / 255.0)
        cb = cb * (224.0 / 255.0)
        cr = cr * (224.0 / 255.0)
    elif yuv_range != "full":
        raise ValueError(f"yuv_range must be 'limited' or 'full', not {yuv_range!r}")
    return y, cb + 128.0, cr + 128.0


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def rgb_to_image_fields(rgb, encoding: str = "rgb8", *, row_padding: int = 0, is_bigendian: bool = False,
                        yuv_range: str = "limited") -> tuple[int, int, int, bytes]:
    """(H, W, 3) uint8 RGB -> (height, width, step, data) of a sensor_msgs/Image, for publishers and tests.

    mono8/mono16 store BT.601 luma; yuv422/yuyv average U and V over each pixel pair. `row_padding`
    adds that many zero bytes at the end of each row (step > width*bpp), as some drivers do.
    Raises InputError("image_bad_array") for arrays that are not (H, W, 3) uint8.
    """
    enc = canonical_encoding(encoding)
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError("image_bad_array", f"expected (H, W, 3) uint8, got {arr.shape} {arr.dtype}")
    h, w = arr.shape[:2]
    if enc == "rgb8":
        px = arr
    elif enc == "bgr8":
        px = arr[:, :, ::-1]
    elif enc == "rgba8":
        px = np.concatenate([arr, np.full((h, w, 1), 255, np.uint8)], axis=2)
    elif enc == "bgra8":
        px = np.concatenate([arr[:, :, ::-1], np.full((h, w, 1), 255, np.uint8)], axis=2)
    elif enc in ("mono8", "mono16"):
        y, _, _ = _bt601_rgb_to_yuv(arr, "full")
        if enc == "mono8":
            px = _u8(y)
        else:
            px = (np.clip(np.rint(y), 0, 255).astype(np.uint16) * 257).astype(">u2" if is_bigendian else "<u2")
            px = px.view(np.uint8).reshape(h, w, 2)
    else:
        if w % 2:
            raise InputError("image_odd_width", f"{enc} needs an even width, got {w}")
        y, u, v = _bt601_rgb_to_yuv(arr, yuv_range)
        u2 = (u[:, 0::2] + u[:, 1::2]) / 2.0
        v2 = (v[:, 0::2] + v[:, 1::2]) / 2.0
        y0, y1 = _u8(y[:, 0::2]), _u8(y[:, 1::2])
        if enc == "yuv422":
            px = np.stack([_u8(u2), y0, _u8(v2), y1], axis=-1)
        else:
            px = np.stack([y0, _u8(u2), y1, _u8(v2)], axis=-1)
    rows = np.ascontiguousarray(px).reshape(h, -1)
    if row_padding:
        rows = np.concatenate([rows, np.zeros((h, int(row_padding)), np.uint8)], axis=1)
    return h, w, rows.shape[1], rows.tobytes()


# ---------------------------------------------------------------------------------------------------
# sensor_msgs/CompressedImage

_MAGIC = {"JPEG": (b"\xff\xd8\xff",), "PNG": (b"\x89PNG\r\n\x1a\n",)}


def _compressed_kind(fmt) -> str:
    """'JPEG' or 'PNG' from a CompressedImage.format such as "jpeg", "png", "rgb8; jpeg compressed bgr8"."""
    if not isinstance(fmt, str):
        raise InputError("compressed_unsupported_format", f"format must be a string, got {type(fmt).__name__}")
    f = fmt.strip().lower()
    if "compresseddepth" in f:
        raise InputError("compressed_unsupported_format", "compressedDepth images are not supported")
    # image_transport writes "<orig encoding>; <codec> compressed <encoding>"; plain "jpeg"/"png" also occur.
    codec = f.split(";", 1)[1] if ";" in f else f
    if "jpeg" in codec or "jpg" in codec:
        return "JPEG"
    if "png" in codec:
        return "PNG"
    shown = fmt if len(fmt) <= 40 else fmt[:40] + "..."
    raise InputError("compressed_unsupported_format", f"unsupported CompressedImage format {shown!r} (jpeg, png)")


def compressed_to_rgb(format, data, *, max_width: int = DEFAULT_MAX_WIDTH, max_height: int = DEFAULT_MAX_HEIGHT,
                      max_bytes: int = DEFAULT_MAX_COMPRESSED_BYTES) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage (JPEG or PNG) to (H, W, 3) uint8 RGB with Pillow.

    Decompression-bomb defence: the payload size is capped, only the decoder named by `format` is allowed
    (Pillow `formats=`), and the header's width/height are checked against the cap BEFORE pixels are
    decoded. Any decoder failure (truncated, corrupt) becomes InputError("compressed_decode_failed").
    """
    from PIL import Image  # imported here so that raw-image users do not need Pillow

    kind = _compressed_kind(format)
    try:
        buf = byte_view(data, "image_bad_data_type")
    except InputError as exc:
        raise InputError("compressed_decode_failed", exc.message) from None
    if buf.nbytes == 0:
        raise InputError("compressed_empty", "CompressedImage.data is empty")
    if buf.nbytes > max_bytes:
        raise InputError("compressed_too_large", f"{buf.nbytes} bytes > cap {max_bytes}")
    raw = buf.tobytes()
    if not raw.startswith(_MAGIC[kind]):
        raise InputError("compressed_format_mismatch", f"format says {kind} but the data does not start like one")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw), formats=[kind]) as im:
                w, h = im.size
                if w <= 0 or h <= 0:
                    raise InputError("image_zero_size", f"decoded size {w}x{h}")
                if w > max_width or h > max_height:
                    raise InputError("image_too_large", f"{kind} header says {w}x{h} > cap {max_width}x{max_height}")
                rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard (Image.MAX_IMAGE_PIXELS) fired while reading the header
        raise InputError("image_too_large", f"{kind} decompression-bomb guard: {exc}") from None
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, EOFError... for corrupt data
        raise InputError("compressed_decode_failed", f"{kind} decode failed: {type(exc).__name__}: {exc}") from None
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InputError("compressed_decode_failed", f"decoder returned shape {rgb.shape}")
    return np.array(rgb, copy=True)


def rgb_to_compressed(rgb, fmt: str = "jpeg", quality: int = 90) -> tuple[str, bytes]:
    """(H, W, 3) uint8 RGB -> (format, data) of a CompressedImage, for publishers and tests."""
    from PIL import Image

    kind = _compressed_kind(fmt)
    out = io.BytesIO()
    img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    if kind == "JPEG":
        img.save(out, format="JPEG", quality=int(quality))
    else:
        img.save(out, format="PNG")
    return kind.lower(), out.getvalue()


def check_rgb(rgb) -> np.ndarray:
    """A pushed frame: (H, W, 3) uint8 with H, W > 0, or InputError("frame_bad_array")."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 \
            or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        shape = getattr(rgb, "shape", None)
        raise InputError("frame_bad_array",
                         f"frame must be (H, W, 3) uint8, got {shape} {getattr(rgb, 'dtype', type(rgb).__name__)}")
    return rgb


def letterbox_rgb(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (height, width, 3): scaled to fit with its aspect ratio kept, centred, black bars.

    Used when a camera changes resolution inside a window: the older frames are fitted into the newest
    frame size so the window's frames stack, and a face keeps its shape from frame to frame (stretching a
    4:3 frame to 16:9 would widen it by a third). Bilinear with Pillow's reducing filter (antialiased).
    """
    from PIL import Image

    h, w = rgb.shape[:2]
    if (h, w) == (height, width):
        return rgb
    scale = min(height / h, width / w)
    nh, nw = max(1, min(height, int(round(h * scale)))), max(1, min(width, int(round(w * scale))))
    scaled = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize((nw, nh), Image.BILINEAR))
    out = np.zeros((height, width, 3), dtype=np.uint8)
    top, left = (height - nh) // 2, (width - nw) // 2
    out[top:top + nh, left:left + nw] = scaled
    return out
