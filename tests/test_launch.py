"""launch/perceive.launch.py (real ROS 2) and `python -m emotion_ros launch` start the same nodes with the
same parameter file; the file is a valid ROS 2 params file for the nodes' declared parameters."""
import importlib.util
import sys
import types

import yaml

from emotion_ros.app.launch_config import NODES
from emotion_ros.paths import default_params_file
from emotion_ros.app.launcher import node_command

ROOT = default_params_file().parent.parent


def _load_launch_file_with_recording_stubs(monkeypatch):
    """`launch`/`launch_ros` are not installable here: stub them with recorders of what the file asks."""
    recorded = []

    class Recorder:
        def __init__(self, *args, **kwargs):
            self.args, self.kwargs = args, kwargs
            recorded.append(self)

    class LaunchConfiguration(Recorder):
        pass

    modules = {
        "launch": types.SimpleNamespace(LaunchDescription=lambda actions: actions),
        "launch.actions": types.SimpleNamespace(DeclareLaunchArgument=Recorder),
        "launch.conditions": types.SimpleNamespace(IfCondition=Recorder),
        "launch.substitutions": types.SimpleNamespace(LaunchConfiguration=LaunchConfiguration),
        "launch_ros": types.SimpleNamespace(),
        "launch_ros.actions": types.SimpleNamespace(Node=type("Node", (Recorder,), {})),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("perceive_launch", ROOT / "launch" / "perceive.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


def test_launch_file_and_own_launcher_use_the_same_nodes_and_params_file(monkeypatch):
    actions = _load_launch_file_with_recording_stubs(monkeypatch)
    declared = {a.args[0]: a.kwargs["default_value"] for a in actions if type(a).__name__ == "Recorder"}
    nodes = [a for a in actions if type(a).__name__ == "Node"]
    assert declared["params_file"] == str(default_params_file())
    assert [(n.kwargs["executable"], n.kwargs["name"]) for n in nodes] == [(e, n) for e, _m, n, _o in NODES]
    for node in nodes:  # every node gets the params_file launch argument
        (param,) = node.kwargs["parameters"]
        assert param.args == ("params_file",)
    for _exe, module, name, _opt in NODES:
        cmd = node_command(module, name, default_params_file())
        assert cmd[cmd.index("--params-file") + 1] == str(default_params_file())
        assert f"__node:={name}" in cmd
    for exe, _m, _n, _o in NODES:  # the executables launch_ros looks for exist and are installed by CMake
        assert (ROOT / "bin" / exe).exists()
        assert f"bin/{exe}" in (ROOT / "CMakeLists.txt").read_text()


def test_params_file_only_sets_declared_parameters_with_valid_values():
    """Every key of launch/perceive.yaml is a declared parameter of its node and its value passes the same
    validation the node applies on configure (types, allowed values, ranges)."""
    from emotion_ros.config import PerceptionConfig, read_params_file
    from emotion_ros.nodes.microphone_node import MicrophoneConfig
    from emotion_ros.params import build

    params = yaml.safe_load(default_params_file().read_text())
    assert set(params) == {"emotion_perception", "microphone"}
    config = PerceptionConfig.from_mapping(read_params_file(default_params_file()))
    assert config.engine.profile == "nano" and config.windowing.window_s == 2.0
    build(MicrophoneConfig, params["microphone"]["ros__parameters"])


def test_every_parameter_is_declared_once_with_a_description():
    from emotion_ros.config import PerceptionConfig

    table = PerceptionConfig.parameter_table()  # raises when two sections declare the same name
    assert {"profile", "window_s", "window_mode", "image_topic", "queue_size", "asr"} <= set(table)
    for name, (_section, spec) in table.items():
        assert len(spec.doc) > 10, name


def test_launch_passes_ros_args_after_its_own_options(monkeypatch):
    from emotion_ros.app import cli

    seen = {}
    monkeypatch.setattr("emotion_ros.app.launcher.launch",
                        lambda params_file, use_microphone, ros_args: seen.update(mic=use_microphone, ros=ros_args) or 0)
    assert cli.main(["launch", "--no-microphone", "--ros-args", "-p", "profile:=tiny"]) == 0
    assert seen == {"mic": False, "ros": ["--ros-args", "-p", "profile:=tiny"]}


def test_empty_parameter_value_is_one_sentence_not_an_rcl_crash():
    import pytest

    pytest.importorskip("rclpy")
    from tests.helpers.ros import python_process

    proc = python_process("-m", "emotion_ros.nodes.perception_node", "--ros-args", "-p", "checkpoint:=")
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 2, out
    assert "checkpoint:=\"''\"" in out and "Traceback" not in out, out


def test_launch_nodes_are_the_packages_entry_points_and_the_yaml_names_their_declared_parameters():
    """launch_ros starts `<prefix>/lib/emotion_ros/<executable>` of package `emotion_ros`: each executable of
    the launch file is a bin/ script that CMake installs there and that runs the module NODES names; every
    key of launch/perceive.yaml is a parameter the running node really declares (rclpy, not a table)."""
    import re
    import xml.etree.ElementTree as ET

    import pytest

    from emotion_ros.paths import PACKAGE

    assert ET.parse(ROOT / "package.xml").getroot().findtext("name") == PACKAGE
    cmake = (ROOT / "CMakeLists.txt").read_text()
    (programs,) = re.findall(r"install\(PROGRAMS ([^)]*)\)", cmake)
    assert "DESTINATION lib/${PROJECT_NAME}" in programs
    for exe, module, _name, _opt in NODES:
        assert f"bin/{exe}" in programs.split()
        assert f"from {module} import main" in (ROOT / "bin" / exe).read_text()
        assert (ROOT / "bin" / exe).stat().st_mode & 0o111, f"bin/{exe} is not executable"

    rclpy = pytest.importorskip("rclpy")
    from emotion_ros.nodes.perception_node import EmotionPerceptionNode

    params = yaml.safe_load(default_params_file().read_text())["emotion_perception"]["ros__parameters"]
    context = rclpy.context.Context()
    rclpy.init(context=context)
    try:
        node = EmotionPerceptionNode(context=context)
        declared = {name for name in node._parameters if name != "use_sim_time"}
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    assert set(params) <= declared, set(params) - declared
    assert {"audio_stamped_topic", "audio_info_topic", "hri_topic"} <= declared
