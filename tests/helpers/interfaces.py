"""Test-only ROS interface packages `audio_common_msgs` and `hri_msgs`, built from the upstream definitions.

Neither package is on any registry this project can reach (ENVIRONMENT.md), yet the node's and the
player's paths that import them must run in the tests. So the tests build interface packages of the same
names from emotion_ros/bags/interfaces/<pkg>/msg/*.msg with the normal ament_cmake + rosidl route (the
wheels scripts/bootstrap.sh installs): same package, type and field names and types, hence the same
rosidl type hashes as the real packages (checked against rosbags' hashes in tests/test_ros_interop.py).

The build goes to build/test_interfaces/<hash>/install (hash of the definitions and of the venv's
requirements stamp) and is reused while that hash holds: at most one build per test run. Measured on the
2-core machine: 28 s for both packages when nothing is cached, 0 s after.
Use: `env = test_interfaces()` gives the variables a child process needs (pass them to python_process(env=...)).
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS = ROOT / "emotion_ros" / "bags" / "interfaces"
PACKAGES = ("audio_common_msgs", "hri_msgs")
BUILD_ROOT = ROOT / "build" / "test_interfaces"

_CMAKE = """cmake_minimum_required(VERSION 3.16)
project({name})
find_package(ament_cmake REQUIRED)
find_package(rosidl_default_generators REQUIRED)
find_package(std_msgs REQUIRED)
rosidl_generate_interfaces(${{PROJECT_NAME}} {files} DEPENDENCIES std_msgs)
ament_export_dependencies(rosidl_default_runtime)
ament_package()
"""
_PACKAGE_XML = """<?xml version="1.0"?>
<package format="3">
  <name>{name}</name>
  <version>0.0.0</version>
  <description>Test-only copy of {name}'s interfaces for emotion_ros's tests (not the real package).</description>
  <maintainer email="emotion-ros@example.org">emotion_ros tests</maintainer>
  <license>see emotion_ros/bags/interfaces/README.md</license>
  <buildtool_depend>ament_cmake</buildtool_depend>
  <buildtool_depend>rosidl_default_generators</buildtool_depend>
  <depend>std_msgs</depend>
  <exec_depend>rosidl_default_runtime</exec_depend>
  <member_of_group>rosidl_interface_packages</member_of_group>
  <export><build_type>ament_cmake</build_type></export>
</package>
"""

_built: dict | None = None
build_seconds: float | None = None  # wall time of this run's build (None: reused from the cache)


def _hash() -> str:
    h = hashlib.sha256()
    for path in sorted(DEFINITIONS.glob("*/msg/*.msg")):
        h.update(path.relative_to(DEFINITIONS).as_posix().encode() + b"\0" + path.read_bytes())
    h.update(_CMAKE.encode() + _PACKAGE_XML.encode())
    stamp = Path(sys.prefix) / ".stamp-requirements"
    h.update(stamp.read_bytes() if stamp.is_file() else b"")
    return h.hexdigest()[:16]


def _site_packages(prefix: Path) -> Path:
    ver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return prefix / "lib" / ver / "site-packages"


def env_for(prefix: Path) -> dict[str, str]:
    """The environment additions under which a process imports the packages installed in `prefix`."""

    def joined(name: str, first: Path) -> str:
        rest = os.environ.get(name, "")
        return str(first) + (os.pathsep + rest if rest else "")

    return {
        "AMENT_PREFIX_PATH": joined("AMENT_PREFIX_PATH", prefix),
        "LD_LIBRARY_PATH": joined("LD_LIBRARY_PATH", prefix / "lib"),
        "PYTHONPATH": joined("PYTHONPATH", _site_packages(prefix)),
    }


def _build(prefix: Path, work: Path) -> None:
    venv = Path(sys.prefix)
    env = dict(os.environ, PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
               AMENT_PREFIX_PATH=str(venv), CMAKE_PREFIX_PATH=str(venv))
    for name in PACKAGES:
        src = work / "src" / name
        (src / "msg").mkdir(parents=True, exist_ok=True)
        files = []
        for msg in sorted((DEFINITIONS / name / "msg").glob("*.msg")):
            shutil.copy(msg, src / "msg" / msg.name)
            files.append(f'"msg/{msg.name}"')
        (src / "CMakeLists.txt").write_text(_CMAKE.format(name=name, files=" ".join(files)))
        (src / "package.xml").write_text(_PACKAGE_XML.format(name=name))
        build = work / "build" / name
        steps = [
            ["cmake", "-S", str(src), "-B", str(build), f"-DCMAKE_INSTALL_PREFIX={prefix}", "-DBUILD_TESTING=OFF",
             f"-DPython3_EXECUTABLE={sys.executable}", "-DCMAKE_BUILD_TYPE=Release"],
            ["make", "-C", str(build), f"-j{os.cpu_count() or 2}"],
            ["make", "-C", str(build), "install"],
        ]
        for cmd in steps:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode:
                raise RuntimeError(f"building the test-only {name} failed at `{' '.join(cmd[:2])}`:\n"
                                   f"{(proc.stdout + proc.stderr)[-3000:]}")
        # the install prefix is now an ament prefix for `name` too (used by colcon-less consumers)
        env["AMENT_PREFIX_PATH"] = f"{prefix}{os.pathsep}{venv}"
        env["CMAKE_PREFIX_PATH"] = env["AMENT_PREFIX_PATH"]


def test_interfaces() -> dict[str, str]:
    """Build (once, cached) the test-only audio_common_msgs + hri_msgs; return the child env additions."""
    global _built, build_seconds
    if _built is not None:
        return dict(_built)
    if shutil.which("cmake") is None:
        raise RuntimeError("cmake is not installed: the test-only interface packages cannot be built")
    BUILD_ROOT.mkdir(parents=True, exist_ok=True)
    key = _hash()
    base = BUILD_ROOT / key
    prefix = base / "install"
    with open(BUILD_ROOT / ".lock", "w") as lock:  # two pytest runs at once must not build into one folder
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (base / "complete").is_file():
            shutil.rmtree(base, ignore_errors=True)
            t = time.monotonic()
            _build(prefix, base)
            build_seconds = time.monotonic() - t
            (base / "complete").write_text(f"{build_seconds:.1f} s\n")
            for old in BUILD_ROOT.iterdir():  # stale builds of earlier definitions
                if old.is_dir() and old.name != key:
                    shutil.rmtree(old, ignore_errors=True)
    _built = env_for(prefix)
    return dict(_built)


def installed_prefix() -> Path:
    """The install prefix of the cached build (after test_interfaces())."""
    return BUILD_ROOT / _hash() / "install"


def activate_in_process() -> None:
    """Make the packages importable in THIS process (sys.path + preloaded shared libraries): the C
    extension modules link the packages' libraries, which the dynamic loader looks up through the
    LD_LIBRARY_PATH the process started with, so they are loaded by full path first."""
    import ctypes

    test_interfaces()
    prefix = installed_prefix()
    site = str(_site_packages(prefix))
    if site not in sys.path:
        sys.path.insert(0, site)
    os.environ["AMENT_PREFIX_PATH"] = f"{prefix}{os.pathsep}{os.environ.get('AMENT_PREFIX_PATH', '')}"
    os.environ["LD_LIBRARY_PATH"] = f"{prefix / 'lib'}{os.pathsep}{os.environ.get('LD_LIBRARY_PATH', '')}"
    # generator_c first, then the type supports that depend on it
    for pattern in ("lib*__rosidl_generator_c.so", "lib*__rosidl_typesupport_*.so", "lib*__rosidl_generator_py.so"):
        for lib in sorted((prefix / "lib").glob(pattern)):
            ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
