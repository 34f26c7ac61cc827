"""The Stage-2 reasoning target of a synthetic clip: the cues the clip really carries, in varied sentences.

The paper's Stage 2 trains on descriptions that "explicitly encode emotional cues, contextual factors, and
cross-modal interactions" (MMEVerse-Train) and ends in the label (<think>..</think><answer>..</answer>).
Here the cues are the ones the generator rendered and recorded (meta["cues"]): the facial action units of
the apex frame, the vocal settings (pitch, intonation, rate, loudness, pauses) after augmentation, the
words, and on conflict clips which cue wins and why. Each cue has several phrasings (CUE_PHRASES: at
least 4 per cue value) and each sentence several frames, chosen by the clip's random generator, so a
model cannot lower its loss by memorising one template; every phrasing contains a phrase of the cue
vocabulary of training/cues.py, which is how generated texts are scored (tests check both directions).
The description always ends with the same clause, "... most likely <adjective>." (then the answer tag).
It never quotes an instruction of the prompt pools.
"""
from __future__ import annotations

import numpy as np

ADJECTIVE = {"neutral": "neutral", "happy": "happy", "sad": "sad", "angry": "angry", "worried": "worried",
             "surprise": "surprised"}
NOUN = {"neutral": "no particular emotion", "happy": "happiness", "sad": "sadness", "angry": "anger",
        "worried": "worry", "surprise": "surprise"}

# ---- facial cues: region key -> phrasings (each a clause; the AU codes are part of the phrasing) -------
FACE_PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "brows": {
        "lowered": ("the eyebrows are lowered and drawn together (AU4)", "the brows are knitted into a frown (AU4)",
                    "the brows are pulled down into a furrow (AU4)", "the lowered brows draw together (AU4)"),
        "inner_raised_lifted": (
            "the inner corners of the eyebrows are raised and the brows lifted (AU1+AU2)",
            "the inner brows rise and the eyebrows are lifted (AU1+AU2)",
            "the inner ends of the brows go up and the whole brows are lifted (AU1+AU2)",
            "the eyebrows are lifted, the inner brows most of all (AU1+AU2)"),
        "inner_raised": ("the inner corners of the eyebrows are pulled up (AU1)", "the inner brows are raised (AU1)",
                         "the inner ends of the brows tilt upwards (AU1)",
                         "only the inner eyebrows rise, giving a pleading look (AU1)"),
        "raised": ("the eyebrows are raised high (AU1+AU2)", "the brows shoot up (AU1+AU2)",
                   "the eyebrows are arched high (AU1+AU2)", "the brows go up high on the forehead (AU1+AU2)"),
        "rest": ("the eyebrows are relaxed", "the brows rest in their usual place", "the brows are level and calm",
                 "the eyebrows rest without tension"),
    },
    "eyes": {
        "wide": ("the eyes are wide open (AU5)", "the eyes widen (AU5)", "the person looks wide-eyed (AU5)",
                 "the upper lids are raised so the eyes stare wide (AU5)"),
        "cheek_raise": ("the eyes narrow as the cheeks rise (AU6)", "the cheeks lift and crinkle the eyes (AU6)",
                        "the raised cheeks push up under the eyes (AU6)", "the cheeks rise toward the eyes (AU6)"),
        "tightened": ("the eyelids are tightened and the eyes narrowed (AU7)", "the eyes are narrowed (AU7)",
                      "the lids tense into a squint (AU7)", "the eyelids tighten (AU7)"),
        "rest": ("the eyes are open normally", "the eyes look ordinary", "the eyes are calm",
                 "the eyes are at rest"),
    },
    "mouth": {
        "jaw_drop": ("the jaw drops and the mouth opens into an O shape (AU26)", "the mouth falls open (AU26)",
                     "the jaw falls and the mouth hangs open (AU26)", "the mouth is gaping in an O shape (AU26)"),
        "open_smile": ("the lip corners are pulled up into a broad, open smile (AU12+AU25)",
                       "a wide grin shows the teeth (AU12+AU25)", "the lips part in an open smile (AU12+AU25)",
                       "the person is smiling broadly with parted lips (AU12+AU25)"),
        "smile": ("the lip corners are pulled up into a smile (AU12)", "the mouth curves into a smile (AU12)",
                  "the lip corners turn up (AU12)", "the person is smiling (AU12)"),
        "slight_smile": ("there is a slight smile (AU12)", "the lip corners turn up a little (AU12)",
                         "a faint smile shows (AU12)", "the mouth hints at a smile (AU12)"),
        "corners_down": ("the lip corners are pulled down (AU15)", "the corners of the mouth turn down (AU15)",
                         "the mouth is downturned (AU15)", "the lip corners droop (AU15)"),
        "stretched": ("the lips are stretched sideways and slightly turned down (AU20)",
                      "the lips stretch sideways in a tense line (AU20)",
                      "the mouth is stretched sideways (AU20)", "the lips are stretched wide and tight (AU20)"),
        "pressed_down": ("the mouth is pressed and slightly turned down (AU15)",
                         "the pressed lips turn down at the corners (AU15)", "the mouth droops slightly (AU15)",
                         "the lips are pressed and downturned (AU15)"),
        "rest": ("the mouth is relaxed", "the mouth is at rest", "the lips are relaxed", "the mouth is neutral"),
    },
}
FACE_FRAMES = (
    "In the video, {a}, {b}, and {c}.",
    "Looking at the face, {a}; {b}; and {c}.",
    "The face shows the following: {a}, {b}, and {c}.",
    "On screen, {a}, while {b} and {c}.",
    "Visually, {a}, {b}, and {c}.",
)
NO_FACE = ("No face is visible in the video, so there is no facial expression to read.",
           "The video shows only the background and nobody's face, so facial cues are missing.",
           "Nobody is in view, so the face cannot be read.",
           "There is no face on screen, so no facial expression is available.")
NO_VIDEO = ("There is no video, so no facial cues are available.",
            "Only audio is given, so the face cannot be seen.",
            "Without any video, the facial expression is unknown.",
            "No picture comes with this clip, so there are no facial cues.")

# ---- vocal cues: dimension -> value -> clauses ---------------------------------------------------------
VOICE_PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "pitch": {
        "very high": ("the pitch is very high", "the voice is very high-pitched", "the speech jumps to a very high pitch",
                      "the pitch climbs very high"),
        "high": ("the pitch is high", "the voice is high-pitched", "the speech sits at a raised pitch",
                 "the speaker talks at a high pitch"),
        "ordinary": ("the pitch is ordinary", "the voice stays at a normal pitch", "the speech keeps its usual pitch",
                     "the speaker talks at an ordinary pitch"),
        "low": ("the pitch is low", "the voice is low-pitched", "the speech sits at a lowered pitch",
                "the speaker talks at a low pitch"),
    },
    "intonation": {
        "wide": ("the intonation swings widely", "the melody rises and falls in wide swings",
                 "the intonation is animated, with wide swings", "the pitch leaps up and down in wide swings"),
        "lively": ("the intonation is lively", "the melody of the speech is lively",
                   "the intonation is expressive and animated", "the sentence is spoken with lively intonation"),
        "even": ("the intonation is even", "the melody is level", "the intonation stays even",
                 "the sentence is spoken with an even intonation"),
        "narrow": ("the intonation is tense and narrow", "the melody stays in a narrow band",
                   "the pitch moves only in a narrow, strained range", "the intonation is narrow and tight"),
        "flat": ("the intonation is flat", "the melody is monotone", "the voice sounds flat and monotone",
                 "the pitch barely moves, a flat delivery"),
    },
    "rate": {
        "fast": ("the words come fast", "the speech is fast", "the speaker talks quickly", "the pace is rapid"),
        "normal": ("the pace is normal", "the speech moves at a steady pace", "the speaker talks at the usual pace",
                   "the speaking rate is normal"),
        "slow": ("the words come slowly", "the speech is slow", "the speaker talks slowly", "the pace is slow"),
    },
    "loudness": {
        "loud": ("the voice is loud and forceful", "the speech is loud", "the speaker talks loudly",
                 "the words are delivered with force"),
        "fairly loud": ("the voice is fairly loud", "the speech is somewhat loud", "the speaker talks rather loudly",
                        "the volume is raised"),
        "normal": ("the volume is normal", "the speech is at a moderate volume", "the speaker talks at a normal volume",
                   "the volume is unremarkable"),
        "quiet": ("the voice is quiet", "the speech is soft", "the speaker talks quietly", "the volume is low"),
    },
    "pauses": {
        "several": ("hesitant pauses break up the words", "the speech is halting, with several pauses",
                    "the speaker hesitates between words", "pauses interrupt the sentence more than once"),
        "one": ("there is one drawn-out pause", "a long pause breaks the sentence",
                "the speaker pauses once for a long moment", "a single heavy pause interrupts the words"),
    },
}
VOICE_FRAMES = (
    "In the audio, {cues}.",
    "Listening to the voice, {cues}.",
    "As for the sound, {cues}.",
    "The tone of voice: {cues}.",
    "In the speech, {cues}.",
)
NO_AUDIO = ("There is no audio, so neither the tone of voice nor any spoken words are available.",
            "The clip is silent, so there is no voice or speech to go on.",
            "No sound comes with the video, so tone and words are unknown.",
            "Without audio, the voice and the words cannot be judged.")

# ---- words ---------------------------------------------------------------------------------------------
WORDS_EMOTIONAL = ('The person says: "{s}", words that express {noun}.',
                   'The spoken words, "{s}", express {noun}.',
                   'What is said, "{s}", conveys {noun}.',
                   'The sentence "{s}" itself carries {noun}.')
WORDS_NEUTRAL = ('The person says: "{s}", a matter-of-fact sentence that carries no emotion by itself.',
                 'The words, "{s}", are a plain statement with no emotion in them.',
                 'What is said, "{s}", is neutral in content.',
                 'The sentence "{s}" is matter-of-fact and gives no emotional hint.')

# ---- conclusions (all end with "most likely {adj}.") -----------------------------------------------------
CONSISTENT = ("The {srcs} {both} point to {noun}, so the person is most likely {adj}.",
              "Since the {srcs} agree on {noun}, the person is most likely {adj}.",
              "Taken together, the {srcs} show {noun}; the person is most likely {adj}.",
              "With the {srcs} {both} signalling {noun}, the person is most likely {adj}.")
CONSISTENT_NEUTRAL = ("Face and voice are calm and show no marked emotion, so the person is most likely neutral.",
                      "Nothing in the face or the voice departs from a calm baseline, so the person is most likely neutral.",
                      "Neither the expression nor the tone carries a clear emotion; the person is most likely neutral.",
                      "The cues stay at rest throughout, so the person is most likely neutral.")
CONFLICT = (
    "The cues conflict: the face looks {f_adj} while the voice sounds {v_adj}, and the words do not settle it. "
    "The {winner} wins because {why}, so the person is most likely {adj}.",
    "Face and voice disagree: the expression is {f_adj}, the tone {v_adj}, and the neutral words do not decide. "
    "The {winner} is given more weight because {why}; the person is most likely {adj}.",
    "Here the modalities conflict, a {f_adj} face against a {v_adj} voice, with words that carry no emotion. "
    "Since {why}, the {winner} decides, and the person is most likely {adj}.",
    "The face suggests the person is {f_adj}, the voice that they are {v_adj}; the words stay neutral. "
    "Trusting the {winner}, because {why}, the person is most likely {adj}.",
)
WHY = {  # the winning cue is the stronger one (generate.py renders it at high intensity, the other weakly)
    "face": ("the facial expression is strong and clear while the voice only hints at {other}",
             "the face shows its emotion plainly, whereas the vocal cue to {other} is faint",
             "the expression is marked and sustained and the tone's {other} is weak",
             "the face is the stronger, more pronounced signal; the voice's {other} is slight"),
    "voice": ("the voice carries its emotion strongly while the face only hints at {other}",
              "the tone of voice is pronounced, whereas the facial cue to {other} is faint",
              "the vocal cues are marked and the face's {other} is weak",
              "the voice is the stronger, clearer signal; the face's {other} is slight"),
}
ONLY_FACE = ("Relying on the face alone, the person is most likely {adj}.",
             "With only the face to go on, the person is most likely {adj}.",
             "The expression by itself shows {noun}, so the person is most likely {adj}.",
             "From the facial cues alone, the person is most likely {adj}.")
ONLY_VOICE = ("Relying on {cue}, the person is most likely {adj}.",
              "With only {cue} to go on, the person is most likely {adj}.",
              "{Cue} by itself conveys {noun}, so the person is most likely {adj}.",
              "From {cue} alone, the person is most likely {adj}.")


def _pick(xs, rng: np.random.Generator):
    return xs[int(rng.integers(len(xs)))]


def _join(xs: list[str]) -> str:
    return xs[0] if len(xs) == 1 else ", ".join(xs[:-1]) + " and " + xs[-1]


def face_sentence(face_cues: list[dict], rng: np.random.Generator) -> str:
    a, b, c = (_pick(FACE_PHRASES[cue["region"]][cue["key"]], rng) for cue in face_cues)
    return _pick(FACE_FRAMES, rng).format(a=a, b=b, c=c)


def voice_sentence(voice_cues: dict, rng: np.random.Generator) -> str:
    """voice_cues: {dimension: value} (a dimension the voice does not carry is absent)."""
    clauses = [_pick(VOICE_PHRASES[dim][voice_cues[dim]], rng) for dim in VOICE_PHRASES if voice_cues.get(dim)]
    return _pick(VOICE_FRAMES, rng).format(cues=_join(clauses))


def describe(cues: dict, label: str, kind: str, rng: np.random.Generator) -> str:
    """The reasoning target of one clip from its recorded cues (generate.py's meta["cues"])."""
    parts = []
    face = cues.get("face")
    if face:
        parts.append(face_sentence(face, rng))
    elif kind == "no_face":
        parts.append(_pick(NO_FACE, rng))
    else:
        parts.append(_pick(NO_VIDEO, rng))
    voice = cues.get("voice")
    parts.append(voice_sentence(voice, rng) if voice else _pick(NO_AUDIO, rng))
    words = cues.get("words")
    text_emotion = cues.get("text_emotion")
    if words:
        if text_emotion and text_emotion != "neutral":
            parts.append(_pick(WORDS_EMOTIONAL, rng).format(s=words, noun=NOUN[text_emotion]))
        else:
            parts.append(_pick(WORDS_NEUTRAL, rng).format(s=words))
    adj, noun = ADJECTIVE[label], NOUN[label]
    if kind == "consistent":
        if label == "neutral":
            parts.append(_pick(CONSISTENT_NEUTRAL, rng))
        else:
            srcs = ["facial expression", "voice"] + (["words"] if text_emotion == label else [])
            parts.append(_pick(CONSISTENT, rng).format(srcs=_join(srcs), both="all" if len(srcs) > 2 else "both",
                                                       noun=noun, adj=adj))
    elif kind == "conflict":
        win = cues["winner"]
        f_adj, v_adj = ADJECTIVE[cues["face_emotion"]], ADJECTIVE[cues["voice_emotion"]]
        other = NOUN[cues["voice_emotion"] if win["modality"] == "face" else cues["face_emotion"]]
        why = _pick(WHY[win["modality"]], rng).format(other=other)
        winner = "facial expression" if win["modality"] == "face" else "voice"
        parts.append(_pick(CONFLICT, rng).format(f_adj=f_adj, v_adj=v_adj, winner=winner, why=why, adj=adj))
    elif kind == "no_audio":
        parts.append(_pick(ONLY_FACE, rng).format(adj=adj, noun=noun))
    else:
        cue = "the voice" + (" and the words" if text_emotion == label and label != "neutral" else "")
        t = _pick(ONLY_VOICE, rng)
        parts.append(t.format(cue=cue, Cue=cue[0].upper() + cue[1:], adj=adj, noun=noun))
    return " ".join(parts)
