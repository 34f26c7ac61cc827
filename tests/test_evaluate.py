"""Evaluation of bags against annotations: metrics, the report directory, bad bags, offline mode."""
import json
import math
import os
from types import SimpleNamespace

import numpy as np
import pytest

from emotion_ros.evaluation.evaluate import BagJob, evaluate, load_manifest, predict_segments
from emotion_ros.bags.bag_io import BagWriter
from emotion_ros.bags.clips import DEFAULT_T0_NS, write_synthetic_bag
from emotion_ros.bags.offline import OfflineRunner, StateRecord, read_states, state_to_msg
from emotion_ros.bags.typestore import EMOTION_STATE
from emotion_ros.evaluation.report import write_report

S = 1_000_000_000
MER = ["neutral", "happy", "sad", "angry"]


def _state(i, start_s, end_s, label, scores, labels=MER, latency=10.0):
    return StateRecord(start_ns=DEFAULT_T0_NS + int(start_s * S), end_ns=DEFAULT_T0_NS + int(end_s * S), label=label,
                       confidence=max(scores), labels=list(labels), scores=list(scores), modalities=7,
                       latency_ms=latency, window_index=i, model_id="fake", task="emotion")


def _write_states(path, states):
    with BagWriter(path) as bag:
        for st in states:
            bag.write("/emotion/state", st.end_ns, state_to_msg(st), EMOTION_STATE)


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    # session 1 (MER2023, hit rate): happy 0-3 s, sad 3-6 s, neutral 6-8 s; 1 s windows
    write_synthetic_bag(root / "s1", [("happy", 3.0), ("sad", 3.0), ("neutral", 2.0)], dataset="MER2023",
                        label_space=MER, fps=5)
    happy, sad, angry = [0.1, 0.8, 0.05, 0.05], [0.1, 0.1, 0.6, 0.2], [0.0, 0.0, 0.3, 0.7]
    states = [_state(0, 0, 1, "happy", happy), _state(1, 1, 2, "happy", happy), _state(2, 2, 3, "happy", happy),
              _state(3, 3, 4, "sad", sad), _state(4, 4, 5, "angry", angry), _state(5, 5, 6, "sad", sad),
              _state(6, 6, 7, "happy", happy)]  # nothing for 7-8 s: coverage 7/8
    for i, st in enumerate(states):
        st.latency_ms = 10.0 * (i + 1)
    _write_states(root / "s1_states", states)
    # session 2 (MOSI, WAF without neutral truth): positive 0-2, neutral 2-4, negative 4-6
    sent = ["negative", "neutral", "positive"]
    write_synthetic_bag(root / "s2", [("positive", 2.0), ("neutral", 2.0), ("negative", 2.0)], dataset="MOSI", fps=5)
    _write_states(root / "s2_states", [
        _state(0, 0, 2, "positive", [0.1, 0.2, 0.7], sent), _state(1, 2, 4, "negative", [0.6, 0.3, 0.1], sent),
        _state(2, 4, 6, "neutral", [0.3, 0.6, 0.1], sent)])
    # a truncated bag
    write_synthetic_bag(root / "broken", [("happy", 1.0)], fps=5)
    mcap = next((root / "broken").glob("*.mcap"))
    with open(mcap, "r+b") as f:
        f.truncate(os.path.getsize(mcap) // 3)
    return root


def test_segment_prediction_is_overlap_weighted():
    seg = SimpleNamespace(label="a", label_set=["a"], id="x")
    states = [_state(0, 0, 1, "a", [0.6, 0.4], ["a", "b"]), _state(1, 1, 4, "b", [0.4, 0.6], ["a", "b"])]
    pred = predict_segments([(DEFAULT_T0_NS, DEFAULT_T0_NS + 2 * S, seg)], states)[0]
    # equal overlaps (1 s each) -> mean scores 0.5/0.5; then a 3x weight for b flips it
    assert pred.scores["a"] == pytest.approx(0.5) and pred.n_states == 2
    pred = predict_segments([(DEFAULT_T0_NS, DEFAULT_T0_NS + 4 * S, seg)], states)[0]
    assert pred.pred == "b" and pred.scores["b"] == pytest.approx((0.4 + 3 * 0.6) / 4)
    assert pred.onset_delay_s == pytest.approx(1.0)
    empty = predict_segments([(0, 1, seg)], states)[0]
    assert empty.pred == "<none>" and empty.n_states == 0


def test_evaluate_report_with_a_broken_bag(sessions, tmp_path):
    jobs = [BagJob(sessions / "s1", states=sessions / "s1_states"), BagJob(sessions / "broken"),
            BagJob(sessions / "s2", states=sessions / "s2_states")]
    result = evaluate(jobs, progress=False)
    assert result["summary"]["bags_evaluated"] == 2 and result["summary"]["bags_failed"] == 1
    (err,) = result["errors"]
    assert err["reason"] == "truncated" and "broken" in err["error"] and ".mcap" in err["error"]

    s1 = result["bags"]["s1"]
    assert s1["segment_accuracy"] == pytest.approx(2 / 3)      # happy ok, sad ok (mean scores), neutral wrong
    assert s1["window_accuracy"] == pytest.approx(5 / 7)       # 3 happy + 2 sad of 7 windows
    assert s1["coverage"] == pytest.approx(7 / 8)
    assert s1["latency_ms"]["max"] == 70 and s1["latency_ms"]["p50"] == 40
    mer = result["datasets"]["MER2023"]
    # the hit rate needs the official emotion-wheel files: without them it is reported undefined
    assert mer["metric"] == "hit_rate" and math.isnan(mer["value"]) and "--wheels" in mer["undefined"]
    mosi = result["datasets"]["MOSI"]
    # neutral truth left out: positive->positive, negative->neutral: positive F1 1 (support 1), negative 0
    assert mosi["metric"] == "waf" and mosi["scored_n"] == 2 and mosi["value"] == pytest.approx(0.5)
    assert result["avg"] == pytest.approx(0.5) and result["avg_over"] == ["MOSI"]
    seg = result["overall"]["segment"]
    assert seg["n"] == 6 and seg["accuracy"] == pytest.approx(3 / 6)
    assert result["overall"]["coverage"] == pytest.approx((7 + 6) / (8 + 6))

    summary = write_report(result, tmp_path / "report", command="python -m emotion_ros evaluate ...")
    files = set(os.listdir(tmp_path / "report"))
    assert {"metrics.json", "summary.md", "confusion_matrix.png", "per_class_f1.png", "latency_hist.png",
            "timeline_s1.png", "timeline_s2.png"} <= files
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["errors"][0]["reason"] == "truncated"
    text = summary.read_text()
    assert "| MER2023 | hit_rate | 3 | n/a (undefined: the hit rate needs" in text
    assert "truncated" in text and "![confusion matrix]" in text

    # with the (hand-made, official-format) wheel files: happy and sad hit on every wheel, the neutral
    # segment is skipped (neutral is on no wheel) -> 1.0, although the segment accuracy is 2/3
    from emotion_ros.evaluation.metrics import EmotionWheels
    from tests.helpers.official_wheels import write_official_wheels

    wheels = EmotionWheels.load(write_official_wheels(tmp_path / "wheels"))
    result = evaluate(jobs, progress=False, wheels=wheels)
    mer = result["datasets"]["MER2023"]
    assert mer["value"] == pytest.approx(1.0) and mer["scored"]["wheel1"] == 2
    assert result["avg"] == pytest.approx((1.0 + 0.5) / 2)
    summary = write_report(result, tmp_path / "report2")
    assert "| MER2023 | hit_rate | 3 | 100.00 |" in summary.read_text()


def test_manifest_and_missing_annotations(sessions, tmp_path):
    manifest = tmp_path / "bags.json"
    rel = os.path.relpath(sessions, tmp_path)
    manifest.write_text(json.dumps({"bags": [
        {"bag": f"{rel}/s1", "states": f"{rel}/s1_states", "name": "first"},
        {"bag": f"{rel}/s1_states", "dataset": "MELD"}]}))
    jobs = load_manifest(manifest)
    assert jobs[0].bag == tmp_path / rel / "s1" and jobs[0].name == "first"
    result = evaluate(jobs, progress=False)
    assert list(result["bags"]) == ["first"]
    assert result["errors"][0]["reason"] == "AnnotationError" and "no annotation file" in result["errors"][0]["error"]
    (tmp_path / "bad.json").write_text(json.dumps([{"path": "x"}]))
    with pytest.raises(ValueError, match="needs a 'bag'"):
        load_manifest(tmp_path / "bad.json")


def test_cli_evaluate(sessions, tmp_path):
    from emotion_ros.app.bag_commands import main

    out = tmp_path / "rep"
    assert main(["evaluate", str(sessions / "s1"), "--states", str(sessions / "s1_states"), "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["datasets"]["MER2023"]["n"] == 3
    assert main(["evaluate", str(sessions / "broken"), "--out", str(tmp_path / "rep2")]) == 1


# ---------------------------------------------------------------------------------------- offline mode
class FakeWindower:
    """Fixed windows over frame/audio stamps (stands in for emotion_ros.ingest.windowing in unit tests)."""

    def __init__(self, window_s=1.0, hop_s=0.5):
        self.window, self.hop = int(window_s * S), int(hop_s * S)
        self.frames, self.audio, self.text = [], [], []
        self.next_end = None
        self.latest = 0

    def push_frame(self, stamp, rgb):
        self.frames.append((stamp, rgb))
        self._seen(stamp)

    def push_audio(self, stamp, samples):
        self.audio.append((stamp, samples))
        self._seen(stamp)

    def push_transcript(self, stamp, text):
        self.text.append((stamp, text))

    def _seen(self, stamp):
        if self.next_end is None:
            self.next_end = stamp + self.window
        self.latest = max(self.latest, stamp)

    def poll(self):
        from emotion_ros.ingest.window import Window

        out = []
        while self.next_end is not None and self.latest >= self.next_end:
            start = self.next_end - self.window
            frames = [f for t, f in self.frames if start <= t < self.next_end]
            text = " ".join(x for t, x in self.text if start <= t < self.next_end) or None
            out.append(Window(start_ns=start, end_ns=self.next_end, frames=np.stack(frames) if frames else None,
                              transcript=text))
            self.next_end += self.hop
        return out


class FakeEngine:
    """Label = the label whose synthetic colour is nearest the window's mean colour."""

    def __init__(self, labels):
        from emotion_ros.bags.clips import synthetic_frame

        self.labels = labels
        self.ref = {lab: synthetic_frame(lab, 0.0)[0, 0].astype(float) for lab in labels}

    def process(self, window):
        from emotion_ros.inference.engine import EmotionResult

        mean = np.median(window.frames.reshape(-1, 3), axis=0) if window.frames is not None else np.zeros(3)
        d = np.array([np.abs(self.ref[lab] - mean).sum() for lab in self.labels])
        p = np.exp(-d / 50.0)
        p = p / p.sum()
        k = int(np.argmax(p))
        return EmotionResult(window=window, label=self.labels[k], labels=list(self.labels), scores=p.tolist(),
                             confidence=float(p[k]), modalities=window.modalities, transcript=window.transcript or "",
                             task="emotion", model_id="fake", latency_ms=1.0)


def test_offline_runner_is_deterministic_and_round_trips_through_a_bag(sessions, tmp_path):
    runner = OfflineRunner(FakeEngine(MER), windower_factory=lambda drops: FakeWindower())
    a = runner.run(sessions / "s1")
    b = runner.run(sessions / "s1")
    assert [s.to_dict() for s in a.states] == [s.to_dict() for s in b.states]
    assert a.windows == len(a.states) > 10 and [s.window_index for s in a.states] == list(range(a.windows))
    assert all(s.frame_id == "camera" for s in a.states)
    # the synthetic colours make the fake model right inside each segment
    first = a.states[0]
    assert first.label == "happy" and first.transcript.startswith("segment 0")
    runner.run_to_bag(sessions / "s1", tmp_path / "states")
    back = read_states(tmp_path / "states")
    assert [(s.start_ns, s.end_ns, s.label, s.window_index) for s in back] == \
           [(s.start_ns, s.end_ns, s.label, s.window_index) for s in a.states]
    assert np.allclose([s.scores for s in back], [s.scores for s in a.states], atol=1e-6)
    # offline states feed evaluate() directly
    result = evaluate([BagJob(sessions / "s1")], states_fn=lambda job: runner.run(job.bag).states, progress=False)
    assert result["overall"]["segment"]["accuracy"] == pytest.approx(1.0)
    assert result["overall"]["coverage"] == pytest.approx(1.0, abs=0.1)


def test_offline_counts_bad_input_instead_of_failing(tmp_path):
    from emotion_ros.bags.typestore import IMAGE, header_msg, project_typestore

    store = project_typestore()
    with BagWriter(tmp_path / "bad") as bag:
        img = store.types[IMAGE](header=header_msg(store, 5, "cam"), height=4, width=4, encoding="rgb8",
                                 is_bigendian=0, step=12, data=np.zeros(10, dtype=np.uint8))  # too few bytes
        bag.write("/camera/image_raw", 5, img)
    res = OfflineRunner(FakeEngine(MER), windower_factory=lambda drops: FakeWindower()).run(tmp_path / "bad")
    assert res.states == [] and sum(res.drops.get("dropped", {}).values()) == 1
