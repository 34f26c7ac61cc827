"""AudioChunk conversion: formats, mixdown, resampling, clipping, every error reason, publisher inverse."""
import array
import struct

import numpy as np
import pytest

from emotion_ros.ingest.audio_conversion import chunk_to_mono, mono_to_chunk_bytes
from emotion_ros.ingest.errors import InputError


def test_s16le_mono_exact():
    ints = [0, 1, -1, 16384, -32768, 32767, 1234]
    data = struct.pack("<%dh" % len(ints), *ints)
    out = chunk_to_mono(16000, 1, "S16LE", data)
    assert out.samples.dtype == np.float32
    np.testing.assert_array_equal(out.samples, np.array(ints, dtype=np.float64) / 32768.0)
    assert out.clipped == 2  # -32768 and 32767 are full scale


def test_f32le_stereo_mixdown_is_channel_mean():
    left = [0.5, -0.25, 0.0, 0.125]
    right = [0.25, 0.25, -1.0, 0.125]
    data = b"".join(struct.pack("<ff", a, b) for a, b in zip(left, right))
    out = chunk_to_mono(16000, 2, "F32LE", data)
    np.testing.assert_allclose(out.samples, [(a + b) / 2 for a, b in zip(left, right)], atol=1e-7)
    assert out.clipped == 1  # the -1.0


def test_buffer_types_and_lowercase_format():
    data = struct.pack("<4h", 1, 2, 3, 4)
    for d in (array.array("B", data), memoryview(data), bytearray(data), list(data)):
        assert chunk_to_mono(16000, 1, "s16le", d).samples.shape == (4,)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000, 96000])
def test_resampling_keeps_time_and_frequency(rate):
    n = rate  # one second
    t = np.arange(n) / rate
    x = 0.5 * np.sin(2 * np.pi * 440.0 * t)
    out = chunk_to_mono(rate, 1, "F32LE", x.astype("<f4").tobytes()).samples
    assert abs(len(out) - 16000) <= 1
    ref = 0.5 * np.sin(2 * np.pi * 440.0 * np.arange(len(out)) / 16000)
    core = slice(400, len(out) - 400)  # away from the chunk-edge transient
    assert np.abs(out[core] - ref[core]).max() < 0.02
    spec = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spec) * 16000 / len(out) - 440.0) < 2.0


def test_f32_clipping_counted_and_clipped():
    x = np.array([0.2, 1.5, -3.0, 0.999], dtype="<f4")
    out = chunk_to_mono(16000, 1, "F32LE", x.tobytes())
    assert out.clipped == 2
    np.testing.assert_allclose(out.samples, [0.2, 1.0, -1.0, 0.999], atol=1e-7)
    assert not chunk_to_mono(16000, 1, "F32LE", np.zeros(8, "<f4").tobytes()).clipped


@pytest.mark.parametrize("args,reason", [
    ((16000, 1, "S24LE", bytes(6)), "audio_unknown_format"),
    ((16000, 1, None, bytes(6)), "audio_unknown_format"),
    ((16000, 0, "S16LE", bytes(4)), "audio_bad_channels"),
    ((16000, 9, "S16LE", bytes(18)), "audio_bad_channels"),
    ((16000, 1.0, "S16LE", bytes(4)), "audio_bad_channels"),
    ((7999, 1, "S16LE", bytes(4)), "audio_bad_sample_rate"),
    ((192001, 1, "S16LE", bytes(4)), "audio_bad_sample_rate"),
    ((44100.0, 1, "S16LE", bytes(4)), "audio_bad_sample_rate"),
    ((16000, 1, "S16LE", b""), "audio_empty"),
    ((16000, 1, "S16LE", bytes(3)), "audio_odd_byte_count"),
    ((16000, 2, "S16LE", bytes(6)), "audio_odd_byte_count"),
    ((16000, 1, "F32LE", bytes(6)), "audio_odd_byte_count"),
    ((16000, 1, "F32LE", struct.pack("<3f", 0.1, float("nan"), 0.2)), "audio_non_finite"),
    ((16000, 1, "F32LE", struct.pack("<2f", float("inf"), 0.2)), "audio_non_finite"),
    ((16000, 1, "F32LE", struct.pack("<2f", 0.1, float("-inf"))), "audio_non_finite"),
    ((16000, 1, "S16LE", object()), "audio_bad_data_type"),
    ((16000, 1, "S16LE", [1, 2, 999]), "audio_bad_data_type"),
])
def test_error_reasons(args, reason):
    with pytest.raises(InputError) as exc:
        chunk_to_mono(*args)
    assert exc.value.reason == reason


def test_chunk_length_cap():
    with pytest.raises(InputError) as exc:
        chunk_to_mono(8000, 1, "S16LE", bytes(2 * 8000 * 3), max_chunk_s=2.0)
    assert exc.value.reason == "audio_chunk_too_long"
    assert chunk_to_mono(8000, 1, "S16LE", bytes(2 * 8000 * 2), max_chunk_s=2.0).samples.size == 32000  # 2 s at 16 kHz


def test_publisher_inverse_round_trip():
    k = np.array([0, 1, -1, 100, -32768, 32767, -5000])
    x = k / 32768.0
    back = chunk_to_mono(16000, 1, "S16LE", mono_to_chunk_bytes(x, "S16LE")).samples
    np.testing.assert_array_equal(back, x.astype(np.float32))
    y = np.random.default_rng(0).uniform(-1, 1, 100).astype(np.float32)
    np.testing.assert_array_equal(chunk_to_mono(16000, 1, "F32LE", mono_to_chunk_bytes(y, "F32LE")).samples, y)
    stereo = mono_to_chunk_bytes(y, "F32LE", channels=2)
    assert len(stereo) == 2 * 4 * len(y)
    np.testing.assert_allclose(chunk_to_mono(16000, 2, "F32LE", stereo).samples, y, atol=1e-7)


@pytest.mark.parametrize("samples,fmt,reason", [
    (np.zeros(4), "U8", "audio_unknown_format"),
    (np.zeros((2, 2)), "S16LE", "audio_bad_array"),
    (np.array([0.1, np.nan]), "F32LE", "audio_non_finite"),
])
def test_publisher_errors(samples, fmt, reason):
    with pytest.raises(InputError) as exc:
        mono_to_chunk_bytes(samples, fmt)
    assert exc.value.reason == reason
