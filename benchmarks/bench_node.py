"""Live node benchmark: the perception node in its own process, fed in real time over ROS topics.

The shipped sample session (camera JPEG frames at 15 Hz + 100 ms audio chunks + transcripts) is
re-published in a loop with fresh stamps (stamp = publication time), so "window end -> /emotion/state"
latency is measured on one clock: receive time minus the state's header stamp (= window end).
Also: windows/s sustained, reasoning tokens/s (one EmotionReasoning delta per generated token), CPU
and resident memory of the node process (psutil).

    .venv/bin/python benchmarks/bench_node.py --profile tiny --seconds 60
    .venv/bin/python benchmarks/bench_node.py --profile nano --seconds 120 [--llm-precision float32]
Writes out/bench/node_<profile>_<llm precision>.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def load_session(bag: Path):
    """(offset_s, topic, decoded rosbags message) of the sample bag, in time order."""
    from emotion_ros.bags.bag_io import BagReader

    with BagReader(bag) as reader:
        t0 = reader.start_ns
        return [((m.timestamp_ns - t0) / 1e9, m.topic, m.data) for m in reader.messages()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="tiny", help="model profile of the node (tiny, nano)")
    ap.add_argument("--checkpoint", default=None, help="default: models/nano/adapters for nano, none otherwise")
    ap.add_argument("--seconds", type=float, default=60.0, help="how long the session is re-published")
    ap.add_argument("--bag", type=Path, default=ROOT / "samples" / "synth_session", help="bag re-published in a loop")
    ap.add_argument("--reasoning-every", type=int, default=4, help="node parameter reasoning_every (0 = no reasoning)")
    ap.add_argument("--window", type=float, default=2.0, help="node window length (s)")
    ap.add_argument("--hop", type=float, default=0.5, help="node hop (s)")
    ap.add_argument("--llm-precision", default="mixed",
                    help="node parameter llm_precision (launch/perceive.yaml deploys mixed on CPUs)")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "bench", help="output folder (JSON + Markdown)")
    args = ap.parse_args()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 50))
    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint = "models/nano/adapters" if args.profile == "nano" else "''"

    import rclpy
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import CompressedImage
    from std_msgs.msg import String

    from emotion_ros.ingest.stamps import time_to_ns
    from emotion_ros.msg import AudioChunk, EmotionReasoning, EmotionState
    from tests.helpers.ros import python_process, spin_until

    session = load_session(args.bag)
    period = max(t for t, _, _ in session) + 0.1
    types = {"/camera/image_raw/compressed": CompressedImage, "/audio": AudioChunk, "/transcript": String}
    decoded = [(t, topic, deserialize_message(data, types[topic])) for t, topic, data in session if topic in types]

    proc = python_process("-m", "emotion_ros.nodes.perception_node", "--ros-args", "-p", f"profile:={args.profile}",
                          "-p", f"checkpoint:={checkpoint}", "-p", f"window_s:={args.window}", "-p", f"hop_s:={args.hop}",
                          "-p", f"reasoning_every:={args.reasoning_every}", "-p", "asr:=never",
                          "-p", f"llm_precision:={args.llm_precision}")
    rclpy.init()
    node = rclpy.create_node("bench_node_driver")
    clock = node.get_clock()
    latencies, state_times = [], []
    deltas = defaultdict(list)  # window_index -> receive times of its deltas

    def on_state(msg):
        now = clock.now().nanoseconds
        end = time_to_ns(msg.header.stamp)
        latencies.append((now - end) / 1e6)
        state_times.append(now / 1e9)

    def on_reasoning(msg):
        if msg.delta:
            deltas[msg.window_index].append(clock.now().nanoseconds / 1e9)

    node.create_subscription(EmotionState, "/emotion/state", on_state, 100)
    node.create_subscription(EmotionReasoning, "/emotion/reasoning", on_reasoning, 1000)
    pubs = {topic: node.create_publisher(cls, topic, 50) for topic, cls in types.items()}
    t_start = time.monotonic()
    try:
        spin_until(node, lambda: pubs["/audio"].get_subscription_count() > 0 or proc.poll() is not None, 900)
        if proc.poll() is not None:
            print(proc.communicate()[0][-3000:])
            return 1
        startup_s = time.monotonic() - t_start
        spin_until(node, lambda: False, 1.0)
        ps = psutil.Process(proc.pid)
        ps.cpu_percent(None)
        rss = []
        t0 = time.monotonic()
        i, loop = 0, 0
        while time.monotonic() - t0 < args.seconds:
            t_rel, topic, msg = decoded[i]
            due = t0 + loop * period + t_rel
            while time.monotonic() < due:
                rclpy.spin_once(node, timeout_sec=min(0.005, max(0.0, due - time.monotonic())))
            now = clock.now()
            if topic == "/audio":  # stamp = first sample: the chunk was captured over the last 100 ms
                now = rclpy.time.Time(nanoseconds=now.nanoseconds - len(msg.data) // 2 * 62_500)
            if hasattr(msg, "header"):
                msg.header.stamp = now.to_msg()
            pubs[topic].publish(msg)
            if len(rss) < (time.monotonic() - t0) / 2:
                rss.append(ps.memory_info().rss / 2**20)
            i += 1
            if i == len(decoded):
                i, loop = 0, loop + 1
        cpu = ps.cpu_percent(None)
        spin_until(node, lambda: False, 3.0)
    finally:
        node.destroy_node()
        rclpy.shutdown()
        proc.terminate()
        proc.communicate(timeout=30)
    lat = np.array(latencies) if latencies else np.array([np.nan])
    rates = [(len(v) - 1) / (v[-1] - v[0]) for v in deltas.values() if len(v) > 2 and v[-1] > v[0]]
    result = {
        "profile": args.profile, "checkpoint": checkpoint, "seconds": args.seconds, "window_s": args.window,
        "hop_s": args.hop, "llm_precision": args.llm_precision, "node_startup_s": round(startup_s, 1),
        "states": len(latencies), "windows_per_s": round(len(latencies) / args.seconds, 3),
        "windows_per_s_offered": round(1 / args.hop, 3),
        "latency_window_end_to_state_ms_p50": round(float(np.nanpercentile(lat, 50)), 1),
        "latency_window_end_to_state_ms_p95": round(float(np.nanpercentile(lat, 95)), 1),
        "reasoning_streams": len(deltas),
        "reasoning_tokens_per_s_median": round(float(np.median(rates)), 2) if rates else None,
        "node_cpu_percent_of_one_core": round(cpu, 1),
        "node_rss_mb_max": round(max(rss), 1) if rss else None, "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"node_{args.profile}_{args.llm_precision}"
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2))
    md = ["| quantity | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in result.items()]
    (args.out / f"{name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
