"""Cue metrics of generated reasoning (`think` outputs): does the text name the cues the clip really has?

The synthetic clips record the cues they render (meta["cues"], emotion_ros_training.synth.generate):
facial action units of the apex frame per region (brows, eyes, mouth), vocal cues as words (pitch,
intonation, rate, loudness, pauses) and the words said. A generated text is read with the fixed cue
vocabulary below (lower-cased phrase matching, longest phrase first, a matched span is not matched again;
AU codes like "AU12" are read as well) and compared:

- facial cue accuracy: over texts of clips with a face, the share whose named facial cues are all right
  and at least one is named. A region's cue is its "family": brows AU4 / AU1 / AU1+AU2 / rest, eyes AU5 /
  AU6 / AU7 / rest, mouth AU26 / AU20 / AU12 / AU15 / rest (AU25 and the size of a smile do not count).
  A region the text does not mention is not counted against it.
- vocal cue accuracy: over texts of clips with audio, the share whose named vocal values are all right and
  at least one is named, on coarse values: pitch high (incl. very high) / ordinary / low; intonation lively
  (wide, lively) / even / flat (flat, narrow); rate fast / normal / slow; loudness loud (incl. fairly loud)
  / normal / quiet; pauses (any). A named pause on a clip without pauses is wrong.
- words accuracy: over texts of clips with a transcript, the share that quote (in double quotes) a span
  whose word tokens match the transcript's with token F1 >= 0.8.
- instruction copying: the share of texts that contain any 8-token span of the instruction they were
  prompted with (word tokens, lower case).
- distinct-2: distinct word bigrams / all word bigrams over all texts (1.0 = no bigram repeats).
- answer-vs-label agreement: the share of texts whose parsed <answer> equals the label path's label for the
  same clip (the structured decoder and the label path should not contradict each other).
"""
from __future__ import annotations

import re
from collections.abc import Sequence

# ---- vocabulary ------------------------------------------------------------------------------------------
# facial: phrase -> (region, AU or "rest")
FACE_VOCAB: dict[str, tuple[str, str]] = {}
for _p in ("inner corners of the eyebrows", "inner corners of the brows", "inner ends of the brows", "inner brow",
           "inner eyebrow"):
    FACE_VOCAB[_p] = ("brows", "AU1")
for _p in ("brows lifted", "eyebrows lifted", "brows are lifted", "eyebrows are lifted", "raised high", "arched high",
           "shoot up", "brows go up", "eyebrows go up", "outer brow", "lifted brows", "go up high"):
    FACE_VOCAB[_p] = ("brows", "AU2")
for _p in ("drawn together", "draw together", "knitted", "furrow", "frown", "brows are lowered", "eyebrows are lowered",
           "lowered brows", "lowered eyebrows", "brows pulled down", "brows are pulled down", "brows drawn down"):
    FACE_VOCAB[_p] = ("brows", "AU4")
for _p in ("eyebrows are relaxed", "brows are relaxed", "brows rest", "eyebrows rest", "brows are level",
           "relaxed brows", "relaxed eyebrows"):
    FACE_VOCAB[_p] = ("brows", "rest")
for _p in ("wide open", "wide-eyed", "eyes widen", "eyes are widened", "stare wide", "upper lids are raised"):
    FACE_VOCAB[_p] = ("eyes", "AU5")
for _p in ("cheeks rise", "cheeks raise", "cheeks lift", "raised cheeks", "cheeks push up", "crinkle"):
    FACE_VOCAB[_p] = ("eyes", "AU6")
for _p in ("tightened", "tighten", "narrowed", "squint", "lids tense"):
    FACE_VOCAB[_p] = ("eyes", "AU7")
for _p in ("eyes are open normally", "open normally", "eyes look ordinary", "eyes are calm", "eyes are relaxed",
           "relaxed eyes", "eyes are at rest"):
    FACE_VOCAB[_p] = ("eyes", "rest")
for _p in ("smile", "smiling", "grin", "lip corners are pulled up", "lip corners turn up", "corners turn up",
           "corners of the mouth turn up"):
    FACE_VOCAB[_p] = ("mouth", "AU12")
for _p in ("lips part", "parted lips", "shows the teeth"):
    FACE_VOCAB[_p] = ("mouth", "AU25")
for _p in ("corners are pulled down", "pulled down", "turned down", "turn down", "downturned", "droop"):
    FACE_VOCAB[_p] = ("mouth", "AU15")
for _p in ("stretched sideways", "stretch sideways", "lips stretch", "stretched wide", "lips are stretched"):
    FACE_VOCAB[_p] = ("mouth", "AU20")
for _p in ("jaw drops", "jaw falls", "dropped jaw", "o shape", "o-shaped", "mouth falls open", "gaping", "hangs open"):
    FACE_VOCAB[_p] = ("mouth", "AU26")
for _p in ("mouth is relaxed", "mouth is at rest", "mouth rests", "lips are relaxed", "relaxed mouth", "mouth is neutral",
           "lips rest"):
    FACE_VOCAB[_p] = ("mouth", "rest")

AU_REGION = {"AU1": "brows", "AU2": "brows", "AU4": "brows", "AU5": "eyes", "AU6": "eyes", "AU7": "eyes",
             "AU12": "mouth", "AU15": "mouth", "AU20": "mouth", "AU25": "mouth", "AU26": "mouth"}

# vocal: phrase -> (dimension, coarse value)
_VOICE_PHRASES: dict[tuple[str, str], tuple[str, ...]] = {
    ("pitch", "high"): (
        "high-pitched", "high pitch", "raised pitch", "pitch is high", "pitch is very high", "pitch climbs",
        "very high pitch", "higher pitch",
    ),
    ("pitch", "low"): ("low-pitched", "low pitch", "lowered pitch", "pitch is low", "deep voice", "lower pitch"),
    ("pitch", "ordinary"): ("ordinary pitch", "normal pitch", "usual pitch", "pitch is ordinary", "pitch is normal"),
    ("intonation", "lively"): (
        "swings widely", "wide swings", "lively", "animated", "expressive", "rises and falls", "leaps up and down",
    ),
    ("intonation", "even"): (
        "intonation is even", "intonation stays even", "even intonation", "melody is level", "level intonation",
        "steady intonation",
    ),
    ("intonation", "flat"): (
        "flat", "monotone", "narrow band", "narrow, strained", "tense and narrow", "narrow and tight", "barely moves",
        "narrow intonation",
    ),
    ("rate", "fast"): ("fast", "quickly", "rapid", "hurried"),
    ("rate", "slow"): ("slow", "slowly", "sluggish"),
    ("rate", "normal"): (
        "pace is normal", "steady pace", "usual pace", "normal pace", "speaking rate is normal", "normal speed",
        "ordinary pace",
    ),
    ("loudness", "loud"): ("loud", "loudly", "forceful", "with force", "volume is raised", "shouted"),
    ("loudness", "quiet"): ("quiet", "quietly", "soft", "softly", "volume is low", "subdued", "hushed"),
    ("loudness", "normal"): (
        "volume is normal", "moderate volume", "normal volume", "volume is unremarkable", "ordinary loudness",
        "normal loudness",
    ),
    ("pauses", "yes"): ("pause", "hesitat", "halting"),
}
VOICE_VOCAB: dict[str, tuple[str, str]] = {p: key for key, ps in _VOICE_PHRASES.items() for p in ps}

VOICE_COARSE = {
    "pitch": {"very high": "high", "high": "high", "ordinary": "ordinary", "low": "low"},
    "intonation": {"wide": "lively", "lively": "lively", "even": "even", "narrow": "flat", "flat": "flat"},
    "rate": {"fast": "fast", "normal": "normal", "slow": "slow"},
    "loudness": {"loud": "loud", "fairly loud": "loud", "normal": "normal", "quiet": "quiet"},
}

_AU_CODE = re.compile(r"\bau(\d{1,2})\b")
_WORD = re.compile(r"[a-z0-9']+")
_QUOTE = re.compile(r"\"([^\"]{2,200})\"|“([^”]{2,200})”")


def _find(text: str, vocab: dict) -> list:
    """Vocabulary entries found in text, longest phrase first, each span used once."""
    t = " " + text.lower() + " "
    found = []
    for phrase in sorted(vocab, key=len, reverse=True):
        i = t.find(phrase)
        while i >= 0:
            found.append(vocab[phrase])
            t = t[:i] + "\0" * len(phrase) + t[i + len(phrase):]
            i = t.find(phrase)
    return found


def _family(region: str, aus: set[str], rest: bool) -> str | None:
    if region == "brows":
        if "AU4" in aus:
            return "AU4"
        if "AU2" in aus:
            return "AU1+AU2"
        if "AU1" in aus:
            return "AU1"
    elif region == "eyes":
        for au in ("AU5", "AU6", "AU7"):
            if au in aus:
                return au
    else:
        for au in ("AU26", "AU20", "AU12", "AU15"):
            if au in aus:
                return au
        if "AU25" in aus:
            return "AU12"  # parted lips come only with the open smile here
    return "rest" if rest else None


def face_families_named(text: str) -> dict[str, str]:
    """{region: family} the text names (AU codes and the facial vocabulary)."""
    aus: dict[str, set[str]] = {"brows": set(), "eyes": set(), "mouth": set()}
    rest = {r: False for r in aus}
    for code in _AU_CODE.findall(text.lower()):
        au = f"AU{int(code)}"
        if au in AU_REGION:
            aus[AU_REGION[au]].add(au)
    for region, au in _find(text, FACE_VOCAB):
        if au == "rest":
            rest[region] = True
        else:
            aus[region].add(au)
    out = {}
    for region in aus:
        fam = _family(region, aus[region], rest[region])
        if fam is not None:
            out[region] = fam
    return out


def face_families_recorded(face_cues: Sequence[dict]) -> dict[str, str]:
    """{region: family} of a clip's recorded facial cues (meta["cues"]["face"])."""
    return {c["region"]: _family(c["region"], set(c.get("aus") or []), True) for c in face_cues}


def voice_values_named(text: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for dim, val in _find(text, VOICE_VOCAB):
        out.setdefault(dim, set()).add(val)
    return out


def voice_values_recorded(voice_cues: dict) -> dict[str, str]:
    out = {dim: VOICE_COARSE[dim][v] for dim, v in voice_cues.items() if dim in VOICE_COARSE}
    out["pauses"] = "yes" if voice_cues.get("pauses") else "no"
    return out


def tokens(text: str) -> list[str]:
    return _WORD.findall((text or "").lower())


def _f1(a: list[str], b: list[str]) -> float:
    if not a or not b:
        return 0.0
    from collections import Counter

    common = sum((Counter(a) & Counter(b)).values())
    if common == 0:
        return 0.0
    p, r = common / len(a), common / len(b)
    return 2 * p * r / (p + r)


def unquoted(text: str) -> str:
    """The text without its quoted spans (the words said may contain cue words: "I am so slow")."""
    return _QUOTE.sub(" ", text or "")


def face_cue_correct(text: str, face_cues: Sequence[dict]) -> bool:
    text = unquoted(text)
    named, truth = face_families_named(text), face_families_recorded(face_cues)
    return bool(named) and all(truth.get(r) == f for r, f in named.items())


def voice_cue_correct(text: str, voice_cues: dict) -> bool:
    text = unquoted(text)
    named, truth = voice_values_named(text), voice_values_recorded(voice_cues)
    return bool(named) and all(vals == {truth.get(dim)} for dim, vals in named.items())


def words_correct(text: str, words: str, min_f1: float = 0.8) -> bool:
    ref = tokens(words)
    return any(_f1(tokens(a or b), ref) >= min_f1 for a, b in _QUOTE.findall(text or ""))


def copies_instruction(text: str, instruction: str, n: int = 8) -> bool:
    """Whether text contains any n-token span of the instruction."""
    t, ins = tokens(text), tokens(instruction)
    if len(t) < n or len(ins) < n:
        return False
    spans = {tuple(ins[i:i + n]) for i in range(len(ins) - n + 1)}
    return any(tuple(t[i:i + n]) in spans for i in range(len(t) - n + 1))


def distinct_n(texts: Sequence[str], n: int = 2) -> float | None:
    grams, total = set(), 0
    for text in texts:
        t = tokens(text)
        g = [tuple(t[i:i + n]) for i in range(len(t) - n + 1)]
        grams.update(g)
        total += len(g)
    return len(grams) / total if total else None


def _think_part(text: str) -> str:
    """The reasoning of a generation (inside <think>..</think> when present; else all but the answer)."""
    m = re.search(r"<think>(.*?)(?:</think>|<answer>|$)", text or "", re.DOTALL | re.IGNORECASE)
    body = m.group(1) if m else (text or "")
    return re.sub(r"<answer>.*", "", body, flags=re.DOTALL | re.IGNORECASE)


def cue_metrics(items: Sequence[dict]) -> dict:
    """The metrics of the module docstring over generated texts.

    items: {"text": generated text, "cues": the clip's meta["cues"] or None (no recorded cues: cue accuracies
    skip it), "instruction": the instruction of its prompt or None, "answer": the parsed answer or None,
    "label_path": the label path's label for the clip or None}. A metric without a single eligible text is
    None with its count 0."""
    face_ok, voice_ok, words_ok, copied, agree = [], [], [], [], []
    for it in items:
        text = it.get("text") or ""
        body = _think_part(text)
        cues = it.get("cues") or {}
        if cues.get("face"):
            face_ok.append(face_cue_correct(body, cues["face"]))
        if cues.get("voice"):
            voice_ok.append(voice_cue_correct(body, cues["voice"]))
        if cues.get("words"):
            words_ok.append(words_correct(body, cues["words"]))
        if it.get("instruction"):
            copied.append(copies_instruction(text, it["instruction"]))
        if it.get("label_path") is not None:
            agree.append(it.get("answer") == it["label_path"])

    def share(xs):
        return (sum(xs) / len(xs)) if xs else None

    return {
        "n": len(items),
        "face_cue_accuracy": share(face_ok), "face_cue_n": len(face_ok),
        "voice_cue_accuracy": share(voice_ok), "voice_cue_n": len(voice_ok),
        "words_accuracy": share(words_ok), "words_n": len(words_ok),
        "instruction_copy_rate": share(copied), "instruction_n": len(copied),
        "distinct_2": distinct_n([_think_part(it.get("text") or "") for it in items], 2),
        "answer_label_agreement": share(agree), "agreement_n": len(agree),
    }
