"""A robot's own drivers and bags work unmodified (issue 17): audio_common audio, usb_cam topic names and
image_transport format strings, bags written by the `mcap` writer, every input used or named, every drop
and every window in the report, corrupt MCAP chunks named and skipped."""
import json
import math
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from emotion_ros.bags.bag_io import BagReader, BagWriter, _mcap_files, _mcap_messages_skipping
from emotion_ros.bags.clips import write_synthetic_bag
from emotion_ros.bags.offline import OfflineRunner, expected_windows
from emotion_ros.bags.topic_map import plan_inputs
from emotion_ros.ingest.window import MODALITY_AUDIO, MODALITY_VISION
from tests.helpers.robot_bags import write_robot_bag

NS = 1_000_000_000


class ModalityEngine:
    """Labels every window 'happy' and reports the modalities the window really carries (no model: the
    point here is which inputs reach the windows)."""

    def process(self, window):
        from emotion_ros.inference.engine import EmotionResult

        return EmotionResult(window=window, label="happy", confidence=1.0, labels=["happy", "sad"], scores=[1.0, 0.0],
                             modalities=int(window.modalities), transcript=window.transcript or "",
                             latency_ms=1.0, model_id="test", task="emotion")


@pytest.fixture(scope="module")
def robot_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("robot") / "rec.mcap"
    write_robot_bag(path, raw=False, compressed=True, sample_rate=48_000, channels=2)
    return path


def test_robot_bag_every_input_used_offline_and_the_mapping_printed(robot_bag):
    lines = []
    result = OfflineRunner(ModalityEngine(), log=lines.append).run(robot_bag)
    text = "\n".join(lines)
    # usb_cam's compressed topic with image_transport's format string, audio_common audio + info
    assert re.search(r"input image\s+<- /image_raw/compressed \[sensor_msgs/msg/CompressedImage\] \(matched by type", text)
    assert re.search(r"input audio\s+<- /audio_stamped \[audio_common_msgs/msg/AudioDataStamped\]", text)
    assert re.search(r"input audio_info <- /audio_info", text)
    # what feeds nothing is named with the reason
    assert "unused /tf [tf2_msgs/msg/TFMessage]: not an input type of the node" in text
    assert "unused /robot_description [std_msgs/msg/String]" in text
    t = result.topics
    assert t["/image_raw/compressed"]["accepted"] == t["/image_raw/compressed"]["read"] == 50
    assert t["/audio_stamped"]["accepted"] == t["/audio_stamped"]["read"] == 50
    assert result.drops["total_dropped"] == 0 and result.warnings == []
    assert len(result.states) >= 6  # windows ending at 2.0 .. 4.5 s of 5 s, then the end-of-input flush
    assert all(s.modalities & MODALITY_AUDIO and s.modalities & MODALITY_VISION for s in result.states)
    assert all(v["lost"] == 0 for v in result.accounting.values())


def test_48k_stereo_audio_common_gives_the_same_windows_as_16k_mono(tmp_path):
    a, b = tmp_path / "a.mcap", tmp_path / "b.mcap"
    write_robot_bag(a, sample_rate=48_000, channels=2, extra_topics=False)
    write_robot_bag(b, sample_rate=16_000, channels=1, extra_topics=False)
    ra, rb = (OfflineRunner(ModalityEngine()).run(p) for p in (a, b))
    assert len(ra.states) >= 6
    assert [(s.start_ns, s.end_ns, s.modalities) for s in ra.states] == \
           [(s.start_ns, s.end_ns, s.modalities) for s in rb.states]


def test_audio_info_missing_uses_the_fallback_and_says_so(tmp_path):
    path = tmp_path / "noinfo.mcap"
    write_robot_bag(path, sample_rate=16_000, channels=1, audio_info=False, extra_topics=False)
    result = OfflineRunner(ModalityEngine()).run(path)
    assert result.drops["events"]["audio_info_assumed"] == 50
    assert any("no audio_common AudioInfo" in w and "16000 Hz" in w for w in result.warnings)
    assert all(s.modalities & MODALITY_AUDIO for s in result.states)
    # without a fallback every chunk is a counted drop, never silently lost
    from emotion_ros.config import PerceptionConfig

    strict = OfflineRunner(ModalityEngine(), PerceptionConfig.load(audio_fallback_sample_rate=0))
    none = strict.run(path)
    assert none.drops["dropped"] == {"audio_no_info": 50}
    assert none.topics["/audio_stamped"]["dropped"] == 50
    assert all(not s.modalities & MODALITY_AUDIO for s in none.states)


def test_mp3_coded_audio_is_a_counted_drop(tmp_path):
    from emotion_ros.ingest.audio_conversion import AudioInfoTracker
    from emotion_ros.ingest.errors import InputError

    tracker = AudioInfoTracker(None)
    tracker.update(1, 16000, "S16LE", "mp3")  # audio_capture's default format
    with pytest.raises(InputError) as err:
        tracker.chunk_fields(b"\0\0")
    assert err.value.reason == "audio_coding_unsupported"


def test_topic_plan_prefers_configured_names_and_never_matches_string_by_type():
    bag = {"/camera/image_raw": "sensor_msgs/msg/Image", "/image_raw": "sensor_msgs/msg/Image",
           "/robot_description": "std_msgs/msg/String", "/emotion/state": "emotion_ros/msg/EmotionState"}
    plan = plan_inputs(bag, {"image": ["/camera/image_raw"], "transcript": ["/transcript"]})
    assert plan.feeds == {"image": "/camera/image_raw"} and plan.renamed == {}
    assert "another image topic (/camera/image_raw)" in plan.unused["/image_raw"]
    assert "only under its configured name" in plan.unused["/robot_description"]
    assert plan.unused["/emotion/state"] == "an output of the node, not an input"


# ---------------------------------------------------------------------------------------- CRCs
def _flip_byte_in_chunk(mcap_path, chunk_number):
    from mcap.reader import make_reader

    with open(mcap_path, "rb") as f:
        chunk = make_reader(f).get_summary().chunk_indexes[chunk_number]
    data = bytearray(mcap_path.read_bytes())
    data[chunk.chunk_start_offset + chunk.chunk_length // 2] ^= 0x40
    mcap_path.write_bytes(bytes(data))


def test_recorded_mcap_carries_chunk_crcs_and_a_corrupt_chunk_is_named_and_skipped(tmp_path):
    bag = tmp_path / "session"
    write_synthetic_bag(bag, [("happy", 3.0), ("sad", 3.0)], size=(320, 240))  # BagWriter: the recorder's writer
    with BagReader(bag) as reader:
        total = sum(reader.message_counts.values())
        assert reader.crc_checked_chunks > 3 and reader.corrupt_chunks == []
        intact = [(m.topic, m.timestamp_ns, m.data) for m in reader.messages()]
    # the reader used around corrupt chunks returns exactly what rosbags returns on an intact bag
    around = [(t, ts, d) for t, _ty, ts, d in _mcap_messages_skipping(_mcap_files(bag), set(), None, None, None)]
    assert around == intact
    (mcap,) = _mcap_files(bag)
    _flip_byte_in_chunk(mcap, 3)
    result = OfflineRunner(ModalityEngine(), flush=False).run(bag)
    (warning,) = result.warnings
    assert re.search(r"Bag '.*session\.mcap': a chunk failed its CRC check .*its \d+ messages on /audio, "
                     r"/camera/image_raw between \d+\.\d\d s and \d+\.\d\d s were skipped", warning), warning
    with BagReader(bag) as reader:
        (bad,) = reader.corrupt_chunks
        assert sum(1 for _ in reader.messages()) == total - bad.messages
    # no audio is made up for the lost half second: windows over it carry no audio; the others are whole
    assert len(result.states) >= 4 and result.drops["events"]["windows_skipped_fixed_no_sensor_data"] > 0
    for s in result.states:
        overlaps = s.start_ns < bad.end_ns and s.end_ns > bad.start_ns
        assert bool(s.modalities & MODALITY_AUDIO) != overlaps


def test_rosbags_written_mcap_has_no_crc_to_check(tmp_path):
    from rosbags.rosbag2 import StoragePlugin, Writer

    from emotion_ros.bags.typestore import STRING, project_typestore

    store = project_typestore()
    path = tmp_path / "plain"
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conn = w.add_connection("/transcript", STRING, typestore=store)
        w.write(conn, 1, store.serialize_cdr(store.types[STRING](data="hi"), STRING))
    with BagReader(path) as reader:
        assert reader.crc_checked_chunks == 0 and reader.corrupt_chunks == []


# ---------------------------------------------------------------------------------------- report
def test_report_has_every_window_and_every_drop(robot_bag, tmp_path):
    from emotion_ros.evaluation.evaluate import BagJob, evaluate
    from emotion_ros.evaluation.report import write_report

    runner = OfflineRunner(ModalityEngine())
    offline = runner.run(robot_bag)
    result = evaluate([BagJob(robot_bag)], lambda job: runner.run(job.bag), progress=False)
    summary = write_report(result, tmp_path / "report", plots=False).read_text()
    rows = json.loads((tmp_path / "report" / "windows.json").read_text())
    assert len(rows) == len(offline.states) >= 6
    assert rows[0]["modalities"] == "audio+vision" and rows[0]["annotated"] == "happy"
    csv = (tmp_path / "report" / "windows.csv").read_text().splitlines()
    assert csv[0].startswith("bag,window,start_s,end_s,label,confidence") and len(csv) == len(rows) + 1
    assert "## Windows of rec.mcap" in summary and "## Inputs of rec.mcap" in summary
    assert "| `/tf` | tf2_msgs/msg/TFMessage | nothing: not an input type of the node | 0 | 0 | 0 |" in summary
    assert "+ lost 0" in summary and result["summary"]["lost"] == 0


def test_cli_closing_line_prints_the_drops(tmp_path, capsys, monkeypatch):
    import emotion_ros.inference
    from emotion_ros.app.cli import main

    monkeypatch.setattr(emotion_ros.inference, "build_engine", lambda config: ModalityEngine())  # no model needed
    bag = tmp_path / "mp3.mcap"
    write_robot_bag(bag, sample_rate=16_000, channels=1, coding_format="mp3", extra_topics=False)
    rc = main(["evaluate", str(bag), "--offline", "--out", str(tmp_path / "r")])
    out = capsys.readouterr().out
    assert rc == 0
    closing = out.strip().splitlines()[-1]
    assert re.match(r"1 bag\(s\) evaluated, 0 failed; \d+ windows; 50 inputs dropped \(audio_coding_unsupported 50\), "
                    r"0 lost; Avg", closing), closing
    assert "input audio      <- /audio_stamped" in out
    summary = (tmp_path / "r" / "summary.md").read_text()
    assert "- dropped by reason: audio_coding_unsupported: 50" in summary


def test_missing_annotations_name_the_files_looked_for(tmp_path):
    from emotion_ros.evaluation.evaluate import BagJob, evaluate

    bag = tmp_path / "rec.mcap"
    write_robot_bag(bag, extra_topics=False)
    (tmp_path / "rec.annotations.json").unlink()
    (err,) = evaluate([BagJob(bag)], lambda job: [], progress=False)["errors"]
    assert f"{tmp_path / 'rec.annotations.json'}" in err["error"]
    assert "rec.mcap.annotations.json" not in err["error"]


# ---------------------------------------------------------------------------------------- replay counts
def test_expected_windows_counts_the_flushed_tail(robot_bag):
    # 5 s of data, window 2 / hop 0.5: 6 complete windows, plus what the end-of-input flush cuts
    n = expected_windows(robot_bag)
    assert n > 6
    assert n == OfflineRunner(ModalityEngine(), flush=True).run(robot_bag).windows
    assert OfflineRunner(ModalityEngine(), flush=False).run(robot_bag).windows == 6


def test_player_summary_counts_missing_states():
    from emotion_ros.bags.offline import StateRecord
    from emotion_ros.bags.player import PlayStats

    stats = PlayStats(published={"/a": 3}, windows_expected=21)
    stats.states = [StateRecord(0, 1, "x", 1.0, [], [], window_index=i) for i in (0, 1, 2, 5, 9)]
    assert "5 states received of 21 windows expected (16 missing)" in stats.summary()


# ---------------------------------------------------------------------------------------- Ctrl-C
@pytest.mark.ros
@pytest.mark.parametrize("command", ["record", "replay"])
def test_ctrl_c_stops_cleanly_with_rc_0(command, tmp_path):
    from tests.helpers.ros import python_process

    if command == "record":
        args = ["record", str(tmp_path / "rec"), "--inputs"]
        ready = "recording"
    else:
        write_synthetic_bag(tmp_path / "b", [("happy", 1.0)])
        args = ["replay", str(tmp_path / "b"), "--remap", "/camera/image_raw:=/nobody_listens"]
        ready = "replay: "
    proc = python_process("-m", "emotion_ros", *args)
    seen = []
    end = time.monotonic() + 60
    while time.monotonic() < end:
        line = proc.stdout.readline()
        seen.append(line)
        if line.startswith(ready) or not line:
            break
    time.sleep(1.0)  # inside the recording loop / the player's wait for subscribers
    proc.send_signal(signal.SIGINT)
    out = "".join(seen) + proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, out
    assert "Traceback" not in out and "RCLError" not in out and "deprecated" not in out, out
    if command == "record":
        assert "(Ctrl-C to stop)" not in out and "recorded {" in out
        assert BagReader(tmp_path / "rec").open().message_count == 0


# ---------------------------------------------------------------------------------------- ROS4HRI mapping
def test_every_label_of_every_label_set_maps_to_an_expression_constant():
    from emotion_ros.bags.typestore import project_typestore
    from emotion_ros.model.prompt import LABEL_SETS
    from emotion_ros.nodes.hri import EXPRESSIONS, expression_for, valence_arousal

    constants = {c[2] for c in project_typestore().fielddefs["hri_msgs/msg/Expression"][0]}
    assert set(EXPRESSIONS) == constants  # our list is the message's own constants
    for name, labels in LABEL_SETS.items():
        for label in labels:
            assert expression_for(label) in constants, (name, label)
    assert expression_for("worried") == "scared" and expression_for("surprise") == "surprised"
    assert expression_for("no-such-label") == "neutral"
    v, a = valence_arousal(["happy", "sad"], [0.9, 0.1])
    assert 0 < v <= 1 and -1 <= a <= 1
    assert valence_arousal(["happy"], [1.0], valence=-0.25, arousal=0.5) == (-0.25, 0.5)


@pytest.mark.ros
def test_record_inputs_records_the_configured_topics(tmp_path):
    """`record --inputs` takes the node's configured input topics (launch/perceive.yaml + --param), not the
    default names; a type whose package is not importable is named, not silently left out."""
    from tests.helpers.ros import python_process

    proc = python_process("-m", "emotion_ros", "record", str(tmp_path / "rec"), "--inputs", "--duration", "1",
                          "--param", "compressed_image_topic:=/image_raw/compressed", "--param", "image_topic:=''")
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, out
    line = next(x for x in out.splitlines() if x.startswith("recording "))
    assert "'/image_raw/compressed'" in line and "'/camera/image_raw/compressed'" not in line, line
    assert "'/camera/image_raw'" not in line and "'/emotion/state'" in line and "'/audio'" in line, line
    try:
        import audio_common_msgs  # noqa: F401
    except ImportError:
        assert "/audio_stamped (audio_common_msgs/msg/AudioDataStamped) not recorded" in out
