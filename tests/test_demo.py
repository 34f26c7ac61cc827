"""`python -m emotion_ros demo` as the README shows it, on random miniature weights (the tiny profile)."""
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]  # ~20-30 s: the node imports torch + transformers


def test_demo_on_random_weights_says_so_and_prints_no_random_reasoning(tmp_path):
    from emotion_ros.app.bag_commands import main as bags

    samples = tmp_path / "samples"
    assert bags(["make-bag", "--synthetic", "happy:1.5,sad:1.5", str(samples / "session")]) == 0
    env = dict(os.environ, OMP_NUM_THREADS="1", ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    proc = subprocess.run([sys.executable, "-m", "emotion_ros", "demo", "--profile", "tiny", "--checkpoint", "",
                           "--samples", str(samples)], capture_output=True, text=True, timeout=300, env=env)
    out = proc.stdout
    assert proc.returncode == 0, (out[-2000:], proc.stderr[-3000:])
    assert "profile tiny without trained weights (checkpoint ''): the labels come from random weights, and " \
           "reasoning is skipped" in out
    states = [line for line in out.splitlines() if line.startswith("  state  #")]
    assert len(states) >= 2 and "  reason #" not in out
    assert "demo: done in" in out
