"""`python -m emotion_ros launch`: start the nodes of launch/perceive.launch.py without `ros2 launch`.

Each node runs in its own process with the same parameter file (`--ros-args --params-file`), as
launch_ros would do. An optional node that exits (e.g. the microphone where there is no input device)
is reported in one line and the others keep running; a required node that exits stops the launch.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from emotion_ros.app.launch_config import NODES
from emotion_ros.paths import default_params_file


def node_command(module: str, name: str, params_file: Path, ros_args: list[str] = ()) -> list[str]:
    return [sys.executable, "-m", module, "--ros-args", "--params-file", str(params_file),
            "-r", f"__node:={name}", *ros_args]


def launch(params_file: Path | None = None, use_microphone: bool = True, ros_args: list[str] = (),
           env: dict | None = None) -> int:
    params_file = Path(params_file or default_params_file())
    if not params_file.exists():
        print(f"launch: parameter file {params_file} does not exist", file=sys.stderr)
        return 2
    procs = {}
    for _exe, module, name, optional in NODES:
        if optional and not use_microphone:
            continue
        procs[name] = (subprocess.Popen(node_command(module, name, params_file, list(ros_args)), env=env), optional)
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    old = signal.signal(signal.SIGINT, stop), signal.signal(signal.SIGTERM, stop)
    code = 0
    try:
        while procs and not stopping:
            time.sleep(0.2)
            for name, (proc, optional) in list(procs.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                del procs[name]
                if optional:
                    print(f"launch: optional node {name} exited with code {rc}; the others keep running",
                          file=sys.stderr)
                else:
                    print(f"launch: node {name} exited with code {rc}; stopping", file=sys.stderr)
                    code = rc or 1
                    stopping = True
    finally:
        for proc, _ in procs.values():
            proc.send_signal(signal.SIGINT)
        for proc, _ in procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        signal.signal(signal.SIGINT, old[0])
        signal.signal(signal.SIGTERM, old[1])
    return code
