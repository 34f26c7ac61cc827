"""Validation of transcript text before it is buffered (topic transcripts and ASR output alike)."""
from __future__ import annotations

import unicodedata

from emotion_ros.ingest.errors import InputError


def clean_transcript(text, max_chars: int = 4000) -> tuple[str, int]:
    """Validated transcript and the number of control characters replaced by spaces.

    Drops (InputError): transcript_bad_type, transcript_invalid_utf8 (bytes), transcript_invalid_unicode
    (lone surrogates: not encodable), transcript_too_long, transcript_empty (after cleaning).
    Control characters (Unicode Cc, incl. tab/newline/ESC) become spaces; runs of whitespace collapse.
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError("transcript_invalid_utf8", f"transcript bytes are not UTF-8: {exc}") from None
    if not isinstance(text, str):
        raise InputError("transcript_bad_type", f"transcript must be str, got {type(text).__name__}")
    if len(text) > max_chars:
        raise InputError("transcript_too_long", f"{len(text)} characters > cap {max_chars}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError("transcript_invalid_unicode", f"transcript is not valid Unicode: {exc.reason}") from None
    n_ctrl = 0
    chars = []
    for ch in text:
        if unicodedata.category(ch) == "Cc":
            n_ctrl += 1
            chars.append(" ")
        else:
            chars.append(ch)
    cleaned = " ".join("".join(chars).split())
    if not cleaned:
        raise InputError("transcript_empty", "transcript is empty or whitespace/control characters only")
    return cleaned, n_ctrl
