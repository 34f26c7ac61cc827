"""Subcommands `replay`, `record`, `evaluate`, `make-bag` of `python -m emotion_ros` (see README).

Examples:
  python -m emotion_ros make-bag --synthetic happy:3,sad:3,neutral:2 out/session1
  python -m emotion_ros make-bag --manifest data/test.jsonl --limit 20 out/mer_test.bag
  python -m emotion_ros replay out/session1 --flow --record-states out/session1_states
  python -m emotion_ros record out/rec --inputs --duration 30
  python -m emotion_ros evaluate out/session1 --states out/session1_states --out out/report
  python -m emotion_ros evaluate --manifest bags.json --offline --profile tiny --out out/report
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time


def _remap(items) -> dict[str, str]:
    out = {}
    for item in items or []:
        src, sep, dst = item.partition(":=")
        if not sep or not src or not dst:
            raise SystemExit(f"--remap expects FROM:=TO, got {item!r}")
        out[src] = dst
    return out


def _perception_config(args, **shortcuts):
    """The node's PerceptionConfig: --params-file (default launch/perceive.yaml), then --param NAME:=VALUE
    overrides (YAML values), then the command's own shortcut options (None = not given)."""
    import yaml

    from emotion_ros.config import ConfigError, PerceptionConfig

    overrides = {}
    for item in args.param or []:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise SystemExit(f"--param expects NAME:=VALUE, got {item!r}")
        overrides[name] = yaml.safe_load(value) if value else ""
    overrides.update({k: v for k, v in shortcuts.items() if v is not None})
    try:
        return PerceptionConfig.load(args.params_file, **overrides)
    except ConfigError as exc:
        raise SystemExit(f"{args.command}: {exc}") from None


def _add_config_arguments(p) -> None:
    p.add_argument("--params-file", default=None,
                   help="ROS 2 parameter file of the node (default: launch/perceive.yaml; '' = built-in defaults)")
    p.add_argument("--param", action="append", metavar="NAME:=VALUE",
                   help="override one node parameter (repeatable), e.g. --param window_s:=3")


def _init_ros():
    """rclpy without its own SIGINT handler and without our command line (rclpy.init() would parse
    sys.argv: an argument like FROM:=TO outside --ros-args makes rcl warn "This syntax is deprecated").
    Ctrl-C then raises KeyboardInterrupt in our code, which stops cleanly (rc 0, no traceback), instead
    of rclpy shutting the context down under running executors (RCLError: context is invalid)."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    rclpy.init(args=[], signal_handler_options=SignalHandlerOptions.NO)


def _shutdown_ros(node=None, executor=None) -> None:
    import rclpy

    for close in ((executor.shutdown if executor is not None else None),
                  (node.destroy_node if node is not None else None)):
        if close is None:
            continue
        try:
            close()
        except Exception:  # the context may already be gone after an interrupt
            pass
    if rclpy.ok():
        rclpy.shutdown()


# ---------------------------------------------------------------------------------------- replay
def cmd_replay(args) -> int:
    import rclpy

    from emotion_ros.bags.offline import expected_windows
    from emotion_ros.bags.player import BagPlayer, PlayerConfig
    from emotion_ros.bags.recorder import BagRecorder
    from emotion_ros.bags.typestore import EMOTION_REASONING, EMOTION_STATE

    node_config = _perception_config(args, window_s=args.window_s, hop_s=args.hop_s, state_topic=args.state_topic)
    state_topic = node_config.topics.state_topic
    config = PlayerConfig(rate=args.rate, flow=args.flow, topics=args.topics, remap=_remap(args.remap),
                          state_topic=state_topic, windowing=node_config.windowing, inputs=node_config.topics,
                          state_timeout_s=args.state_timeout, log=lambda line: print(f"replay: {line}", flush=True))
    expected = None
    if node_config.windowing.mode == "fixed":  # the windows the node will cut, to count missing states against
        expected = expected_windows(args.bag, node_config)
    _init_ros()
    node = rclpy.create_node("emotion_ros_replay")
    recorder = None
    player = None
    try:
        if args.record_states:
            topics = {state_topic: EMOTION_STATE, node_config.topics.reasoning_topic: EMOTION_REASONING}
            recorder = BagRecorder(node, args.record_states, topics, stamp="header").start()

        def show(rec):
            if args.print:
                print(f"[{rec.end_ns / 1e9:.2f}] #{rec.window_index} {rec.label} ({rec.confidence:.2f}) "
                      f"latency {rec.latency_ms:.0f} ms", flush=True)

        player = BagPlayer(args.bag, config, node=node, on_state=show)
        try:
            stats = player.play()
        except KeyboardInterrupt:
            player.stop()
            stats = player.stats
            stats.interrupted = True
        stats.windows_expected = expected
        for warning in stats.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print(stats.summary())
        if stats.unmatched_topics:
            print(f"note: nobody subscribed to {stats.unmatched_topics}", file=sys.stderr)
        if expected is not None and not stats.interrupted and len(stats.states) < expected and not args.flow:
            print(f"note: {expected - len({s.window_index for s in stats.states})} of {expected} windows got no "
                  "state: the node could not keep up at this rate (use --flow to lose none)", file=sys.stderr)
    except KeyboardInterrupt:
        print("replay: interrupted", file=sys.stderr)
    finally:
        if recorder is not None:
            counts = recorder.stop()
            print(f"recorded {counts} to {args.record_states}")
        _shutdown_ros(node)
    return 0


# ---------------------------------------------------------------------------------------- record
def cmd_record(args) -> int:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from emotion_ros.bags.recorder import BagRecorder
    from emotion_ros.bags import typestore as T

    # the node's configured topics and their types (--params-file / --param, default launch/perceive.yaml),
    # not the default names: a robot whose camera is on /image_raw/compressed records that topic
    c = _perception_config(args).topics
    roles = {c.state_topic: T.EMOTION_STATE, c.reasoning_topic: T.EMOTION_REASONING}
    if args.inputs:
        roles.update({c.image_topic: T.IMAGE, c.compressed_image_topic: T.COMPRESSED_IMAGE, c.audio_topic: T.AUDIO_CHUNK,
                      c.audio_stamped_topic: T.AUDIO_DATA_STAMPED, c.audio_info_topic: T.AUDIO_INFO,
                      c.transcript_topic: T.TRANSCRIPT if c.transcript_type == "transcript" else T.STRING})
    roles.pop("", None)  # a topic switched off
    for topic, msgtype in list(roles.items()):
        try:
            T.ros_message_class(msgtype)
        except ImportError:  # e.g. audio_common_msgs not installed: the node does not subscribe to it either
            print(f"record: {topic} ({msgtype}) not recorded: the message package is not importable", file=sys.stderr)
            del roles[topic]
    topics = list(args.topics or [t for t in roles if t in (c.state_topic, c.reasoning_topic)])
    topics += [t for t in roles if t not in topics and args.inputs]
    types = {t: roles.get(t, T.DEFAULT_TOPICS.get(t)) for t in topics}  # None: found by discovery
    _init_ros()
    node = rclpy.create_node("emotion_ros_record")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    recorder = BagRecorder(node, args.out, types, storage=args.storage,
                           stamp=args.stamp)
    started = False
    try:
        if None in types.values():  # let discovery find the unknown types
            end = time.monotonic() + 3
            while time.monotonic() < end:
                executor.spin_once(timeout_sec=0.1)
        recorder.start()
        started = True
        until = f"for {args.duration:g} s (Ctrl-C stops earlier)" if args.duration else "until Ctrl-C"
        print(f"recording {topics} to {args.out} {until}; bag time = {args.stamp} stamps", flush=True)
        end = time.monotonic() + args.duration if args.duration else None
        while end is None or time.monotonic() < end:
            executor.spin_once(timeout_sec=0.1)
    except KeyboardInterrupt:
        print("record: interrupted", file=sys.stderr)
    finally:
        if started:
            print(f"recorded {recorder.stop()}")
        _shutdown_ros(node, executor)
    return 0


# ---------------------------------------------------------------------------------------- evaluate
def cmd_evaluate(args) -> int:
    from emotion_ros.evaluation import metrics as M
    from emotion_ros.evaluation.evaluate import BagJob, evaluate, load_manifest
    from emotion_ros.evaluation.report import write_report

    jobs = [BagJob(b, args.annotations, args.states) for b in args.bags]
    if args.manifest:
        jobs += load_manifest(args.manifest)
    if not jobs:
        raise SystemExit("evaluate: give bag paths or --manifest")
    states_fn = None
    if args.offline:
        from emotion_ros.bags.offline import OfflineRunner
        from emotion_ros.inference import build_engine

        config = _perception_config(args, profile=args.profile, checkpoint=args.checkpoint, labels=args.labels,
                                    label_set=args.label_set, seed=args.seed, llm_precision=args.llm_precision,
                                    window_s=args.window_s, hop_s=args.hop_s, window_mode=args.window_mode)
        runner = OfflineRunner(build_engine(config.engine), config, log=print)

        def states_fn(job):
            result = runner.run(job.bag, progress=True)
            for warning in result.warnings:
                print(f"warning: {warning}", file=sys.stderr)
            return result  # states + the input account, kept for the report
    try:
        wheels = M.EmotionWheels.load(args.wheels) if args.wheels else None
    except M.WheelError as err:
        raise SystemExit(f"evaluate: {err}") from None
    result = evaluate(jobs, states_fn, dataset=args.dataset, wheels=wheels, state_topic=args.state_topic,
                      waf_variant=args.waf_variant)
    command = "python -m emotion_ros " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if args.record_command else ""
    summary = write_report(result, args.out, command=command)
    s = result["summary"]
    if s.get("inputs_counted"):
        reasons = ", ".join(f"{k} {v}" for k, v in s["dropped"].items())
        drops = f"{s['dropped_total']} inputs dropped" + (f" ({reasons})" if reasons else "") + f", {s['lost']} lost"
    else:
        drops = "input drops: counted by the node (see /diagnostics), not in recorded states"
    print(f"{s['bags_evaluated']} bag(s) evaluated, {s['bags_failed']} failed; {s['states']} windows; {drops}; "
          f"Avg {result['avg'] * 100:.2f}; report: {summary}")
    for name, d in result["datasets"].items():
        if d.get("undefined"):
            print(f"{name}: {d['metric']} undefined: {d['undefined']}", file=sys.stderr)
    for e in result["errors"]:
        print(f"error: {e['error']}", file=sys.stderr)
    return 0 if s["bags_evaluated"] else 1


# ---------------------------------------------------------------------------------------- make-bag
def cmd_make_bag(args) -> int:
    from emotion_ros.bags.bag_io import BagError
    from emotion_ros.ingest.errors import InputError

    try:
        return _make_bag(args)
    except BagError as e:  # one sentence, not a traceback
        if e.reason == "exists":
            raise SystemExit(f"make-bag: {e.path} already exists; pass --overwrite to replace it") from None
        raise SystemExit(f"make-bag: {e}") from None
    except (InputError, ValueError) as e:  # unreadable manifest or media, no clips
        raise SystemExit(f"make-bag: {e}") from None


def _make_bag(args) -> int:
    from emotion_ros.bags.clips import (DEFAULT_T0_NS, NS, BagTopics, make_bag_from_clips, make_bags_per_clip,
                                        write_synthetic_bag)

    t0_ns = DEFAULT_T0_NS if args.t0 is None else int(args.t0) * NS + round((args.t0 % 1) * NS)
    if args.synthetic:
        segments = []
        for part in args.synthetic.split(","):
            label, _, dur = part.partition(":")
            segments.append((label.strip(), float(dur or 2.0)))
        ann = write_synthetic_bag(args.out, segments, fps=args.fps, dataset=args.dataset, storage=args.storage,
                                  overwrite=args.overwrite, t0_ns=t0_ns)
        print(f"wrote {args.out} ({len(ann.segments)} segments)")
        return 0
    if not args.manifest:
        raise SystemExit("make-bag: give --manifest CLIPS.jsonl or --synthetic LABEL:SECONDS,...")
    from emotion_ros_training.data.manifest import read_manifest

    records = [r for r in read_manifest(args.manifest) if not args.split or r.split == args.split]
    records = records[: args.limit] if args.limit else records
    kwargs = dict(t0_ns=t0_ns, max_fps=args.fps, max_side=args.max_side, storage=args.storage,
                  overwrite=args.overwrite, topics=BagTopics(jpeg_quality=args.jpeg), transcripts=args.transcripts)
    if args.per_clip:
        paths = make_bags_per_clip(records, args.out, **kwargs)
        print(f"wrote {len(paths)} bags under {args.out}")
    else:
        ann = make_bag_from_clips(records, args.out, gap_s=args.gap, **kwargs)
        print(f"wrote {args.out} ({len(ann.segments)} clips)")
    return 0


def add_replay_commands(subparsers) -> None:
    """Register replay / record / evaluate / make-bag on an argparse subparsers object."""
    p = subparsers.add_parser("replay", help="publish a bag's camera/audio/transcript topics over ROS")
    p.add_argument("bag", help="rosbag2 folder to publish")
    p.add_argument("--rate", type=float, default=1.0, help="time scale (1 = real time, 0 = as fast as possible)")
    p.add_argument("--flow", action="store_true", help="wait for the node's state of each window (no drops)")
    p.add_argument("--topics", nargs="+",
                   help="bag topics to publish (default: the topics that feed the node's inputs, matched by "
                        "name or else by message type, each published on the node's topic for its type)")
    p.add_argument("--remap", nargs="+", metavar="FROM:=TO", help="publish bag topic FROM on topic TO")
    p.add_argument("--state-topic", default=None, help="the node's state topic (default: its state_topic parameter)")
    p.add_argument("--window-s", type=float, default=None, help="the node's window (default: its window_s parameter)")
    p.add_argument("--hop-s", type=float, default=None, help="the node's hop (default: its hop_s parameter)")
    _add_config_arguments(p)
    p.add_argument("--state-timeout", type=float, default=10.0, help="max wait for one window's state (s)")
    p.add_argument("--record-states", metavar="BAG", help="also record the node's outputs to this new bag")
    p.add_argument("--print", action="store_true", help="print every state received")
    p.set_defaults(func=cmd_replay)

    p = subparsers.add_parser("record", help="record the node's outputs (and optionally inputs) to a bag")
    p.add_argument("out", help="bag folder to create")
    p.add_argument("--topics", nargs="+", help="topics (default: the node's state and reasoning topics)")
    p.add_argument("--inputs", action="store_true",
                   help="also record the node's input topics (camera, compressed camera, audio, audio_stamped, "
                        "audio_info, transcript: the configured names, '' = off)")
    _add_config_arguments(p)
    p.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap", help="rosbag2 storage format (default mcap)")
    p.add_argument("--stamp", choices=["receive", "header"], default="receive",
                   help="bag time of each message: receive = wall clock at arrival (as ros2 bag record); header = "
                        "its header stamp. Recording while a bag is replayed: use header, or the bag times are the "
                        "wall clock, far (e.g. 1e8 s) from the replayed bag's stamps and its annotations")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0 = Ctrl-C)")
    p.set_defaults(func=cmd_record)

    p = subparsers.add_parser("evaluate", help="score states against annotations; write a report directory")
    p.add_argument("bags", nargs="*", help="bag folders (with annotations.json, or see --annotations)")
    p.add_argument("--manifest", help="JSON/text list of bags (bag, annotations, states, dataset)")
    p.add_argument("--annotations", help="annotation file (for a single bag)")
    p.add_argument("--states", help="bag holding the recorded /emotion/state (default: the bag itself)")
    p.add_argument("--state-topic", default="/emotion/state", help="topic of the recorded states in --states (default /emotion/state)")
    p.add_argument("--offline", action="store_true",
                   help="compute the states offline with the node's windowing + model code (no DDS, deterministic)")
    _add_config_arguments(p)
    p.add_argument("--profile", default=None, help="offline: model profile (default: the params file's)")
    p.add_argument("--checkpoint", default=None,
                   help="offline: trained-weights folder, 'auto' = the profile's shipped adapters, '' = untrained")
    p.add_argument("--label-set", default=None, help="offline: named label set (MER6, MELD7, SENTIMENT3, IEMOCAP4)")
    p.add_argument("--labels", nargs="+", help="offline: explicit label list (wins over --label-set)")
    p.add_argument("--seed", type=int, default=None, help="offline: seed of random initialisation (tiny profile)")
    p.add_argument("--llm-precision", default=None,
                   help="offline: LLM precision (auto, float32, bfloat16, float16, mixed; default: the params file's)")
    p.add_argument("--window-s", type=float, default=None, help="offline: window length (s)")
    p.add_argument("--hop-s", type=float, default=None, help="offline: hop between windows (s)")
    p.add_argument("--window-mode", default=None, help="offline: fixed | vad | both")
    p.add_argument("--dataset", default="", help="data set name (picks the paper metric) for all bags")
    p.add_argument("--wheels", metavar="DIR",
                   help="the official emotion_wheel folder (format.csv, synonym.xlsx, wheel1..5.xlsx): needed by "
                        "the hit rate and the OV F-score")
    p.add_argument("--waf-variant", choices=["emotion-llama-v2", "affectgpt"], default="emotion-llama-v2",
                   help="WAF of the sentiment sets: the paper's script (default) or AffectGPT's")
    p.add_argument("--out", default="out/report",
                   help="report directory (default out/report, which git ignores)")
    p.add_argument("--record-command", action="store_true", help="write the command into the report")
    p.set_defaults(func=cmd_evaluate)

    p = subparsers.add_parser("make-bag", help="annotated bag(s) from MMEVerse clips or a synthetic session")
    p.add_argument("out", help="bag folder to create (with --per-clip: folder of one bag per clip)")
    p.add_argument("--manifest", help="MMEVerse JSONL manifest (emotion_ros_training.data.manifest)")
    p.add_argument("--split", default="", help="only clips of this split")
    p.add_argument("--limit", type=int, default=0, help="at most this many clips (0 = all)")
    p.add_argument("--per-clip", action="store_true", help="one bag per clip under OUT")
    p.add_argument("--gap", type=float, default=0.0, help="seconds of no data between clips in one bag")
    p.add_argument("--synthetic", metavar="LABEL:S,...", help="generate a synthetic session instead")
    p.add_argument("--dataset", default="", help="data set name written into the annotations (--synthetic)")
    p.add_argument("--fps", type=float, default=10.0, help="at most this many camera frames per second")
    p.add_argument("--max-side", type=int, default=320, help="frames are scaled down to at most this many pixels a side")
    p.add_argument("--jpeg", type=int, default=0, metavar="QUALITY",
                   help="write frames as sensor_msgs/CompressedImage JPEG of this quality (0 = raw rgb8 Image)")
    p.add_argument("--transcripts", choices=["transcript", "string"], default="transcript",
                   help="subtitles as emotion_ros/Transcript spanning each clip (default) or as std_msgs/String "
                        "at the clip start (for a live node left at transcript_type:=string)")
    p.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap", help="rosbag2 storage format (default mcap)")
    p.add_argument("--t0", type=float, default=None, metavar="SECONDS",
                   help="the bag's first stamp, seconds since the epoch (default 1700000000, the same for every "
                        "generated bag: reproducible). Bags replayed one after another to one node need starts "
                        "that increase: else the node sees sensor time jump back and late states of the first "
                        "bag fall inside the second one's time span")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (else make-bag refuses)")
    p.set_defaults(func=cmd_make_bag)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="emotion_ros.bags")
    add_replay_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
