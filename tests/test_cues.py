"""Cue metrics of generated reasoning (training/cues.py): hand-made texts with known answers."""
import pytest

from emotion_ros_training import cues as C

FACE_SAD = [{"region": "brows", "key": "inner_raised", "aus": ["AU1"]},
            {"region": "eyes", "key": "tightened", "aus": ["AU7"]},
            {"region": "mouth", "key": "corners_down", "aus": ["AU15"]}]
VOICE_SAD = {"pitch": "low", "intonation": "flat", "rate": "slow", "loudness": "quiet", "pauses": "one"}
CUES_SAD = {"face": FACE_SAD, "voice": VOICE_SAD, "words": "I miss him so much.", "text_emotion": "sad"}
INSTR = ("Watch the video and consider all visual and auditory clues, including facial expressions, body "
         "movements, voice pitch, tempo, and speech content.")


def test_face_cues_named():
    assert C.face_families_named("The inner brows are raised (AU1) and the lip corners droop.") == \
        {"brows": "AU1", "mouth": "AU15"}
    # AU codes alone count; AU12 is not AU1
    assert C.face_families_named("AU12 and AU5 are active") == {"mouth": "AU12", "eyes": "AU5"}
    # longest phrase first: "brows are pulled down" is AU4, not the mouth's "pulled down"
    assert C.face_families_named("the brows are pulled down into a furrow") == {"brows": "AU4"}
    assert C.face_cue_correct("the inner brows are raised and the mouth is downturned", FACE_SAD)
    assert not C.face_cue_correct("the person is smiling (AU12) with inner brows raised", FACE_SAD)  # one wrong
    assert not C.face_cue_correct("the face looks sad", FACE_SAD)  # names no cue


def test_voice_cues_named():
    assert C.voice_values_named("the pitch is low, the speech is slow and soft") == \
        {"pitch": {"low"}, "rate": {"slow"}, "loudness": {"quiet"}}
    assert C.voice_cue_correct("a low pitch, a flat melody and one long pause", VOICE_SAD)
    assert not C.voice_cue_correct("the speaker talks quickly at a low pitch", VOICE_SAD)
    assert not C.voice_cue_correct("the speech is loud", VOICE_SAD)
    assert not C.voice_cue_correct("hesitant pauses", {"pitch": "high"})  # pauses the clip does not have
    # "ordinary loudness" is not "loud"; "fairly loud" counts as loud
    assert C.voice_values_named("at an ordinary loudness") == {"loudness": {"normal"}}
    assert C.voice_cue_correct("the voice is fairly loud", {"loudness": "loud"})
    # words inside quotes are not cues
    assert not C.voice_cue_correct('He says "I am so slow".', VOICE_SAD)


def test_words_and_copying():
    assert C.words_correct('The person says "I miss him so much" quietly.', "I miss him so much.")
    assert not C.words_correct('The person says "I miss you".', "I miss him so much.")
    assert not C.words_correct("I miss him so much.", "I miss him so much.")  # not quoted
    assert C.copies_instruction("I will consider all visual and auditory clues, including facial expressions now", INSTR)
    assert not C.copies_instruction("all visual and auditory clues including facial", INSTR)  # 7 tokens only


def test_cue_metrics_values():
    good = ('<think>The inner brows are raised (AU1) and the lip corners are pulled down (AU15). The pitch is low '
            'and the speech is slow. The person says "I miss him so much".</think><answer>sad</answer>')
    wrong = ('<think>The person is smiling (AU12). The speech is fast. The person says "Hello".</think>'
             '<answer>happy</answer>')
    copier = "<think>" + INSTR + "</think><answer>sad</answer>"
    items = [
        {"text": good, "cues": CUES_SAD, "instruction": INSTR, "answer": "sad", "label_path": "sad"},
        {"text": wrong, "cues": CUES_SAD, "instruction": INSTR, "answer": "happy", "label_path": "sad"},
        {"text": copier, "cues": CUES_SAD, "instruction": INSTR, "answer": "sad", "label_path": "sad"},
        {"text": "<think>no cues</think><answer>sad</answer>", "cues": None, "instruction": INSTR, "answer": "sad",
         "label_path": "neutral"},
    ]
    m = C.cue_metrics(items)
    assert m["n"] == 4 and m["face_cue_n"] == 3 and m["voice_cue_n"] == 3 and m["words_n"] == 3
    assert m["face_cue_accuracy"] == pytest.approx(1 / 3)
    # the copied instruction names "voice pitch" / "tempo" but no vocal value -> not correct
    assert m["voice_cue_accuracy"] == pytest.approx(1 / 3)
    assert m["words_accuracy"] == pytest.approx(1 / 3)
    assert m["instruction_copy_rate"] == pytest.approx(1 / 4)
    assert m["answer_label_agreement"] == pytest.approx(2 / 4)
    assert 0 < m["distinct_2"] < 1


def test_distinct_2():
    assert C.distinct_n(["a b c", "a b d"], 2) == pytest.approx(3 / 4)  # ab, bc, ab, bd -> 3 distinct of 4
    assert C.distinct_n(["one"], 2) is None
    empty = C.cue_metrics([])
    assert empty["face_cue_accuracy"] is None and empty["face_cue_n"] == 0 and empty["distinct_2"] is None
