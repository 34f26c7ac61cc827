"""ros2 launch emotion_ros perceive.launch.py [params_file:=...] [use_microphone:=false]

Starts the perception node (and the microphone node) with launch/perceive.yaml. On machines without
`ros2 launch`, `python -m emotion_ros launch` starts the same nodes with the same file.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from emotion_ros.app.launch_config import NODES
from emotion_ros.paths import PACKAGE, default_params_file


def generate_launch_description():
    params_file = LaunchConfiguration("params_file")
    actions = [
        DeclareLaunchArgument("params_file", default_value=str(default_params_file()),
                              description="ROS 2 parameter file for all emotion_ros nodes"),
        DeclareLaunchArgument("use_microphone", default_value="true",
                              description="also start the PyAudio microphone node"),
    ]
    for executable, _module, name, optional in NODES:
        actions.append(Node(
            package=PACKAGE, executable=executable, name=name, parameters=[params_file], output="screen",
            condition=IfCondition(LaunchConfiguration("use_microphone")) if optional else None,
        ))
    return LaunchDescription(actions)
