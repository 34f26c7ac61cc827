"""Small helpers for tests over real rclpy topics."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def python_process(*args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    """Start `python <args>` with the test environment (same ROS domain) in the repo root.

    env: additions to the environment, e.g. tests.helpers.interfaces.test_interfaces() to make the
    test-only audio_common_msgs / hri_msgs packages importable in the child."""
    extra = dict(env or {})
    env = dict(os.environ)
    env.update(extra)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def spin_until(node, predicate, timeout: float, executor=None) -> bool:
    """Spin `node` until predicate() is true or the timeout passes."""
    import rclpy

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        if executor is not None:
            executor.spin_once(timeout_sec=0.05)
        else:
            rclpy.spin_once(node, timeout_sec=0.05)
    return predicate()


def wait_for_subscribers(node, publisher, count: int = 1, timeout: float = 15.0) -> None:
    """Discovery takes 0.05-2.8 s here: publish only after the subscription has matched."""
    if not spin_until(node, lambda: publisher.get_subscription_count() >= count, timeout):
        raise TimeoutError(f"no subscriber matched {publisher.topic_name} within {timeout} s")
