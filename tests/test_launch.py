"""launch/perceive.launch.py (real ROS 2) and `python -m emotion_ros launch` start the same nodes with the
same parameter file; the file is a valid ROS 2 params file for the nodes' declared parameters."""
import importlib.util
import sys
import types

import yaml

from emotion_ros.app.launch_config import NODES, default_params_file
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


def test_params_file_only_sets_declared_parameters():
    from emotion_ros.nodes.microphone_node import PARAMETERS as MIC
    from emotion_ros.nodes.perception_node import PARAMETERS as PERCEPTION

    params = yaml.safe_load(default_params_file().read_text())
    declared = {"emotion_perception": PERCEPTION, "microphone": MIC}
    assert set(params) == set(declared)
    for node, values in params.items():
        unknown = set(values["ros__parameters"]) - set(declared[node])
        assert not unknown, f"{node}: parameters not declared by the node: {unknown}"
        for key, value in values["ros__parameters"].items():  # rclpy rejects e.g. 2 for a double parameter
            assert type(value) is type(declared[node][key]), f"{node}.{key}: {value!r}"
