"""The multimodal prompt (paper 4.1), task identifiers, instruction pools (appendix Boxes I/II), label sets.

Layout of one prompt (chat-style models; LLaMA-2-chat's [INST] markers):

    <bos>[INST] <Vid>{fusion}{image}{video}{audio}</Vid> The person in the video says: {text}. [{task}] {instruction} [/INST]

``{fusion}`` .. ``{audio}`` are not text: they are the modal adapter's output vectors inserted directly
into the LLM's input embedding sequence (64 fusion, h*w image, 64 video, 64 audio tokens). Everything
else is tokenised and embedded by the LLM. The template is data (``PromptTemplate``) so another chat
format can be used with the same code. When the transcript is unknown (None) the "says" sentence is left
out; a modality whose input is missing keeps its token slots (fixed layout) with zero features and a
zero attention mask.

Transcripts are untrusted text (speech recognition of whoever talks to the robot): ``sanitize_transcript``
removes anything resembling the template's control markers ([INST], [/INST], <Vid>, </Vid>, task
identifiers, <think>/<answer> tags, tokenizer special tokens such as <s>, </s>, <bos>, <|...|>),
drops control characters, collapses whitespace and caps the length. Text segments are also tokenised with
``split_special_tokens=True`` so a literal "<s>" can never become a special token. The label path is
unaffected by any injection anyway: it scores only the given label set.
"""
from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass

TASKS = ("emotion", "reason", "think")

LABEL_SETS: dict[str, list[str]] = {
    "MER6": ["neutral", "happy", "sad", "angry", "worried", "surprise"],
    "MELD7": ["neutral", "joy", "sadness", "anger", "fear", "disgust", "surprise"],
    "SENTIMENT3": ["negative", "neutral", "positive"],
    "IEMOCAP4": ["neutral", "happy", "sad", "angry"],
}

STAR = "{labels}"  # the paper's ★: the label list of the dataset

# Box I: emotion alignment (perception stage, task "emotion").
BOX_I = [
    "Please determine which emotion label in the video represents: {labels}.",
    "Identify the displayed emotion in the video: is it {labels}?",
    "Determine the emotional state shown in the video, choosing from {labels}.",
    "Please ascertain the specific emotion portrayed in the video, whether it be {labels}.",
    "Assess and label the emotion evident in the video: could it be {labels}?",
    "Given the input video and audio, your task is to identify the emotion expressed by the person or "
    "people in the video. Your output must be only one emotion label strictly chosen from the following "
    "list: {labels}.",
    "Please classify the observed emotional state in the video using one of the following: {labels}",
    "Based on the visual and audio content of the video, identify the emotion expressed by the person. "
    "Choose one label from: {labels}",
    "Analyze the video and assign one of the following emotion labels to the person depicted: {labels}",
    "After watching the video, decide which of the following emotions is being expressed: {labels}",
]

# Box II: joint recognition and reasoning (cognition stage). The first two ask for free reasoning
# (task "reason"), the last three for the <think>...</think><answer>...</answer> format (task "think").
BOX_II = [
    "The possible emotions are: {labels}. Based on what you see and hear in the video, including facial "
    "expressions, gestures, vocal tone, and spoken words, identify the emotion the person is expressing "
    "and explain which clues led to your conclusion.",
    "Choose one emotion from the following list: {labels}. Watch the video and use both visual signals, "
    "such as facial expressions and body movements, and auditory signals, such as tone and intonation, to "
    "infer the person's emotional state. Please describe your reasoning process clearly.",
    "You are given a video containing both visual and audio information. The possible emotion categories "
    "are: {labels}. First, analyze the video by reasoning through facial expressions, gestures, tone of "
    "voice, and spoken content. Write your reasoning inside the <think> and </think> tags. Then select the "
    "most appropriate emotion and place it inside the <answer> and </answer> tags.",
    "Watch the video and consider all visual and auditory clues, including facial expressions, body "
    "movements, voice pitch, tempo, and speech content. The emotion must be one of: {labels}. Use <think> "
    "to explain your reasoning step by step, and then provide the final emotion label in <answer>.",
    "Analyze the multimodal signals in the video. The goal is to infer the person's emotional state from "
    "the following options: {labels}. In the <think> section, describe how the visual and audio evidence "
    "supports your reasoning. Then output the most likely emotion label in <answer>.",
]

INSTRUCTION_POOLS = {"emotion": BOX_I, "reason": BOX_II[:2], "think": BOX_II[2:]}


def instruction(task: str, labels: list[str], index: int | None = 0, rng: random.Random | None = None) -> str:
    """An instruction of ``task``'s pool with the label list substituted for the star.

    index=None samples one with ``rng`` (training); the default index 0 is the deterministic choice at
    inference.
    """
    if task not in INSTRUCTION_POOLS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    pool = INSTRUCTION_POOLS[task]
    if index is None:
        index = (rng or random).randrange(len(pool))
    return pool[index].replace(STAR, ", ".join(labels))


def format_think_target(reasoning: str, label: str) -> str:
    """Training target of the "think" task."""
    return f"<think>{reasoning.strip()}</think><answer>{label}</answer>"


_ANSWER_RE = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.IGNORECASE | re.DOTALL)


def parse_answer(text: str, labels: list[str]) -> str | None:
    """The label inside the last <answer>..</answer> (or an unterminated final <answer>), only if it is in
    ``labels`` (case-insensitive; returns the label as spelled in ``labels``). Without answer tags, a text
    that is exactly a label counts. Anything else -> None."""
    if not text:
        return None
    found = _ANSWER_RE.findall(text)
    candidate = found[-1] if found else text
    norm = _norm(candidate)
    by_norm = {_norm(lab): lab for lab in labels}
    if norm in by_norm:
        return by_norm[norm]
    if not found:
        return None
    # "<answer>The emotion is happy.</answer>": accept when exactly one label occurs as a whole word.
    hits = [lab for lab in labels if re.search(rf"(?<!\w){re.escape(_norm(lab))}(?!\w)", norm)]
    return hits[0] if len(hits) == 1 else None


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s.strip().strip(".!?,;:\"'").lower())


# --- untrusted transcript -------------------------------------------------------------------------
_CONTROL_PATTERNS = [
    r"\[\s*/?\s*inst\s*\]",  # [INST] [/INST]
    r"<\s*/?\s*vid\s*>",  # <Vid> </Vid>
    r"\[\s*/?\s*vid\s*\]",
    r"\[\s*(?:%s)\s*\]" % "|".join(TASKS),  # [emotion] [reason] [think]
    r"<\s*/?\s*(?:think|answer)\s*>",
    r"<<\s*/?\s*sys\s*>>",
    r"<\|[^|<>]{0,40}\|>",  # <|endoftext|>, <|im_start|> ...
    r"<\s*/?\s*(?:s|bos|eos|pad|unk|mask|start_of_turn|end_of_turn|start_of_image|end_of_image)\s*>",
]
_CONTROL_RE = re.compile("|".join(_CONTROL_PATTERNS), re.IGNORECASE)


def sanitize_transcript(text: str | None, max_chars: int = 500) -> str | None:
    """Make a transcript safe to splice into the prompt (see module docstring). None stays None.

    Removal repeats until nothing changes, so nested tricks like "[[INST]/INST]" also disappear. The
    result is capped to ``max_chars`` characters (cut at a word boundary when possible, marked with "…").
    """
    if text is None:
        return None
    s = unicodedata.normalize("NFKC", str(text))
    s = "".join(ch if (ch.isprintable() or ch == " ") else " " for ch in s)
    while True:
        t = _CONTROL_RE.sub(" ", s)
        if t == s:
            break
        s = t
    s = re.sub(r"\s+", " ", s).strip()
    if len(s) > max_chars:
        cut = s[:max_chars]
        if " " in cut[max_chars // 2:]:
            cut = cut[:cut.rindex(" ")]
        s = cut.rstrip() + "…"
    return s


# --- template -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PromptTemplate:
    """Text pieces around the modality segments; streams are inserted in ``stream_order``."""

    open: str = "[INST] <Vid>"
    close_vid: str = "</Vid>"
    says: str = " The person in the video says: {text}."
    task: str = " [{task}] {instruction} [/INST]"
    stream_order: tuple = ("fusion", "image", "video", "audio")


DEFAULT_TEMPLATE = PromptTemplate()


def template_markers(template: PromptTemplate = DEFAULT_TEMPLATE) -> tuple[str, ...]:
    """The control strings of a prompt: the template's tags ([INST], </Vid>, ...), every task id ([think] ...)
    and the answer-format tags. Generated text may never contain them (EmotionLLM.generate's forbidden)."""
    text = " ".join((template.open, template.close_vid, template.says, template.task))
    found = re.findall(r"\[/?[A-Za-z_]+\]|</?[A-Za-z_]+>", text.replace("{task}", ""))
    found += [f"[{t}]" for t in TASKS] + ["<think>", "</think>", "<answer>", "</answer>", "<s>", "</s>"]
    return tuple(dict.fromkeys(found))

# The strings the released Emotion-LLaMAv2 checkpoints were trained with (github ooochen-30/Emotion-LLaMA-v2,
# minigpt4/datasets/datasets/mer_datasets.py (stage 1) and mer_datasets_ft.py (stage 2), wrapped by the
# train configs' chat template "[INST] {} [/INST]"): "in video" (no "the"), the doubled spaces before the
# task and before [/INST], and stage 2 without the period after the subtitle, exactly as there. The LLM
# (LLaMA-2-7b-chat) then gets one BOS; its pad token is "$$" and generation stops at EOS (id 2).
OFFICIAL_STAGE1_TEMPLATE = PromptTemplate(says=" The person in video says: {text}. ",
                                          task=" [{task}] {instruction}  [/INST]")
OFFICIAL_STAGE2_TEMPLATE = PromptTemplate(says=" The person in video says: {text} ",
                                          task=" [{task}] {instruction}  [/INST]")
TEMPLATES = {"default": DEFAULT_TEMPLATE, "official-stage1": OFFICIAL_STAGE1_TEMPLATE,
             "official-stage2": OFFICIAL_STAGE2_TEMPLATE}


def prompt_segments(transcript: str | None, task: str, instruction_text: str,
                    template: PromptTemplate = DEFAULT_TEMPLATE) -> list[tuple[str, str]]:
    """Ordered segments: ("text", str) to tokenise, ("stream", name) for adapter outputs.

    The transcript must already be sanitised.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    segs: list[tuple[str, str]] = [("text", template.open)]
    segs += [("stream", name) for name in template.stream_order]
    tail = template.close_vid
    if transcript is not None:
        tail += template.says.format(text=transcript)
    tail += template.task.format(task=task, instruction=instruction_text)
    segs.append(("text", tail))
    return segs
