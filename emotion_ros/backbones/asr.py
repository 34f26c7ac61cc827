"""Speech-to-text of one window with faster-whisper on the packaged Whisper-base weights.

faster-whisper (CTranslate2) is the reference runtime for these weights and decodes much faster than
transformers on the CPU. It is pointed at the cache directory assembled by
``whisper_ct2.whisper_ct2_dir()`` (joined model.bin + the packaged config.json, tokenizer.json and
vocabulary.txt), so it never touches the network. ``preprocessor_config.json`` is not shipped; faster-whisper
then uses its defaults, which are Whisper-base's (80 mel bins, 16 kHz, hop 160, 30 s chunks).

Reusing our encoder's states for decoding works two ways:
- ``share_encoder``/``encoder``: faster-whisper calls ``encode()`` on 30 s-padded features; our transformers
  ``WhisperEncoder`` answers instead of CTranslate2's encoder (same words; see tests/test_nano_whisper.py).
- ``transcribe_states(states)``: decode states the project already computed (e.g. the AudioEncoder's
  real-length states of a window), so ASR costs only the decoder. CTranslate2's decoder accepts any number
  of encoder positions, but Whisper was trained on 30 s contexts: real-length states give slightly worse
  words than padded ones (one espeak-ng sentence: "very warm" -> "merry-war"), padded states are exact.
"""

from __future__ import annotations

import os
import re
import unicodedata

import numpy as np

from emotion_ros.ingest.errors import InputError
from emotion_ros.backbones import whisper_ct2



def _check_audio(audio) -> np.ndarray:
    arr = np.asarray(audio)
    if arr.ndim != 1:
        raise InputError("audio_not_mono", f"expected 1-D mono audio, got shape {arr.shape}")
    if arr.size == 0:
        raise InputError("audio_empty", "no audio samples")
    if not np.issubdtype(arr.dtype, np.floating):
        raise InputError("audio_not_float", f"expected float32 samples in [-1, 1], got {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise InputError("audio_not_finite", "audio contains NaN or inf")
    return arr


class Transcriber:
    """Greedy Whisper-base transcription of a 16 kHz mono float32 window.

    language: ISO code ("en"), or None to let Whisper detect it (an extra decoder pass).
    compute_type: CTranslate2 compute type; "int8" is ~2x faster than "float32" on CPU with the same
    words on clean speech. share_encoder: run our transformers encoder instead of CTranslate2's.
    """

    def __init__(self, language: str | None = "en", compute_type: str = "int8", beam_size: int = 1,
                 cpu_threads: int = 0, share_encoder: bool = False, encoder=None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from faster_whisper import WhisperModel

        model_dir = str(whisper_ct2.whisper_ct2_dir())
        self.language = language
        self.beam_size = beam_size
        self._model = WhisperModel(model_dir, device="cpu", compute_type=compute_type,
                                   cpu_threads=cpu_threads)
        if share_encoder or encoder is not None:
            self._use_torch_encoder(encoder if encoder is not None else whisper_ct2.load_whisper_encoder())

    def _use_torch_encoder(self, encoder) -> None:
        import ctranslate2
        import torch

        model = self._model

        def encode(features: np.ndarray):
            if features.ndim == 2:
                features = features[None]
            with torch.inference_mode():
                states = encoder(torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)))
            return ctranslate2.StorageView.from_array(
                np.ascontiguousarray(states.last_hidden_state.numpy()))

        model.encode = encode  # instance attribute: faster-whisper calls self.encode(segment)
        self.encoder = encoder

    def transcribe_states(self, states, max_length: int = 224) -> str:
        """Greedy text from Whisper encoder states [T, 512] or [1, T, 512] (T <= 1500), decoder only."""
        import ctranslate2
        from faster_whisper.tokenizer import Tokenizer

        arr = np.asarray(states.detach().cpu() if hasattr(states, "detach") else states, dtype=np.float32)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3 or arr.shape[0] != 1 or arr.shape[2] != 512 or not 1 <= arr.shape[1] <= 1500:
            raise InputError("bad_encoder_states", f"expected [1, T<=1500, 512] states, got {arr.shape}")
        view = ctranslate2.StorageView.from_array(np.ascontiguousarray(arr))
        language = self.language
        if language is None:
            language = self._model.model.detect_language(view)[0][0][0].strip("<|>")
        tok = Tokenizer(self._model.hf_tokenizer, True, task="transcribe", language=language)
        prompt = list(tok.sot_sequence) + [tok.no_timestamps]
        result = self._model.model.generate(view, [prompt], beam_size=self.beam_size, max_length=max_length,
                                            suppress_blank=True, suppress_tokens=[-1])[0]
        return tok.decode([t for t in result.sequences_ids[0] if t < tok.eot]).strip()

    def transcribe(self, audio: np.ndarray) -> str:
        """Text of the window (stripped; "" for silence). Raises InputError on malformed audio."""
        arr = _check_audio(audio)
        segments, _info = self._model.transcribe(
            arr, language=self.language, beam_size=self.beam_size, best_of=1, temperature=0.0,
            condition_on_previous_text=False, without_timestamps=True, vad_filter=False,
        )
        return " ".join(seg.text.strip() for seg in segments).strip()


def normalise_text(text: str) -> list[str]:
    """Lower-case words without punctuation, for word error rates."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[^\w\s']", " ", text)
    return text.split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Levenshtein word distance / reference length on normalised words."""
    ref, hyp = normalise_text(reference), normalise_text(hypothesis)
    if not ref:
        return float(bool(hyp))
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1] / len(ref)
