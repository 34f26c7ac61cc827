"""training/synth/realism.py with a stand-in expert: the FER -> MER6 map and the agreement bookkeeping."""
import numpy as np
import pytest

from emotion_ros_training.synth import realism as R

FER = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def test_fer_to_mer6_sums_disgust_into_angry_and_fear_into_worried():
    m = R.to_mer6(np.array([0.1, 0.2, 0.3, 0.0, 0.0, 0.1, 0.3]), FER)
    assert m["angry"] == pytest.approx(0.3) and m["worried"] == pytest.approx(0.3)
    assert sum(m.values()) == pytest.approx(1.0) and set(m) == set(R.MER6_ORDER)


class _Fx:
    def __init__(self, probs):
        self.probs = probs


class _AlwaysHappy:
    """Finds a face on every other call and always reads it as happy."""

    def __init__(self):
        self.calls = 0

    def predict(self, frame):
        assert frame.dtype == np.uint8 and frame.shape == (224, 224, 3)
        self.calls += 1
        return _Fx(None if self.calls % 2 == 0 else np.array([0, 0, 0, 0.9, 0, 0, 0.1], np.float32))


def test_run_counts_detections_and_agreement():
    res = R.run(4, seed=3, expert=(_AlwaysHappy(), FER), emotions=("happy", "sad"))
    assert set(res) == {"happy", "sad"}
    assert res["happy"]["detected"] == 2 and res["happy"]["agreement"] == 1.0
    assert res["happy"]["mean_p"] == pytest.approx(0.9)
    assert res["sad"]["agreement"] == 0.0 and res["sad"]["seen"] == {"happy": 2, "(no face)": 2}
    table = R.markdown_table(res)
    assert "| happy | 2/4 | 100 % | 0.90 |" in table and "| **all** | 4/8 | 50 % |" in table
