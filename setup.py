"""pip install of the Python part of emotion_ros (the ROS interfaces are built by CMake; see README)."""
from setuptools import find_packages, setup

setup(
    name="emotion_ros",
    version="0.1.0",
    description="Emotion-LLaMAv2 multimodal emotion perception as ROS 2 nodes",
    license="Apache-2.0",
    python_requires=">=3.10",
    # training/ is imported as `emotion_ros_training` (a plain `training` could collide with any other
    # installed package of that name); the repo-root symlink emotion_ros_training -> training serves the
    # editable/source-tree install, package_dir the built wheel.
    packages=find_packages(include=["emotion_ros", "emotion_ros.*"])
    + ["emotion_ros_training"] + [f"emotion_ros_training.{p}" for p in find_packages("training")],
    package_dir={"emotion_ros_training": "training"},
    include_package_data=True,
    entry_points={
        "console_scripts": [
            "emotion-ros=emotion_ros.app.cli:main",
        ]
    },
)
