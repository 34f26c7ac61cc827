"""The realism check's bookkeeping (training/synth/realism.py) with a stand-in expert: FER2013 -> MER6 mapping,
agreement counting, missing faces; the real expert runs in tests/test_fer.py."""
import numpy as np

from emotion_ros.backbones.fer import FaceExpression
from emotion_ros.model.face_encoder import FER_CLASSES
from emotion_ros_training.synth.realism import measure, table


class Fixed:
    """Always the same FER2013 class (or no face)."""

    def __init__(self, cls):
        self.cls = cls

    def predict(self, frame):
        if self.cls is None:
            return FaceExpression(None, None, 0.0)
        p = np.full(len(FER_CLASSES), 0.01, np.float32)
        p[FER_CLASSES.index(self.cls)] = 1 - 0.01 * (len(FER_CLASSES) - 1)
        return FaceExpression(p, (0, 0, 1, 1), 1.0)


def test_fear_counts_as_worried_and_only_worried_agrees():
    res = measure(per_class=2, seed=1, frames=2, size=(64, 64), expert=Fixed("fear"))
    assert res["worried"]["agree"] == 2 and res["worried"]["p_intended"] > 0.9
    assert all(r["agree"] == 0 for k, r in res.items() if k != "worried")
    assert all(r["detected"] == 2 for r in res.values())
    assert "| **all** | | **2/12 (17 %)** |" in table(res)


def test_disgust_maps_to_angry_and_no_face_is_counted_not_agreed():
    res = measure(per_class=1, seed=1, frames=2, size=(64, 64), expert=Fixed("disgust"))
    assert res["angry"]["agree"] == 1
    res = measure(per_class=2, seed=1, frames=2, size=(64, 64), expert=Fixed(None))
    assert all(r["detected"] == 0 and r["agree"] == 0 and r["top"]["<no face>"] == 2 for r in res.values())
