"""Optimised inference engine: the API of ``emotion_ros.inference.engine.InferenceEngine``, less work per window.

Speed-ups (each a switch in ``FastOptions`` so the benchmark can measure it; ``FastOptions.naive()`` turns
all of them off and is the reference "naive per-window pipeline"):

- ``frame_cache``: per-frame image-encoder cache across overlapping windows (runtime.frame_cache). With
  window 2 s / hop 0.5 s, 12 of a window's 16 sampled frames were already encoded for the previous window.
- ``audio_real_length``: Whisper on the window's real length (off: the classic 30 s padded input, 15x the
  encoder work for a 2 s window).
- ``prefix_kv``: the prompt is split as [constant text | window part (the four modality streams) | task tail].
  The constant text's key/value cache is computed once per engine and copied per window; the window
  part's cache is computed once per window and shared by the label path and the reasoning path (the
  reasoning prompt differs only in the tail), so reasoning neither re-runs the encoders nor re-reads the
  multimodal tokens.
- ``label_one_pass``: every label of the set is scored in ONE forward on top of the prompt's cache: the
  label tokens are packed into one row with a tree attention mask (each label's tokens see the prompt and
  their own earlier tokens, and share position ids), instead of copying the cache once per label. Off (and
  with prefix_kv off): one full forward of prompt + label per label, the textbook way.
- reasoning never delays the label: the model lock is taken per generated token, and a pending label pass
  makes the reasoning thread wait before its next token (label priority).

Scores are the same quantity as ``EmotionLLM.score_labels`` (sum of log-probs of the label tokens and the
final EOS, softmax over the set); tests/test_runtime_parity.py checks labels and probabilities against
the reference engine on the same windows.
"""
from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from emotion_ros.inference.engine import EmotionResult, EngineConfig, InferenceEngine
from emotion_ros.model.llm import TextDeltas, penalise_repeats
from emotion_ros.model.prompt import instruction as make_instruction
from emotion_ros.model.prompt import prompt_segments, sanitize_transcript
from emotion_ros.ingest.window import Window

from emotion_ros.inference.backends import Backend, TorchBackend
from emotion_ros.inference.frame_cache import CachedVisionEncoder, FrameEmbeddingCache
from emotion_ros.inference.precision import set_llm_precision


@dataclass
class FastOptions:
    frame_cache: bool = True
    audio_real_length: bool = True
    prefix_kv: bool = True
    label_one_pass: bool = True
    share_encoding: bool = True  # reasoning reuses the label path's encoding + window KV of the same window
    label_priority: bool = True
    frame_cache_size: int = 256
    window_states: int = 4  # windows whose prefix KV is kept for a later reasoning request
    llm_precision: str = "float32"  # float32 | bfloat16 | float16 | mixed (runtime.precision; changes the model in place)

    @classmethod
    def naive(cls) -> "FastOptions":
        return cls(frame_cache=False, audio_real_length=False, prefix_kv=False, label_one_pass=False,
                   share_encoding=False, label_priority=False)


@dataclass
class _WindowState:
    """What the label path leaves behind for the reasoning path of the same window."""

    streams: dict  # name -> (embeds [1,N,H], mask [1,N])
    text: str | None
    cache: object | None = None  # KV cache of [constant | window part] (prefix_kv)
    length: int = 0
    mask: torch.Tensor | None = None  # [1, length] attention mask of that prefix


class FastInferenceEngine(InferenceEngine):
    """Drop-in replacement of InferenceEngine (process / stream_reasoning) with switchable speed-ups."""

    def __init__(self, model, config: EngineConfig, transcriber=None, model_id: str | None = None,
                 backend: Backend | None = None, options: FastOptions | None = None):
        super().__init__(model, config, transcriber=transcriber, model_id=model_id)
        self.options = options or FastOptions()
        self.backend = backend or TorchBackend(model)
        self.frame_cache = FrameEmbeddingCache(self.options.frame_cache_size) if self.options.frame_cache else None
        self.vision = CachedVisionEncoder(model.vision_encoder, self.frame_cache, self.backend.vision_backbone)
        self.llm = model.llm
        self.precision = set_llm_precision(self.llm, self.options.llm_precision)
        self._const_kv: dict = {}
        self._states: OrderedDict = OrderedDict()
        self._label_waiting = 0
        self._waiting_lock = threading.Lock()

    # -- encoders -------------------------------------------------------------------------------------
    @torch.no_grad()
    def _audio(self, audio) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.model.audio_encoder
        dev = self.model.device
        if audio is None or np.asarray(audio).size == 0:
            return (torch.zeros(1, enc.num_tokens, enc.dim, device=dev),
                    torch.zeros(1, enc.num_tokens, device=dev))
        mel = enc.log_mel(audio)
        n_real = mel.shape[-1] // 2
        if not self.options.audio_real_length:
            mel = enc.log_mel(audio, padded=True)
        states = self.backend.audio_states(mel.unsqueeze(0).to(dev))[0, :n_real]
        tokens, mask = enc.pool(states)
        return tokens.unsqueeze(0), mask.unsqueeze(0)

    @torch.no_grad()
    def _streams(self, window: Window, stage_ms: dict) -> dict:
        t = time.perf_counter()
        a_tok, a_mask = self._audio(window.audio)
        stage_ms["audio_enc"] = (time.perf_counter() - t) * 1e3
        t = time.perf_counter()
        v = self.vision([window])
        stage_ms["vision_enc"] = (time.perf_counter() - t) * 1e3
        stage_ms["frames_encoded"] = float(self.vision.last_computed)
        t = time.perf_counter()
        proj = self.backend.fusion_adapter(a_tok, v.temporal, v.global_cls, v.global_patches)
        any_audio = (a_mask.sum(-1) > 0).float()
        present = torch.clamp(any_audio + v.global_mask + v.temporal_mask, max=1.0)
        T = proj["fusion"].shape[1]
        masks = {"fusion": present[:, None].expand(-1, T),
                 "image": v.global_mask[:, None].expand(-1, proj["image"].shape[1]),
                 "video": v.temporal_mask[:, None].expand(-1, proj["video"].shape[1]),
                 "audio": a_mask}
        out = {k: (proj[k] * masks[k].unsqueeze(-1).to(proj[k].dtype), masks[k]) for k in proj}
        stage_ms["fusion_adapter"] = (time.perf_counter() - t) * 1e3
        return out

    # -- prompt ---------------------------------------------------------------------------------------
    def _pieces(self, streams: dict, text: str | None, task: str):
        """(const ids, window part (embeds [N,H], mask [N]), tail ids) of the prompt of ``task``."""
        labels = self.labels
        segs = prompt_segments(text, task, make_instruction(task, labels), self.model.template)
        first = next(i for i, (k, _) in enumerate(segs) if k == "stream")
        last = max(i for i, (k, _) in enumerate(segs) if k == "stream")
        bos = [] if self.llm.bos_id is None else [self.llm.bos_id]
        const_ids: list[int] = []
        seen_text = False
        for kind, value in segs[:first]:
            const_ids += (bos if not seen_text else []) + self.llm.text_ids(value)
            seen_text = True
        embs, masks = [], []
        for kind, value in segs[first:last + 1]:
            if kind == "stream":
                e, m = streams[value]
                embs.append(e[0])
                masks.append(m[0])
            else:
                ids = (bos if not seen_text else []) + self.llm.text_ids(value)
                seen_text = True
                embs.append(self.llm.embed_ids(ids))
                masks.append(torch.ones(len(ids), device=self.llm.device))
        tail: list[int] = []
        for kind, value in segs[last + 1:]:
            tail += (bos if not seen_text else []) + self.llm.text_ids(value)
            seen_text = True
        return const_ids, (torch.cat(embs), torch.cat(masks)), tail

    # -- LLM primitives -------------------------------------------------------------------------------
    def _fwd(self, embeds, mask, start: int, cache=None, keep: int = 1):
        n = embeds.shape[1]
        pos = torch.arange(start, start + n, device=self.llm.device).unsqueeze(0)
        return self.llm.model(inputs_embeds=embeds.to(self.llm.dtype), attention_mask=mask, position_ids=pos,
                              past_key_values=cache, use_cache=True, logits_to_keep=keep)

    def _causal_lm(self):
        """The HF causal LM under any peft wrapper."""
        m = self.llm.model
        return m.get_base_model() if hasattr(m, "get_base_model") else m

    def _body(self):
        """The decoder stack without the LM head (cache-only passes need no logits: the head is the largest
        matmul of a small LLM and would be computed for nothing)."""
        return getattr(self._causal_lm(), "model", None)

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """LM head on hidden rows [n, H] -> float32 logits [n, V]. Called on a contiguous 2-D tensor: the
        bfloat16 CPU matmul is ~30x slower on the strided [1, k, H] view the HF head would slice."""
        m = self._causal_lm()
        logits = F.linear(hidden.contiguous(), m.get_output_embeddings().weight)
        cap = getattr(getattr(m, "config", None), "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits.float()

    def _prompt_pass(self, embeds, mask, pos, cache, keep: int):
        """A multi-token pass on ``cache``: (logits of the last ``keep`` positions [keep, V], new cache)."""
        body = self._body()
        if body is None:
            out = self.llm.model(inputs_embeds=embeds.to(self.llm.dtype), attention_mask=mask, position_ids=pos,
                                 past_key_values=cache, use_cache=True, logits_to_keep=keep)
            return out.logits[0].float(), out.past_key_values
        out = body(inputs_embeds=embeds.to(self.llm.dtype), attention_mask=mask, position_ids=pos,
                   past_key_values=cache, use_cache=True)
        return self._logits(out.last_hidden_state[0, -keep:]), out.past_key_values

    def _step(self, token: int, mask, position: int, cache):
        """One decode step (the int8 copy under ``mixed``): (logits [V], cache)."""
        emb = self.llm.embed_ids([[token]]).to(self.precision.step_dtype)
        out = self.precision.step_model(inputs_embeds=emb, attention_mask=mask,
                                        position_ids=torch.tensor([[position]], device=self.llm.device),
                                        past_key_values=cache, use_cache=True, logits_to_keep=1)
        return out.logits[0, -1].float(), out.past_key_values

    def _fill(self, embeds, mask, start: int, cache=None):
        """Extend ``cache`` (or a new one) with ``embeds``; no logits."""
        body = self._body()
        if body is None:
            return self._fwd(embeds, mask, start, cache=cache).past_key_values
        n = embeds.shape[1]
        pos = torch.arange(start, start + n, device=self.llm.device).unsqueeze(0)
        return body(inputs_embeds=embeds.to(self.llm.dtype), attention_mask=mask, position_ids=pos,
                    past_key_values=cache, use_cache=True).past_key_values

    def _const_cache(self, const_ids: list[int]):
        """KV cache of the constant prompt head, computed once (a copy is handed out per use)."""
        key = tuple(const_ids)
        if key not in self._const_kv:
            emb = self.llm.embed_ids(const_ids).unsqueeze(0)
            mask = torch.ones(1, len(const_ids), dtype=torch.long, device=self.llm.device)
            self._const_kv[key] = self._fill(emb, mask, 0)
        return copy.deepcopy(self._const_kv[key])

    def _prefix(self, const_ids, window_part) -> tuple[object, int, torch.Tensor]:
        """KV cache + length + mask of [const | window part]."""
        we, wm = window_part
        dev = self.llm.device
        mask = torch.cat([torch.ones(len(const_ids), device=dev), wm.to(dev)]).long().unsqueeze(0)
        if self.options.prefix_kv:
            cache = self._fill(we.unsqueeze(0), mask, len(const_ids), cache=self._const_cache(const_ids))
            return cache, mask.shape[1], mask
        emb = torch.cat([self.llm.embed_ids(const_ids), we.to(self.llm.dtype)]).unsqueeze(0)
        return self._fill(emb, mask, 0), mask.shape[1], mask

    def _sliding_limit(self) -> int | None:
        cfg = getattr(self.llm.model, "config", None)
        cfg = getattr(cfg, "text_config", cfg)
        types = getattr(cfg, "layer_types", None) or []
        if getattr(cfg, "sliding_window", None) and any("sliding" in t for t in types):
            return int(cfg.sliding_window)
        return None

    @torch.no_grad()
    def _score(self, const_ids, window_part, tail_ids, state: _WindowState | None) -> torch.Tensor:
        labels = self.labels
        llm = self.llm
        dev = llm.device
        seqs = [llm.target_ids(lab) for lab in labels]
        if not self.options.prefix_kv and not self.options.label_one_pass:
            return self._score_naive(const_ids, window_part, tail_ids, seqs)
        cache, B, mask = self._prefix(const_ids, window_part)
        if state is not None:
            state.cache, state.length, state.mask = copy.deepcopy(cache), B, mask
        inputs = [s[:-1] for s in seqs]
        N = sum(len(x) for x in inputs)
        limit = self._sliding_limit()
        P = B + len(tail_ids)
        if self.options.label_one_pass and tail_ids and (limit is None or P + N < limit):
            return torch.softmax(self._tree_pass(cache, mask, tail_ids, seqs, inputs, B), 0)
        tmask = torch.ones(1, len(tail_ids), dtype=torch.long, device=dev)
        mask = torch.cat([mask, tmask], dim=1)
        pos = torch.arange(B, P, device=dev).unsqueeze(0)
        logits, cache = self._prompt_pass(llm.embed_ids(tail_ids).unsqueeze(0), mask, pos, cache, 1)
        first = F.log_softmax(logits[0], dim=-1)
        score = torch.stack([first[s[0]] for s in seqs])
        if N == 0:
            return torch.softmax(score, 0)
        return torch.softmax(score + self._repeat_pass(cache, mask, seqs, P), 0)

    def _tree_pass(self, cache, pmask, tail_ids, seqs, inputs, B) -> torch.Tensor:
        """Label scores from ONE forward of [task tail | every label's tokens] on the prefix cache.

        The tail is causal; the labels' tokens are packed after it with a tree attention mask: each label
        token sees the prefix, the whole tail and its own label's earlier tokens, and the label tokens of
        all labels share position ids P, P+1, ... (P = prompt length). Score = log p(first token | prompt)
        + log p(next tokens | ...) including the final EOS, as EmotionLLM.score_labels computes it."""
        llm = self.llm
        dev = llm.device
        nt, N = len(tail_ids), sum(len(x) for x in inputs)
        P = B + nt
        dtype = llm.dtype
        neg = torch.finfo(dtype).min
        q = nt + N
        m = torch.full((1, 1, q, B + q), neg, dtype=dtype, device=dev)
        allowed = torch.zeros((1, 1, q, B + q), dtype=torch.bool, device=dev)
        allowed[0, 0, :, :B] = pmask[0].bool()
        allowed[0, 0, :nt, B:B + nt] = torch.ones(nt, nt, dtype=torch.bool, device=dev).tril()
        allowed[0, 0, nt:, B:B + nt] = True
        ids = list(tail_ids)
        pos = list(range(B, P))
        start = nt
        for x in inputs:
            for a in range(len(x)):
                allowed[0, 0, start + a, B + start:B + start + a + 1] = True
                ids.append(x[a])
                pos.append(P + a)
            start += len(x)
        m.masked_fill_(allowed, 0.0)
        logits, _ = self._prompt_pass(llm.embed_ids(ids).unsqueeze(0), m, torch.tensor([pos], device=dev), cache,
                                      N + 1)
        logp = F.log_softmax(logits, dim=-1)  # [N+1, V]: last tail token, then label tokens
        score = torch.stack([logp[0, s[0]] for s in seqs])
        start = 1
        extra = torch.zeros(len(seqs), device=dev)
        for j, s in enumerate(seqs):
            for a in range(len(s) - 1):
                extra[j] += logp[start + a, s[a + 1]]
            start += len(s) - 1
        return score + extra

    def _repeat_pass(self, cache, pmask, seqs, P) -> torch.Tensor:
        """Same as _tree_pass through L rows on a repeated cache (EmotionLLM.score_labels' method)."""
        llm = self.llm
        dev = llm.device
        L, T = len(seqs), max(len(s) for s in seqs)
        ids = torch.full((L, T), llm.pad_id, dtype=torch.long, device=dev)
        tm = torch.zeros(L, T, dtype=torch.long, device=dev)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s, device=dev)
            tm[i, :len(s)] = 1
        cache.batch_repeat_interleave(L)
        mask = torch.cat([pmask.expand(L, -1), tm[:, :-1]], dim=1)
        pos = (P + torch.arange(T - 1, device=dev)).unsqueeze(0).expand(L, -1)
        out = llm.model(inputs_embeds=llm.embed_ids(ids[:, :-1]), attention_mask=mask, position_ids=pos,
                        past_key_values=cache, use_cache=True)
        logp = F.log_softmax(out.logits.float(), dim=-1)
        tok = logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        return (tok * tm[:, 1:]).sum(-1)

    def _score_naive(self, const_ids, window_part, tail_ids, seqs) -> torch.Tensor:
        """One full forward of prompt + label per label (no cache reuse at all)."""
        llm = self.llm
        dev = llm.device
        we, wm = window_part
        prompt = torch.cat([llm.embed_ids(const_ids), we.to(llm.dtype), llm.embed_ids(tail_ids)])
        pmask = torch.cat([torch.ones(len(const_ids), device=dev), wm.to(dev), torch.ones(len(tail_ids), device=dev)])
        scores = []
        for s in seqs:
            emb = torch.cat([prompt, llm.embed_ids(s[:-1])]).unsqueeze(0) if len(s) > 1 else prompt.unsqueeze(0)
            mask = torch.cat([pmask, torch.ones(len(s) - 1, device=dev)]).long().unsqueeze(0)
            out = self._fwd(emb, mask, 0, keep=len(s))
            logp = F.log_softmax(out.logits[0].float(), dim=-1)  # positions P-1 .. P+len(s)-2
            scores.append(sum(logp[a, s[a]] for a in range(len(s))))
        return torch.softmax(torch.stack(scores), 0)

    # -- label path -----------------------------------------------------------------------------------
    def process(self, window: Window) -> EmotionResult:
        t0 = time.perf_counter()
        stage_ms: dict[str, float] = {}
        self.transcribe_if_needed(window, stage_ms)
        self._enter_label()
        try:
            with self._lock:
                t = time.perf_counter()
                streams = self._streams(window, stage_ms)
                text = sanitize_transcript(window.transcript, self.model.cfg.max_transcript_chars)
                t = time.perf_counter()
                const_ids, part, tail = self._pieces(streams, text, self.config.task)
                state = _WindowState(streams, text) if self.options.share_encoding else None
                probs = self._score(const_ids, part, tail, state if self.options.prefix_kv else None).cpu()
                stage_ms["llm_label"] = (time.perf_counter() - t) * 1e3
                if state is not None:
                    self._remember(window, state)
        finally:
            self._leave_label()
        scores = [float(p) for p in probs]
        best = max(range(len(scores)), key=scores.__getitem__)
        return EmotionResult(window=window, label=self.labels[best], labels=list(self.labels), scores=scores,
                             confidence=scores[best], modalities=window.modalities,
                             transcript=window.transcript or "", task=self.config.task, model_id=self.model_id,
                             latency_ms=(time.perf_counter() - t0) * 1e3, stage_ms=stage_ms)

    def _enter_label(self):
        with self._waiting_lock:
            self._label_waiting += 1

    def _leave_label(self):
        with self._waiting_lock:
            self._label_waiting -= 1

    @staticmethod
    def _window_key(window: Window):
        return (id(window), window.start_ns, window.end_ns, window.source)

    def _remember(self, window: Window, state: _WindowState) -> None:
        self._states[self._window_key(window)] = state
        while len(self._states) > self.options.window_states:
            self._states.popitem(last=False)

    # -- reasoning path -------------------------------------------------------------------------------
    def stream_reasoning(self, window: Window, should_stop: Callable[[], bool] = lambda: False) -> Iterator[str]:
        """Greedy reasoning deltas; same tokens as EmotionLLaMA.stream_reasoning, lock per token, label first."""
        gen = self._reason(window)
        while not should_stop():
            if self.options.label_priority:
                while self._label_waiting > 0:
                    time.sleep(0.0005)
            with self._lock:
                delta = next(gen, None)
            if delta is None:
                return
            if delta:
                yield delta

    @torch.no_grad()
    def _reason(self, window: Window) -> Iterator[str]:
        """Generator: each next() is one model step (prefill, then one token); yields '' when nothing new."""
        llm = self.llm
        dev = llm.device
        task = self.config.reasoning_task
        state = self._states.pop(self._window_key(window), None) if self.options.share_encoding else None
        if state is None:
            stage: dict = {}
            streams = self._streams(window, stage)
            state = _WindowState(streams, sanitize_transcript(window.transcript, self.model.cfg.max_transcript_chars))
        const_ids, part, tail = self._pieces(state.streams, state.text, task)
        if state.cache is None:
            state.cache, state.length, state.mask = self._prefix(const_ids, part)
        cache, B = state.cache, state.length
        mask = torch.cat([state.mask, torch.ones(1, len(tail), dtype=torch.long, device=dev)], dim=1)
        pos = torch.arange(B, B + len(tail), device=dev).unsqueeze(0)
        logits, cache = self._prompt_pass(llm.embed_ids(tail).unsqueeze(0), mask, pos, cache, 1)
        logits = logits[0]
        yield ""
        P = mask.shape[1]
        stop = ("</answer>",) if task == "think" else ()
        max_new = self.config.reasoning_max_tokens
        ids: list[int] = []
        text = TextDeltas(llm._decode, stop)
        for step in range(max_new):
            if llm._banned:
                logits[llm._banned] = float("-inf")
            if step < 1:
                logits[llm.eos_id] = float("-inf")
            penalise_repeats(logits, ids, self.config.reasoning_repetition_penalty)
            nxt = int(torch.argmax(logits))
            if nxt == llm.eos_id:
                break
            ids.append(nxt)
            delta, stopped = text.push(ids)
            if stopped or step == max_new - 1:
                yield delta
                break
            mask = torch.cat([mask, torch.ones(1, 1, dtype=mask.dtype, device=dev)], dim=1)
            logits, cache = self._step(nxt, mask, P + step, cache)
            yield delta
        rest = text.flush(ids)
        if rest:
            yield rest

    # -- info -----------------------------------------------------------------------------------------
    def describe(self) -> dict:
        d = {"engine": "fast", "options": dict(self.options.__dict__), "llm_precision": self.precision.name,
             **self.backend.describe()}
        if self.frame_cache is not None:
            d["frame_cache"] = self.frame_cache.stats()
        return d
