"""Bag reading/writing (MCAP and sqlite3) and one clear BagError per broken bag."""
import os
import shutil

import pytest

from emotion_ros.bags.bag_io import BagError, BagReader, BagWriter, bag_info, copy_bag, read_all
from emotion_ros.bags.clips import write_synthetic_bag
from emotion_ros.bags.typestore import AUDIO_CHUNK, IMAGE, STRING, header_msg, project_typestore


@pytest.fixture(scope="module")
def sample_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("bags") / "session"
    write_synthetic_bag(path, [("happy", 1.0), ("sad", 1.0)], fps=10)
    return path


def test_write_read_round_trip_keeps_bytes_and_time_order(tmp_path):
    store = project_typestore()
    written = []
    with BagWriter(tmp_path / "b") as bag:
        for i in range(20):
            topic = ["/a", "/b"][i % 2]
            msg = store.types[STRING](data=f"m{i}")
            t = 1000 + (19 - i if topic == "/b" else i)  # /b goes backwards in time
            bag.write(topic, t, msg)
            written.append((topic, t, bytes(store.serialize_cdr(msg, STRING))))
    got = read_all(tmp_path / "b")
    assert [m.timestamp_ns for m in got] == sorted(t for _, t, _ in written)
    assert sorted((m.topic, m.timestamp_ns, m.data) for m in got) == sorted(written)
    assert got[0].decode().data in {"m0", "m19"}


def test_sqlite3_and_mcap_hold_the_same_messages(tmp_path, sample_bag):
    n = copy_bag(sample_bag, tmp_path / "copy_sqlite", storage="sqlite3")
    assert os.listdir(tmp_path / "copy_sqlite") and any(p.endswith(".db3") for p in os.listdir(tmp_path / "copy_sqlite"))
    a, b = read_all(sample_bag), read_all(tmp_path / "copy_sqlite")
    assert n == len(a) == len(b)
    assert [(m.topic, m.timestamp_ns, m.data) for m in a] == [(m.topic, m.timestamp_ns, m.data) for m in b]
    info = bag_info(sample_bag)
    assert info["message_counts"] == {"/camera/image_raw": 20, "/audio": 20, "/transcript": 2}
    assert info["topics"]["/audio"] == AUDIO_CHUNK


def test_decoded_views_and_header_stamps(sample_bag):
    with BagReader(sample_bag) as bag:
        m, img = next(bag.decoded(["/camera/image_raw"]))
        assert m.msgtype == IMAGE and img.encoding == "rgb8"
        assert img.data.size == img.height * img.step
        assert m.header_stamp_ns() == img.header.stamp.sec * 10**9 + img.header.stamp.nanosec == m.timestamp_ns
        m, audio = next(bag.decoded(["/audio"]))
        assert audio.sample_rate == 16000 and audio.sample_format == "S16LE" and len(audio.data) == 3200
        m, text = next(bag.decoded(["/transcript"]))
        assert m.header_stamp_ns() is None and "happy" in text.data


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst, next(p for p in dst.iterdir() if p.suffix in (".mcap", ".db3"))


def _error(path) -> BagError:
    with pytest.raises(BagError) as info:
        read_all(path)
    err = info.value
    assert str(err).count(". ") == 0 and str(err).endswith("."), "one sentence"
    return err


def test_truncated_mcap(tmp_path, sample_bag):
    bag, data = _copy(sample_bag, tmp_path / "trunc")
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 2)
    err = _error(bag)
    assert err.reason == "truncated" and str(data) in str(err) and "truncated" in str(err)


def test_corrupt_mcap_bytes(tmp_path, sample_bag):
    bag, data = _copy(sample_bag, tmp_path / "magic")
    raw = bytearray(data.read_bytes())
    raw[:8] = b"\x00" * 8
    data.write_bytes(bytes(raw))
    err = _error(bag)
    assert err.reason == "not_mcap" and str(data) in str(err)

    bag, data = _copy(sample_bag, tmp_path / "records")
    raw = bytearray(data.read_bytes())
    raw[8:20] = b"\xff" * 12  # garbage over the first record's opcode and length
    data.write_bytes(bytes(raw))
    err = _error(bag)
    assert err.reason == "corrupt" and str(data) in str(err)


def test_corrupt_and_headerless_sqlite(tmp_path, sample_bag):
    copy_bag(sample_bag, tmp_path / "sq", storage="sqlite3")
    bag, data = _copy(tmp_path / "sq", tmp_path / "sq_bad")
    raw = bytearray(data.read_bytes())
    raw[:100] = b"x" * 100
    data.write_bytes(bytes(raw))
    err = _error(bag)
    assert err.reason == "corrupt" and "sqlite3" in str(err) and str(data) in str(err)

    bag, data = _copy(tmp_path / "sq", tmp_path / "sq_nometa")
    (bag / "metadata.yaml").unlink()
    err = _error(bag)
    assert err.reason == "missing_metadata" and str(bag) in str(err) and "metadata.yaml" in str(err)
    assert len(read_all(data)) == 42  # the storage file alone still reads


def test_wrong_path_and_not_a_bag(tmp_path):
    err = _error(tmp_path / "nope")
    assert err.reason == "not_found" and "does not exist" in str(err)
    (tmp_path / "empty").mkdir()
    assert _error(tmp_path / "empty").reason == "missing_metadata"


def test_undecodable_message_is_a_bag_error(tmp_path):
    with BagWriter(tmp_path / "b") as bag:
        bag.write("/camera/image_raw", 1, b"\x00\x01\x00\x00\x01", IMAGE)  # far too short for an Image
    with BagReader(tmp_path / "b") as bag:
        with pytest.raises(BagError, match=r"does not decode as sensor_msgs/msg/Image") as info:
            list(bag.decoded())
    assert info.value.reason == "bad_message"


def test_writer_refuses_to_overwrite(tmp_path, sample_bag):
    with pytest.raises(BagError, match="already exists"):
        BagWriter(sample_bag).open()


def test_make_bag_onto_an_existing_folder_names_overwrite(tmp_path, capsys):
    from emotion_ros.app.bag_commands import main

    out = str(tmp_path / "session")
    assert main(["make-bag", "--synthetic", "happy:1", out]) == 0
    with pytest.raises(SystemExit) as e:
        main(["make-bag", "--synthetic", "sad:2", out])
    assert str(e.value) == f"make-bag: {out} already exists; pass --overwrite to replace it"
    assert main(["make-bag", "--synthetic", "sad:2", out, "--overwrite"]) == 0
    with BagReader(out) as bag:
        assert (bag.end_ns - bag.start_ns) / 1e9 > 1.5  # the new 2 s session replaced the 1 s one
    assert '"sad"' in (tmp_path / "session" / "annotations.json").read_text()
    with pytest.raises(SystemExit, match=r"^make-bag: .*missing.jsonl: manifest file not found$"):
        main(["make-bag", "--manifest", str(tmp_path / "missing.jsonl"), str(tmp_path / "other")])


def test_make_bag_t0_moves_the_clock_and_the_annotations(tmp_path):
    """Bags replayed one after another need increasing starts: --t0 sets the first stamp (bag time, header
    stamps and the annotations' origin alike)."""
    import json

    from emotion_ros.app.bag_commands import main

    out = tmp_path / "later"
    assert main(["make-bag", "--synthetic", "happy:1", str(out), "--t0", "1700000100.5"]) == 0
    with BagReader(out) as bag:
        assert bag.start_ns == 1_700_000_100_500_000_000
        stamps = [m.header_stamp_ns() for m in bag.messages() if m.header_stamp_ns() is not None]
    assert min(stamps) == 1_700_000_100_500_000_000
    assert json.loads((out / "annotations.json").read_text())["t0_ns"] == 1_700_000_100_500_000_000


@pytest.mark.ros
def test_rclpy_decodes_what_rosbags_wrote(sample_bag):
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image

    from emotion_ros.msg import AudioChunk

    with BagReader(sample_bag) as bag:
        m = next(bag.messages(["/audio"]))
        audio = deserialize_message(m.data, AudioChunk)
        assert audio.sample_rate == 16000 and len(audio.data) == 3200
        # rclpy leaves CDR padding bytes uninitialised, so compare what the bytes decode to, not the bytes
        again = deserialize_message(serialize_message(audio), AudioChunk)
        assert (again.header, again.sample_format, bytes(again.data)) == (audio.header, "S16LE", bytes(audio.data))
        m = next(bag.messages(["/camera/image_raw"]))
        img = deserialize_message(m.data, Image)  # (rclpy leaves CDR padding bytes uninitialised: no byte check)
        assert (img.height, img.width, img.encoding, bytes(img.data)) == (48, 64, "rgb8", m.data[-48 * 64 * 3:])
        store = project_typestore()
        assert store.deserialize_cdr(m.data, IMAGE).header == header_msg(store, m.timestamp_ns, "camera")
