"""ROS parameters from the declared configuration fields (emotion_ros.params / emotion_ros.config).

Each PerceptionConfig field becomes one ROS parameter with a ParameterDescriptor: its description (with the
allowed values), its type, and its numeric range where it has both bounds, so ``ros2 param describe``
tells the user what the field is. The values are turned back into a PerceptionConfig on configure by the
same validation as every other entry point. Two rclpy behaviours are smoothed over:
- a params file / ``-p`` value of another type (``window_s: 3`` for a double) would make
  ``declare_parameter`` raise a 20-line InvalidParameterTypeException at construction: a lossless int ->
  float is converted, anything else is reported as one sentence by configure and the default is kept;
- ``-p name:=`` (no value) makes rcl's argument parser fail inside ``rclpy.init``: ``init_or_explain``
  turns that into one sentence saying how to write an empty string.
"""
from __future__ import annotations

import sys

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.parameter import Parameter

from emotion_ros.config import PerceptionConfig
from emotion_ros.params import ParamSpec, build, specs

_ROS_TYPES = {"bool": ParameterType.PARAMETER_BOOL, "int": ParameterType.PARAMETER_INTEGER,
              "float": ParameterType.PARAMETER_DOUBLE, "str": ParameterType.PARAMETER_STRING,
              "str_list": ParameterType.PARAMETER_STRING_ARRAY}


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    d = ParameterDescriptor(description=spec.describe(), type=_ROS_TYPES[spec.kind])
    if spec.choices:
        d.additional_constraints = "one of: " + ", ".join(map(str, spec.choices))
    if spec.min is not None and spec.max is not None:
        if spec.kind == "float":
            d.floating_point_range = [FloatingPointRange(from_value=float(spec.min), to_value=float(spec.max))]
        elif spec.kind == "int":
            d.integer_range = [IntegerRange(from_value=int(spec.min), to_value=int(spec.max), step=1)]
    return d


def declare_config_parameters(node, config_cls=PerceptionConfig) -> list[str]:
    """Declare every parameter of ``config_cls`` on ``node``; returns the problems with given values (one
    sentence each; the default is kept for those)."""
    problems = []
    overrides = getattr(node, "_parameter_overrides", {})  # rclpy's parsed params files and -p values
    for name, spec in _table(config_cls).items():
        given = overrides.get(name)
        if given is not None and spec.kind == "float" and given.type_ == Parameter.Type.INTEGER:
            overrides[name] = Parameter(name, Parameter.Type.DOUBLE, float(given.value))  # lossless
        default = list(spec.default) if spec.kind == "str_list" else spec.default
        try:
            node.declare_parameter(name, default, descriptor(spec))
        except (InvalidParameterTypeException, InvalidParameterValueException) as exc:
            problems.append(f"parameter {name}: {given.value!r} is not usable ({_short(exc)}); {spec.describe()}")
            node.declare_parameter(name, default, descriptor(spec), ignore_override=True)
    return problems


def read_config_parameters(node, config_cls=PerceptionConfig):
    """The node's current parameter values as a validated ``config_cls`` (raises ConfigError)."""
    values = {name: node.get_parameter(name).value for name in _table(config_cls)}
    if hasattr(config_cls, "from_mapping"):
        return config_cls.from_mapping(values)
    return build(config_cls, values)


def _table(config_cls) -> dict[str, ParamSpec]:
    """name -> spec: a PerceptionConfig's sections, or one plain dataclass of param() fields."""
    if hasattr(config_cls, "parameter_table"):
        return {name: spec for name, (_section, spec) in config_cls.parameter_table().items()}
    return {spec.name: spec for spec in specs(config_cls)}


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200]


def init_or_explain(args=None, own_signals: bool = False) -> bool:
    """rclpy.init(args); on a command line rcl cannot parse, print one sentence instead of a traceback.

    own_signals: install no rclpy signal handler, so Ctrl-C / SIGTERM raise KeyboardInterrupt in the main
    thread and the node stops in order (rclpy's handler shuts the context down under the running worker
    and executor: "RCLError: context is invalid", "inference failed on window N" at every Ctrl-C)."""
    import signal

    import rclpy
    from rclpy._rclpy_pybind11 import RCLError
    from rclpy.signals import SignalHandlerOptions

    try:
        if own_signals:
            rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)

            def interrupt(signum, frame):
                raise KeyboardInterrupt

            signal.signal(signal.SIGTERM, interrupt)  # ros2 launch escalates SIGINT -> SIGTERM
        else:
            rclpy.init(args=args)
        return True
    except RCLError as exc:
        argv = list(sys.argv if args is None else args)
        empty = [a for a in argv if a.endswith(":=")]
        hint = (f"; {empty[0]} has no value: write {empty[0]}\"''\" for an empty string" if empty else "")
        print(f"cannot parse the ROS arguments {argv[1:]}{hint} ({_short(exc)})", file=sys.stderr)
        return False
