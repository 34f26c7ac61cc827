"""`python -m emotion_ros <command>`: the project's entry point (also the `emotion-ros` console script).

Commands are registered by the module that implements them; imports are lazy so that e.g. `summary`
does not need ROS and `launch` does not need torch.
"""
from __future__ import annotations

import argparse
import os
import sys


def _launch(args) -> int:
    from emotion_ros.app.launcher import launch

    return launch(args.params_file, use_microphone=not args.no_microphone, ros_args=args.ros_args)


def _node(args) -> int:
    import importlib

    from emotion_ros.app.launch_config import NODES

    modules = {exe: module for exe, module, _name, _opt in NODES}
    return importlib.import_module(modules[args.name]).main(["emotion_ros", *args.ros_args])


def _params(args) -> int:
    """Every parameter of the perception node: name, default, description (what ros2 param describe shows)."""
    from emotion_ros.config import PerceptionConfig

    config = PerceptionConfig.load(args.params_file) if args.params_file is not None else PerceptionConfig()
    values = config.to_mapping()
    for name, (section, spec) in PerceptionConfig.parameter_table().items():
        if spec.advanced and not args.all:
            continue
        print(f"{name} = {values[name]!r}  [{section}, {spec.kind}]\n    {spec.describe()}")
    return 0


def _demo(args) -> int:
    from emotion_ros.app.demo import run_demo

    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emotion_ros", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("launch", help="start the perception (+ microphone) nodes with launch/perceive.yaml")
    p.add_argument("--params-file", default=None, help="ROS 2 parameter file (default: launch/perceive.yaml)")
    p.add_argument("--no-microphone", action="store_true", help="do not start the microphone node")
    p.set_defaults(func=_launch, ros_args=[])
    p.epilog = "Anything after --ros-args (e.g. --ros-args -p profile:=tiny) is passed to every node."

    p = sub.add_parser("node", help="run one node in this process (like `ros2 run emotion_ros NAME`)")
    p.add_argument("name", choices=["perception_node", "microphone_node"], help="which node")
    p.set_defaults(func=_node, ros_args=[])
    p.epilog = "Anything after --ros-args is passed to the node."

    p = sub.add_parser("params", help="list the perception node's parameters with defaults and descriptions")
    p.add_argument("--params-file", default=None, help="show the values this ROS 2 parameter file sets")
    p.add_argument("--all", action="store_true", help="also the advanced (windowing fault-handling) parameters")
    p.set_defaults(func=_params)

    from emotion_ros.app.demo import add_demo_arguments

    p = sub.add_parser("demo", help="replay the shipped sample bags through the real nodes and print the states")
    add_demo_arguments(p)
    p.set_defaults(func=_demo)

    from emotion_ros.app.summary import add_summary_command

    add_summary_command(sub)
    from emotion_ros.app.benchmark_command import add_benchmark_command

    add_benchmark_command(sub)
    from emotion_ros.app.official_command import add_import_official_command

    add_import_official_command(sub)
    from emotion_ros.app.bag_commands import add_replay_commands  # a broken import must fail, not hide commands

    add_replay_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a model hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    argv = list(sys.argv[1:] if argv is None else argv)
    ros_args = []
    if "--ros-args" in argv:  # ROS arguments go to the nodes untouched (argparse would reject -p ...)
        cut = argv.index("--ros-args")
        argv, ros_args = argv[:cut], argv[cut:]
    args = build_parser().parse_args(argv)
    if ros_args:
        if args.command not in ("launch", "node"):
            raise SystemExit(f"--ros-args is only for the launch and node commands, not {args.command}")
        args.ros_args = ros_args
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
