"""`python -m emotion_ros demo`: the README's main job.

Starts the real perception node (its own process, parameters from launch/perceive.yaml), replays each
shipped sample bag over real ROS topics with flow control (no window is dropped), and prints every
/emotion/state and the final text of every /emotion/reasoning stream as they are published. Where a bag
has annotations, a one-line agreement summary follows each bag.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import time
from pathlib import Path

from emotion_ros.paths import default_params_file, package_root, resolve_checkpoint
from emotion_ros.ingest.window import modality_names


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--samples", type=Path, default=None,
                        help="folder of rosbag2 bags, each with its annotations.json (default: the shipped samples/)")
    parser.add_argument("--params-file", type=Path, default=None, help="default: launch/perceive.yaml")
    parser.add_argument("--profile", default=None, help="override the model profile (tiny, nano, paper)")
    parser.add_argument("--checkpoint", default=None, help="override the trained-weights folder")
    parser.add_argument("--no-reasoning", action="store_true",
                        help="labels only (automatic when the model has no trained weights: random text)")
    parser.add_argument("--startup-timeout", type=float, default=600.0,
                        help="seconds to wait for the node to load its model (first nano run converts weights)")


def _ns_to_s(ns: int, t0: int) -> float:
    return (ns - t0) / 1e9


def run_demo(args) -> int:
    import rclpy

    from emotion_ros.msg import AudioChunk, EmotionReasoning

    from emotion_ros.bags import annotations
    from emotion_ros.bags.bag_io import BagReader
    from emotion_ros.app.launcher import node_command
    from emotion_ros.bags.player import BagPlayer, PlayerConfig
    from emotion_ros.bags.typestore import INPUT_TOPICS
    from emotion_ros.config import PerceptionConfig

    samples = args.samples or package_root() / "samples"
    bags = sorted(d for d in samples.iterdir() if (d / "metadata.yaml").exists()) if samples.is_dir() else []
    if not bags:
        print(f"demo: no rosbag2 folders in {samples}")
        return 2
    t_start = time.monotonic()
    params = args.params_file or default_params_file()
    node_config = PerceptionConfig.load(params)  # flow control follows the node's window grid
    profile = args.profile or node_config.engine.profile
    checkpoint = args.checkpoint if args.checkpoint is not None else node_config.engine.checkpoint
    untrained = not resolve_checkpoint(checkpoint, profile)
    if untrained and not args.no_reasoning:
        # A model without trained fusion/adapter/LoRA weights generates random tokens (with tiny: bytes
        # such as '\x11=\x05B...'); printing them as "reasoning" would mislead, and skipping them is faster.
        print(f"demo: profile {profile} without trained weights (checkpoint {checkpoint!r}): the labels come from "
              "random weights, and reasoning is skipped (it would be random text)", flush=True)
        args.no_reasoning = True
    overrides = ["-p", "autostart:=true"]
    if args.profile:
        overrides += ["-p", f"profile:={args.profile}"]
    if args.checkpoint is not None:
        overrides += ["-p", f"checkpoint:={args.checkpoint or repr('')}"]  # YAML '' = empty string
    if args.no_reasoning:
        overrides += ["-p", "reasoning_every:=0"]
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    node_proc = subprocess.Popen(node_command("emotion_ros.nodes.perception_node", "emotion_perception", params,
                                              overrides))
    rclpy.init()
    node = rclpy.create_node("emotion_demo")
    t0 = [0]
    shown = {"states": 0, "agree": 0, "annotated": 0, "unsure": 0}
    current_annotations = []

    def on_state(rec) -> None:
        mods = "+".join(modality_names(rec.modalities)) or "none"
        text = f' "{rec.transcript}"' if rec.transcript else ""
        truth = _annotated_label(current_annotations, rec.start_ns, rec.end_ns)
        mark = ""
        if truth is not None:
            shown["annotated"] += 1
            shown["agree"] += int(truth == rec.label)
            mark = f"  (annotated: {truth})"
        shown["states"] += 1
        shown["unsure"] += bool(rec.unsure_reason)
        unsure = f"  UNSURE ({rec.unsure_reason})" if rec.unsure_reason else ""
        print(f"  state  #{rec.window_index:<3d} {_ns_to_s(rec.start_ns, t0[0]):5.1f}-{_ns_to_s(rec.end_ns, t0[0]):4.1f} s"
              f"  {rec.label:<9s} {rec.confidence:4.2f}  [{mods}]  {rec.latency_ms:6.0f} ms{text}{mark}{unsure}", flush=True)

    streams = {"open": set(), "last": time.monotonic()}  # reasoning streams not final yet; last message time

    def on_reasoning(msg) -> None:
        streams["last"] = time.monotonic()
        (streams["open"].discard if msg.final else streams["open"].add)(msg.window_index)
        if msg.final:
            answer = ""
            if msg.answer_label:
                answer = f"  -> {msg.answer_label} ({'agrees with' if msg.answer_agrees else 'differs from'} the state)"
            print(f"  reason #{msg.window_index:<3d} {msg.text.strip()!r}{answer}", flush=True)

    node.create_subscription(EmotionReasoning, "/emotion/reasoning", on_reasoning, 100)
    try:
        print(f"demo: starting the perception node ({params.name}); waiting for it to load its model ...", flush=True)
        probe = node.create_publisher(AudioChunk, "/audio", 10)  # matched once the node is active
        started = time.monotonic()
        while probe.get_subscription_count() == 0:
            if node_proc.poll() is not None:
                print(f"demo: the perception node exited with code {node_proc.returncode}")
                return 1
            if time.monotonic() - started > args.startup_timeout:
                print(f"demo: the node did not subscribe within {args.startup_timeout:.0f} s")
                return 1
            rclpy.spin_once(node, timeout_sec=0.1)
        node.destroy_publisher(probe)
        print(f"demo: node ready after {time.monotonic() - started:.1f} s", flush=True)
        for bag in bags:
            with BagReader(bag) as reader:
                t0[0], bag_end = reader.start_ns, reader.end_ns
            found = annotations.find_for_bag(bag)
            current_annotations[:] = annotations.load(found).resolve(t0[0], bag_end) if found else []
            print(f"\n== {bag.name}", flush=True)
            config = PlayerConfig(rate=0.0, flow=True, topics=INPUT_TOPICS, windowing=node_config.windowing)
            stats = BagPlayer(bag, config, node=node, on_state=on_state).play()
            if not args.no_reasoning:  # let the reasoning of the last windows finish streaming
                _wait_for_reasoning(node, node_proc, streams)
            print(f"   {stats.summary()}")
        if shown["annotated"]:
            print(f"\ndemo: {shown['states']} states ({shown['unsure']} flagged unsure); {shown['agree']}/"
                  f"{shown['annotated']} annotated windows agree with the annotation")
        print(f"demo: done in {time.monotonic() - t_start:.1f} s", flush=True)
        return 0
    finally:
        node.destroy_node()
        rclpy.shutdown()
        node_proc.terminate()
        try:
            node_proc.wait(15)
        except subprocess.TimeoutExpired:
            node_proc.kill()


def _wait_for_reasoning(node, node_proc, streams, quiet_s: float = 2.0, limit_s: float = 10.0) -> None:
    """Spin until every reasoning stream seen is final and none has spoken for ``quiet_s`` (a last window's
    stream may start a little after its state), at most ``limit_s``. Replaces a fixed 10 s wait."""
    import rclpy

    end = time.monotonic() + limit_s
    while time.monotonic() < end and node_proc.poll() is None:
        if not streams["open"] and time.monotonic() - streams["last"] >= quiet_s:
            return
        rclpy.spin_once(node, timeout_sec=0.1)


def _annotated_label(annotations, start_ns: int, end_ns: int):
    """Label of the annotation covering most of the window, if any covers at least half of it."""
    best, best_overlap = None, 0
    for seg_start, seg_end, segment in annotations:
        overlap = min(end_ns, seg_end) - max(start_ns, seg_start)
        if overlap > best_overlap:
            best, best_overlap = segment.label, overlap
    return best if best_overlap * 2 >= end_ns - start_ns else None
