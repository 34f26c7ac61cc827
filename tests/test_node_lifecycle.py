"""The perception node's lifecycle over the real lifecycle services (lifecycle_msgs), node in its own process.

configure -> activate -> deactivate -> activate -> deactivate -> cleanup -> shutdown (ROS 2 allows cleanup
only from inactive, hence the second deactivate). In each state: what /diagnostics says (published from
construction on, whatever the state), whether the inputs are subscribed, and whether states are published.
A configure that fails (bad parameter, model that cannot load) is ERROR on /diagnostics and leaves the node
alive and unconfigured.
"""
import time

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NODE = "emotion_perception"


class Driver:
    def __init__(self, node):
        from diagnostic_msgs.msg import DiagnosticArray
        from lifecycle_msgs.srv import ChangeState, GetState
        from sensor_msgs.msg import Image

        from emotion_ros.msg import AudioChunk, EmotionState

        self.node = node
        self.states, self.diags = [], []
        node.create_subscription(EmotionState, "/emotion/state", self.states.append, 100)
        node.create_subscription(DiagnosticArray, "/diagnostics", self.diags.append, 100)
        self.images = node.create_publisher(Image, "/camera/image_raw", 10)
        self.audio = node.create_publisher(AudioChunk, "/audio", 10)
        self.change = node.create_client(ChangeState, f"/{NODE}/change_state")
        self.get = node.create_client(GetState, f"/{NODE}/get_state")

    def call(self, client, request, timeout=120.0):
        import rclpy

        assert client.wait_for_service(timeout_sec=60), f"{client.srv_name} not available"
        future = client.call_async(request)
        rclpy.spin_until_future_complete(self.node, future, timeout_sec=timeout)
        assert future.done(), f"{client.srv_name} did not answer within {timeout} s"
        return future.result()

    def transition(self, transition_id) -> bool:
        from lifecycle_msgs.srv import ChangeState

        req = ChangeState.Request()
        req.transition.id = transition_id
        return self.call(self.change, req).success

    def state(self) -> str:
        from lifecycle_msgs.srv import GetState

        return self.call(self.get, GetState.Request()).current_state.label

    def latest_diagnostics(self, since: float, timeout=10.0) -> dict:
        """Key/values, level and message of the first /diagnostics received after ``since`` (monotonic)."""
        from tests.helpers.ros import spin_until

        n = len(self.diags)
        spin_until(self.node, lambda: len(self.diags) > n and time.monotonic() > since, timeout)
        assert len(self.diags) > n, "no /diagnostics received"
        status = self.diags[-1].status[0]
        return {"level": int.from_bytes(status.level, "little") if isinstance(status.level, bytes) else int(status.level),
                "message": status.message, **{kv.key: kv.value for kv in status.values}}

    def feed(self, seconds: float) -> None:
        """Camera (15 Hz) + microphone (100 ms chunks) at real rate, stamped with the ROS clock."""
        import rclpy
        from sensor_msgs.msg import Image

        from emotion_ros.msg import AudioChunk

        clock = self.node.get_clock()
        end = time.monotonic() + seconds
        next_frame = next_audio = time.monotonic()
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_frame:
                img = Image(encoding="rgb8", height=32, width=32, step=96)
                img.header.stamp = clock.now().to_msg()
                img.data = np.full(32 * 32 * 3, int(now * 50) % 255, np.uint8).tobytes()
                self.images.publish(img)
                next_frame += 1 / 15
            if now >= next_audio:
                chunk = AudioChunk(sample_rate=16000, channels=1, sample_format="S16LE")
                stamp_ns = clock.now().nanoseconds - 100_000_000
                chunk.header.stamp = rclpy.time.Time(nanoseconds=stamp_ns).to_msg()
                chunk.data = (np.sin(np.arange(1600) / 7) * 6000).astype("<i2").tobytes()
                self.audio.publish(chunk)
                next_audio += 0.1
            rclpy.spin_once(self.node, timeout_sec=0.005)


def _start(*params):
    from tests.helpers.ros import python_process

    args = ["-m", "emotion_ros.nodes.perception_node", "--ros-args", "-p", "autostart:=false",
            "-p", "profile:=tiny", "-p", "asr:=never", "-p", "reasoning_every:=0", "-p", "window_s:=1.0",
            "-p", "diagnostics_period_s:=0.3", "-p", "llm_precision:=float32"]
    for p in params:
        args += ["-p", p]
    return python_process(*args)


def test_lifecycle_transitions_over_the_services():
    import rclpy
    from lifecycle_msgs.msg import Transition

    from tests.helpers.ros import spin_until

    proc = _start()
    rclpy.init()
    node = rclpy.create_node("lifecycle_driver")
    d = Driver(node)
    try:
        # unconfigured: diagnostics already, nothing subscribed, no state publisher
        diag = d.latest_diagnostics(time.monotonic(), timeout=60)
        assert diag["lifecycle/state"] == "unconfigured" and diag["level"] == 0
        assert d.state() == "unconfigured"
        assert d.audio.get_subscription_count() == 0 and node.count_publishers("/emotion/state") == 0

        assert d.transition(Transition.TRANSITION_CONFIGURE)
        assert d.state() == "inactive"
        assert d.latest_diagnostics(time.monotonic())["lifecycle/state"] == "inactive"
        assert node.count_publishers("/emotion/state") == 1  # created on configure, inactive
        d.feed(1.5)
        assert d.audio.get_subscription_count() == 0 and not d.states  # inactive: inputs not taken

        counts = []
        for round_ in range(2):
            assert d.transition(Transition.TRANSITION_ACTIVATE)
            assert d.state() == "active"
            spin_until(node, lambda: d.audio.get_subscription_count() > 0 and d.images.get_subscription_count() > 0, 15)
            before = len(d.states)
            d.feed(3.0)
            spin_until(node, lambda: len(d.states) > before, 10)
            assert len(d.states) > before, f"round {round_}: no state while active"
            assert d.latest_diagnostics(time.monotonic())["lifecycle/state"] == "active"
            assert d.transition(Transition.TRANSITION_DEACTIVATE)
            assert d.state() == "inactive"
            spin_until(node, lambda: False, 1.0)  # the flush of what was buffered arrives before this
            counts.append(len(d.states))
            d.feed(1.5)
            spin_until(node, lambda: False, 1.0)
            assert len(d.states) == counts[-1], "states published while inactive"
            assert d.audio.get_subscription_count() == 0

        assert d.transition(Transition.TRANSITION_CLEANUP)
        assert d.state() == "unconfigured"
        assert d.latest_diagnostics(time.monotonic())["lifecycle/state"] == "unconfigured"
        spin_until(node, lambda: node.count_publishers("/emotion/state") == 0, 10)
        assert node.count_publishers("/emotion/state") == 0

        assert d.transition(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
        assert proc.wait(30) == 0  # a lifecycle shutdown ends the process cleanly
    finally:
        node.destroy_node()
        rclpy.shutdown()
        if proc.poll() is None:
            proc.terminate()
        log = proc.communicate(timeout=30)[0]
    assert "Traceback" not in log, log[-3000:]


@pytest.mark.parametrize("param, says", [("queue_size:=0", "queue_size"), ("profile:=paper", "paper"),
                                         ("window_s:=3", None)])
def test_failed_configure_is_an_error_on_diagnostics_and_the_node_stays_up(param, says):
    import rclpy
    from lifecycle_msgs.msg import Transition

    proc = _start(param)
    rclpy.init()
    node = rclpy.create_node("lifecycle_driver")
    d = Driver(node)
    try:
        ok = d.transition(Transition.TRANSITION_CONFIGURE)
        if says is None:  # an integer for a double parameter is converted, not a 20-line exception
            assert ok and d.state() == "inactive"
            return
        assert not ok and d.state() == "unconfigured"
        diag = d.latest_diagnostics(time.monotonic())
        assert diag["level"] == 2 and says in diag["message"], diag  # ERROR, naming the problem
        assert proc.poll() is None  # still alive, can be reconfigured
    finally:
        node.destroy_node()
        rclpy.shutdown()
        proc.terminate()
        log = proc.communicate(timeout=30)[0]
    assert "Traceback" not in log, log[-3000:]
