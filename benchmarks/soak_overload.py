"""Overload soak: inputs faster than inference for N minutes against the live perception node.

Publishes camera frames (30 Hz) and audio (100 ms chunks) in real time while the node cuts a window
every `--hop` seconds, more than it can score: the bounded queue must drop (count) the surplus, memory
must stay flat and the latency of published states bounded. Samples the node's RSS with psutil.

    .venv/bin/python benchmarks/soak_overload.py --minutes 10 --profile tiny
Writes out/bench/soak_overload.{json,md}; exits 1 if a bound is broken.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="soak duration")
    ap.add_argument("--profile", default="tiny", help="model profile of the node")
    ap.add_argument("--hop", type=float, default=0.1, help="node hop (s): windows arrive faster than inference")
    ap.add_argument("--size", type=int, nargs=2, default=(320, 240), metavar=("W", "H"), help="camera frame size")
    ap.add_argument("--rss-growth-mb", type=float, default=150.0, help="bound on RSS growth after warm-up")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "bench", help="output folder (JSON)")
    args = ap.parse_args()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 50))

    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image

    from emotion_ros.msg import AudioChunk, EmotionState
    from tests.helpers.ros import python_process, spin_until

    proc = python_process("-m", "emotion_ros.nodes.perception_node", "--ros-args", "-p", f"profile:={args.profile}",
                          "-p", "checkpoint:=''", "-p", f"hop_s:={args.hop}", "-p", "reasoning_every:=5",
                          "-p", "asr:=never", "-p", "queue_size:=1")
    rclpy.init()
    node = rclpy.create_node("soak_driver")
    latencies, diags, rss = [], [], []
    state_count = [0]

    def on_state(msg):
        state_count[0] += 1
        latencies.append(msg.latency_ms)

    node.create_subscription(EmotionState, "/emotion/state", on_state, 100)
    node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
    images = node.create_publisher(Image, "/camera/image_raw", 10)
    audio = node.create_publisher(AudioChunk, "/audio", 10)
    w, h = args.size
    frame = (np.random.default_rng(0).integers(0, 255, (h, w, 3))).astype(np.uint8).tobytes()
    pcm = (np.sin(np.arange(1600) / 7) * 6000).astype("<i2").tobytes()
    try:
        spin_until(node, lambda: audio.get_subscription_count() > 0 or proc.poll() is not None, 600)
        if proc.poll() is not None:
            print(proc.communicate()[0][-3000:])
            return 1
        ps = psutil.Process(proc.pid)
        clock = node.get_clock()
        t0 = time.monotonic()
        end = t0 + args.minutes * 60
        next_frame = next_audio = next_rss = t0
        published = 0
        while time.monotonic() < end and proc.poll() is None:
            now = time.monotonic()
            if now >= next_frame:
                msg = Image(encoding="rgb8", height=h, width=w, step=w * 3, data=frame)
                msg.header.stamp = clock.now().to_msg()
                images.publish(msg)
                published += 1
                next_frame += 1 / 30
            if now >= next_audio:
                chunk = AudioChunk(sample_rate=16000, channels=1, sample_format="S16LE", data=pcm)
                chunk.header.stamp = rclpy.time.Time(nanoseconds=clock.now().nanoseconds - 100_000_000).to_msg()
                audio.publish(chunk)
                published += 1
                next_audio += 0.1
            if now >= next_rss:
                rss.append((now - t0, ps.memory_info().rss / 2**20))
                next_rss += 5.0
            rclpy.spin_once(node, timeout_sec=0.002)
        spin_until(node, lambda: False, 2.0)
        alive = proc.poll() is None
    finally:
        node.destroy_node()
        rclpy.shutdown()
        proc.terminate()
        proc.communicate(timeout=30)
    values = {kv.key: kv.value for kv in diags[-1].status[0].values} if diags else {}
    warm = [m for t, m in rss if t >= min(60.0, args.minutes * 30)] or [m for _, m in rss]
    lat = np.array(latencies or [np.nan])
    result = {
        "profile": args.profile, "minutes": args.minutes, "hop_s": args.hop, "frame_size": [w, h],
        "messages_published": published, "states": state_count[0],
        "windows_evicted_queue_overflow": int(values.get("evicted/windows.queue_overflow", 0)),
        "windows_processed": int(values.get("windows/processed", 0)),
        "inputs_dropped": {k: int(v) for k, v in values.items() if k.startswith("dropped/")},
        "rss_mb_start": rss[0][1] if rss else None, "rss_mb_after_warmup": warm[0], "rss_mb_max": max(m for _, m in rss),
        "rss_mb_end": rss[-1][1], "rss_growth_after_warmup_mb": max(warm) - warm[0],
        "latency_ms_p50": float(np.nanpercentile(lat, 50)), "latency_ms_p95": float(np.nanpercentile(lat, 95)),
        "latency_ms_max": float(np.nanmax(lat)), "node_alive_at_end": alive,
    }
    ok = alive and result["rss_growth_after_warmup_mb"] <= args.rss_growth_mb and result["states"] > 0
    result["bounds"] = {"rss_growth_after_warmup_mb_max": args.rss_growth_mb, "passed": ok}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak_overload.json").write_text(json.dumps(result, indent=2))
    md = ["| quantity | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in result.items()]
    (args.out / "soak_overload.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
