"""Subtitles for synthetic clips: short sentences whose words carry an emotion, or carry none.

Short (3-7 words) so the spoken sentence fits the 2 s window even when spoken slowly. The emotional
banks mix explicit wording ("I am so angry") with implicit situations ("Somebody scratched my car"),
so a text model must read meaning, not spot one keyword. Neutral sentences are emotion-free
statements; they are used for neutral clips and for clips whose emotion lives only in face and voice.
"""
from __future__ import annotations

import numpy as np

EMOTIONAL: dict[str, tuple[str, ...]] = {
    "happy": (
        "I am so happy today.",
        "This is the best day ever.",
        "We won the final!",
        "I love this so much.",
        "That is wonderful news.",
        "I passed my exam!",
        "You made my whole week.",
        "What a lovely surprise party.",
        "I feel really great.",
        "My sister had her baby!",
        "We are going on holiday!",
        "Thank you, this is perfect.",
    ),
    "sad": (
        "I miss him so much.",
        "Nobody came to my party.",
        "I feel so alone.",
        "My old dog died yesterday.",
        "I lost my job today.",
        "Everything feels hopeless now.",
        "She never called me back.",
        "I really wanted that.",
        "We had to say goodbye.",
        "I cannot stop crying.",
        "It is all my fault.",
        "Our house is gone.",
    ),
    "angry": (
        "I am so angry right now.",
        "Get out of my room!",
        "You lied to me again!",
        "Somebody scratched my car.",
        "Stop touching my things!",
        "This is completely unacceptable.",
        "How dare you say that!",
        "I told you a hundred times!",
        "They cheated us again.",
        "Do not ever do that again!",
        "You broke my phone!",
        "I am sick of this!",
    ),
    "worried": (
        "What if something goes wrong?",
        "I hope she is okay.",
        "I am scared about tomorrow.",
        "He should be home by now.",
        "I do not think I can.",
        "The results come out tomorrow.",
        "What if they find out?",
        "I am nervous about the test.",
        "My mother is in hospital.",
        "I might lose everything.",
        "Are you sure it is safe?",
        "I cannot find my son.",
    ),
    "surprise": (
        "Wow, I did not expect that!",
        "Wait, you are here?",
        "No way, really?",
        "You got married?",
        "I cannot believe my eyes!",
        "Since when do you dance?",
        "Oh, what is this?",
        "He said yes?",
        "That came out of nowhere!",
        "You did all this yourself?",
        "Is that really you?",
        "What a shock!",
    ),
}

NEUTRAL: tuple[str, ...] = (
    "The meeting starts at nine.",
    "I put the keys on the table.",
    "The train leaves from platform two.",
    "We need more paper for the printer.",
    "The shop closes at six.",
    "Please pass me the salt.",
    "It is about ten minutes away.",
    "I will send the file later.",
    "The report has four sections.",
    "My bag is in the car.",
    "The bus comes every hour.",
    "We moved the desk yesterday.",
    "The window faces the street.",
    "Turn left after the bank.",
    "The box is on the shelf.",
    "I usually walk to work.",
    "The number is on the card.",
    "Lunch is at half past twelve.",
    "The door is painted blue.",
    "He works on the third floor.",
    "The form needs a signature.",
    "Water boils at one hundred degrees.",
    "The library opens on Monday.",
    "She takes the early train.",
)

TEXT_EMOTIONS = ("neutral",) + tuple(EMOTIONAL)


def sentence(emotion: str, rng: np.random.Generator) -> str:
    """A sentence whose words express `emotion` ('neutral' gives an emotion-free sentence)."""
    if emotion == "neutral":
        bank = NEUTRAL
    else:
        try:
            bank = EMOTIONAL[emotion]
        except KeyError:
            raise KeyError(f"no sentence bank for emotion {emotion!r}; have {TEXT_EMOTIONS}") from None
    return bank[int(rng.integers(len(bank)))]


def short_sentence(emotion: str, rng: np.random.Generator, draws: int = 6) -> str:
    """The shortest (in characters) of `draws` sentences of `emotion`: for slow or pausing voices (sad,
    worried), whose long sentences did not fit the 2 s window at their own rate (measured on 720 clips: 77 of 91
    sad and 77 of 82 worried voices had to be re-spoken faster, which turned "slow" into "normal" or "fast")."""
    cands = [sentence(emotion, rng) for _ in range(draws)]
    return min(cands, key=len)
