"""IEMOCAP (Busso et al. 2008): dyadic acted sessions; the usual 4-class set neutral/happy/sad/angry.

Expected layout (IEMOCAP_full_release):

    <root>/Session{1..5}/
      dialog/EmoEvaluation/Ses01F_impro01.txt   lines "[6.2901 - 8.2357]\\tSes01F_impro01_F000\\tneu\\t[2.5000, 2.5000, 2.5000]"
                                                (turn time span, turn name, category, [valence, activation, dominance] on 1-5)
      dialog/transcriptions/Ses01F_impro01.txt  lines "Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me."
      dialog/avi/DivX/Ses01F_impro01.avi        one video per dialogue (both actors)
      sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav   one wav per turn

Categories: neu -> neutral, hap and exc -> happy (the common merge), sad -> sad, ang -> angry; the rest
(fru, sur, fea, dis, oth, xxx) are skipped and counted. The video is the dialogue avi cut with
start_s/end_s; the audio is the turn's wav. Split: Sessions 1-4 train, Session 5 test (the paper's
MMEVerse-Bench uses Session5 as IEMOCAP's test set).
"""
from __future__ import annotations

import glob
import os
import re

from emotion_ros_training.data.adapters import AdapterResult
from emotion_ros_training.data.manifest import IEMOCAP4, ClipRecord

EVAL_LINE = re.compile(
    r"^\[(?P<start>\d+(?:\.\d+)?)\s*-\s*(?P<end>\d+(?:\.\d+)?)\]\s+(?P<turn>\S+)\s+(?P<emo>\w+)"
    r"\s+\[(?P<v>[-\d.]+),\s*(?P<a>[-\d.]+),\s*(?P<d>[-\d.]+)\]"
)
TRANS_LINE = re.compile(r"^(?P<turn>\S+)\s+\[[\d.]+-[\d.]+\]:\s*(?P<text>.*)$")
CATEGORY = {"neu": "neutral", "hap": "happy", "exc": "happy", "sad": "sad", "ang": "angry"}


def _transcripts(path: str) -> dict[str, str]:
    out = {}
    if os.path.isfile(path):
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = TRANS_LINE.match(line.strip())
                if m:
                    out[m["turn"]] = m["text"].strip()
    return out


def build(root: str | os.PathLike, test_sessions: tuple[int, ...] = (5,)) -> AdapterResult:
    root = os.path.abspath(root)
    res = AdapterResult()
    sessions = sorted(glob.glob(os.path.join(root, "Session[0-9]*")))
    if not sessions:
        raise FileNotFoundError(f"no Session* folders under {root}")
    for sess in sessions:
        num = int(re.sub(r"\D", "", os.path.basename(sess)) or 0)
        split = "test" if num in test_sessions else "train"
        for eval_file in sorted(glob.glob(os.path.join(sess, "dialog", "EmoEvaluation", "*.txt"))):
            dialog = os.path.splitext(os.path.basename(eval_file))[0]
            trans = _transcripts(os.path.join(sess, "dialog", "transcriptions", dialog + ".txt"))
            avi = os.path.join(sess, "dialog", "avi", "DivX", dialog + ".avi")
            has_video = os.path.isfile(avi)
            with open(eval_file, encoding="utf-8", errors="replace") as f:
                for line in f:
                    m = EVAL_LINE.match(line.strip())
                    if not m:
                        continue
                    label = CATEGORY.get(m["emo"])
                    if label is None:
                        res.skipped[f"category_{m['emo']}"] += 1
                        continue
                    turn = m["turn"]
                    wav = os.path.join(sess, "sentences", "wav", dialog, turn + ".wav")
                    if not os.path.isfile(wav):
                        res.skipped["missing_media"] += 1
                        continue
                    subtitle = trans.get(turn) or None
                    start, end = float(m["start"]), float(m["end"])
                    mods = ["audio"] + (["vision"] if has_video else []) + (["text"] if subtitle else [])
                    res.records.append(ClipRecord(
                        clip_id=f"iemocap_{turn}",
                        dataset="IEMOCAP",
                        split=split,
                        label_space=IEMOCAP4,
                        labels=[label],
                        video_path=avi if has_video else None,
                        audio_path=wav,
                        subtitle=subtitle,
                        valence=float(m["v"]),
                        arousal=float(m["a"]),
                        modalities=mods,
                        start_s=start if has_video else None,
                        end_s=end if has_video else None,
                        meta={"session": num, "dialog": dialog, "category": m["emo"], "dominance": float(m["d"]),
                              "va_scale": "1..5", "turn_start_s": start, "turn_end_s": end},
                    ))
    return res
