"""The one media decoder (emotion_ros.ingest.media): media-time trimming in every container, and make-bag
and training reading the same samples of a clip."""
import av
import numpy as np
import pytest

from emotion_ros.ingest.media import MediaError, decode_audio, decode_video, iter_video_frames, write_media
from emotion_ros.ingest.window import AUDIO_SAMPLE_RATE as SR

NOISE = (0.2 * np.random.default_rng(0).standard_normal(int(1.3 * SR))).astype(np.float32)
FRAMES = np.random.default_rng(1).integers(0, 255, (20, 64, 64, 3)).astype(np.uint8)


def _offset(reference: np.ndarray, decoded: np.ndarray) -> int:
    """Where `reference` lies in `decoded` (samples), by cross-correlation of white noise."""
    return int(np.argmax(np.correlate(decoded, reference, mode="valid")))


@pytest.mark.parametrize("ext", [".mp4", ".mkv", ".avi", ".wav"])
def test_audio_segment_is_in_media_time(tmp_path, ext):
    path = tmp_path / f"clip{ext}"
    write_media(path, None if ext == ".wav" else FRAMES, 15, NOISE, SR)
    seg = decode_audio(path, 0.5, 1.2)
    assert len(seg) == int(0.7 * SR)
    # sample 800 of the segment is media time 0.55 s (the seek-based decoder was 192 samples off in mkv)
    assert _offset(NOISE[int(0.55 * SR):int(0.75 * SR)], seg) == 800
    whole = decode_audio(path)
    assert _offset(NOISE[:SR // 2], whole) == 0


def test_a_stream_starting_late_is_zero_filled_at_the_head(tmp_path):
    path = tmp_path / "late.mkv"
    lead = 4000  # the audio stream starts at 0.25 s
    with av.open(str(path), "w") as c:
        s = c.add_stream("pcm_s16le", rate=SR)
        s.layout = "mono"
        pcm = (NOISE * 32767).astype(np.int16)
        for i in range(0, len(pcm), 1000):
            frame = av.AudioFrame.from_ndarray(pcm[None, i:i + 1000], format="s16", layout="mono")
            frame.sample_rate, frame.pts = SR, lead + i
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    x = decode_audio(path, 0.0, 1.0)
    assert len(x) == SR
    assert np.all(x[:lead - 20] == 0) and np.abs(x[lead + 100:]).max() > 0.1
    assert _offset(NOISE[:4000], x) == lead


def test_video_frames_window_rate_and_size(tmp_path):
    path = tmp_path / "clip.mp4"
    write_media(path, FRAMES, 15, NOISE, SR)
    v = decode_video(path, 0.3, 1.0)
    assert len(v.frames) == 10 and v.times_s[0] == pytest.approx(1 / 3) and v.times_s[-1] < 1.0
    kept = [(t, img.shape) for t, img in iter_video_frames(path, max_fps=5, max_side=32)]
    assert [round(t, 3) for t, _ in kept] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2] and kept[0][1] == (32, 32, 3)


def test_missing_file_and_missing_stream_are_named(tmp_path):
    with pytest.raises(MediaError, match="file not found") as e:
        decode_audio(tmp_path / "nope.mp4")
    assert e.value.reason == "media_missing"
    wav = tmp_path / "a.wav"
    write_media(wav, None, 15, NOISE, SR)
    with pytest.raises(MediaError, match="no video stream"):
        decode_video(wav)


def test_make_bag_and_training_read_the_same_samples(tmp_path):
    from emotion_ros.bags.bag_io import BagReader
    from emotion_ros.bags.clips import make_bag_from_clips
    from emotion_ros_training.data.manifest import MER6, ClipRecord
    from emotion_ros_training.data.media import sample_clip

    path = tmp_path / "clip.mkv"
    write_media(path, FRAMES, 15, NOISE, SR)
    rec = ClipRecord(clip_id="c0", dataset="SYNTH", split="test", label_space=MER6, labels=["happy"],
                     video_path=str(path), audio_path=str(path), subtitle="hi", start_s=0.4, end_s=1.2,
                     modalities=["audio", "vision", "text"])
    window = sample_clip(rec)
    make_bag_from_clips([rec], tmp_path / "bag")
    with BagReader(tmp_path / "bag") as bag:
        pcm = b"".join(bytes(m.data) for _, m in bag.decoded(["/audio"]))
    from_bag = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768.0
    assert len(from_bag) == len(window.audio) == int(0.8 * SR)
    np.testing.assert_allclose(from_bag, window.audio, atol=1.5 / 32768)  # S16 quantisation only
