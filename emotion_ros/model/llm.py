"""LLM stage: any Hugging Face causal LM + its tokenizer, LoRA through peft, label scoring, the decode loop.

A prompt reaches the LLM as a ``Prompt``: [head ids | body embeddings | tail ids]. head + body (the constant
text before the multimodal tokens, then the window's modality streams) are what every task of one window
shares; the tail is the task's text (transcript sentence, task id, instruction). That split is what the
speed-ups below hang on; a flat prompt (``Prompt.from_embeds``) is all body.

Label path (``score_labels``): the probability of each label of the set as the answer. Score of a label =
sum of the log-probs of its tokens AND of the final EOS; softmax over the set gives P(label | prompt, answer
in set): the exact sequence probability renormalised over the set. Including EOS removes the bias towards
labels that are prefixes of other text ("sad" vs "sadness") and makes the score that of the complete answer;
we deliberately do not length-normalise, which would break the probabilistic meaning. Training's emotion-task
target is the same token sequence (``target_ids``), so scoring and training agree. Three ways to compute the
same numbers (InferenceOptions.label_scoring):
- "tree": ONE forward of [tail | every label's tokens] on the prefix cache, the label tokens packed after the
  tail with a tree attention mask (each label token sees the prefix, the tail and its own label's earlier
  tokens; the labels share position ids P, P+1, ...);
- "batched": the tail on the prefix cache, then the cache repeated over the L labels and the L
  continuations run as one batch of L rows;
- "per_label": one full forward of prompt + label per label, no cache (the textbook way; benchmarks).
With ``InferenceOptions.prefix_kv`` the head's key/value cache is computed once per distinct head and the
window's prefix cache is returned for the reasoning path of the same window to reuse.

Reasoning path (``generate``): ONE decode loop for the node, the offline evaluation and training's
evaluation: greedy (or seeded sampling) generation token by token with the cache; every ``next()`` is one model
step (the prompt pass, then one token), so a caller can take a lock per step; the whole generated sequence is
decoded at every step and the new suffix is yielded (``TextDeltas``: SentencePiece spacing and multi-byte
characters stay right). Under ``llm_precision`` "mixed" the one-token steps run on an int8 copy of the LLM
(emotion_ros.model.precision). ``DecodeRules`` bound what may be generated: a token budget; strings the text
may never contain (the prompt's template markers); no n-gram repeated inside the text; no span of
``copy_span`` tokens copied from the instruction. With ``think_labels`` the output is structured: the free
text goes inside ``<think>``, ends when the model wants to write a tag (or at the budget, or at EOS), then
``</think><answer>`` is forced and the answer is the label of the set scored highest conditioned on the
reasoning (ONE tree-masked pass, as the label path scores), then ``</answer>``: every output parses and its
answer is in the label set. With ``answer_prior`` (the label path's probabilities of the same window) the
answer maximises log P(label | prompt, reasoning) + log P_label-path(label | prompt): the product of the two
readings, so the reasoning can overturn the label path only where the label path is unsure.

Adapters: the label LoRA (peft's "default") serves the label path. A checkpoint may add a second LoRA,
``REASONING_ADAPTER`` ("reason", trained on reasoning targets only, training stage "reason"): then the
reasoning path (``generate``, and the loss of reasoning tasks) runs with it and the label path with the
label LoRA, switched per pass (``use_adapter``), so training the reasoning cannot cost the label path
anything. A prefix cache is reused only by passes of the adapter that computed it.

Position ids are always 0..n-1 over the sequence (masked modality slots keep their positions), in training,
scoring and generation alike.
"""
from __future__ import annotations

import copy
import re
import warnings
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from emotion_ros.model.config import InferenceOptions
from emotion_ros.model.precision import LLMPrecision, set_llm_precision
from emotion_ros.model.prompt import format_think_target, parse_answer  # re-exported: the answer format

REASONING_ADAPTER = "reason"  # the second LoRA's peft name (its folder in a checkpoint)
LABEL_ADAPTER = "default"  # peft's name of the first LoRA

__all__ = ["EmotionLLM", "Prompt", "Prefix", "format_think_target", "parse_answer", "penalise_repeats"]


def clip_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to and including its first ``stop`` string, and whether one was found. One token can
    carry characters past the stop string ("</answer>:"); they are not part of the answer."""
    ends = [text.index(s) + len(s) for s in stop if s in text]
    return (text[:min(ends)], True) if ends else (text, False)


class TextDeltas:
    """The text of a growing list of generated ids, as deltas: never half a UTF-8 character, and ending at
    the first stop string (``clip_at_stop``)."""

    def __init__(self, decode: Callable[[list[int]], str], stop: Sequence[str] = ()):
        self._decode, self._stop, self.emitted = decode, tuple(stop), ""

    def push(self, ids: list[int]) -> tuple[str, bool]:
        """New stable text after the last id, and whether a stop string has been reached."""
        text, stopped = clip_at_stop(self._decode(ids), self._stop)
        return self._advance(text.rstrip("\ufffd")), stopped

    def flush(self, ids: list[int]) -> str:
        """Whatever is left once decoding ends (a trailing partial character included)."""
        return self._advance(clip_at_stop(self._decode(ids), self._stop)[0])

    def _advance(self, text: str) -> str:
        if len(text) > len(self.emitted) and text.startswith(self.emitted):
            delta, self.emitted = text[len(self.emitted):], text
            return delta
        return ""


def penalise_repeats(logits: torch.Tensor, generated: Sequence[int], penalty: float) -> torch.Tensor:
    """transformers' repetition penalty (Keskar et al. 2019: positive logits / penalty, negative * penalty)
    on the tokens generated so far; the prompt is multimodal embeddings, so only generated tokens count.
    ``logits`` [V] is changed in place and returned. penalty 1.0 = off."""
    if penalty == 1.0 or not generated:
        return logits
    from transformers import RepetitionPenaltyLogitsProcessor

    ids = torch.tensor([list(generated)], dtype=torch.long, device=logits.device)
    logits.copy_(RepetitionPenaltyLogitsProcessor(penalty)(ids, logits.unsqueeze(0))[0])
    return logits


@dataclass
class Prompt:
    """[head ids | body embeddings [N, H] with mask [N] (0 = a missing modality's slots) | tail ids]."""

    head_ids: list[int]
    body: torch.Tensor
    body_mask: torch.Tensor
    tail_ids: list[int]

    @classmethod
    def from_embeds(cls, embeds: torch.Tensor, mask: torch.Tensor) -> "Prompt":
        """A flat prompt: embeddings [P, H] (or [1, P, H]) and mask [P] as the body, no head, no tail."""
        embeds = embeds[0] if embeds.dim() == 3 else embeds
        mask = mask[0] if mask.dim() == 2 else mask
        return cls([], embeds, mask, [])

    def __len__(self) -> int:
        return len(self.head_ids) + self.body.shape[0] + len(self.tail_ids)


@dataclass
class Prefix:
    """Key/value cache of a prompt's [head | body] (the part one window's tasks share), its attention mask
    [1, length], and the logits after its last position (kept only for prompts without a tail). Consumers
    extend a private copy (``fork``): the prefix itself stays reusable."""

    cache: object
    length: int
    mask: torch.Tensor
    last_logits: torch.Tensor | None = None
    adapter: str = LABEL_ADAPTER  # the LoRA the cache was computed with

    def fork(self):
        return copy.deepcopy(self.cache)


@dataclass(frozen=True)
class DecodeRules:
    """What ``EmotionLLM.generate`` may produce (module docstring)."""

    max_new_tokens: int = 64
    min_new_tokens: int = 1  # EOS (and, with think_labels, closing the reasoning) not before this many tokens
    stop: tuple[str, ...] = ()  # generation ends once the text contains one (it then ends with it)
    repetition_penalty: float = 1.0
    no_repeat_ngram: int = 0  # > 0: no n-gram of this many tokens appears twice in the text
    forbidden: tuple[str, ...] = ()  # strings the text never contains (a token that would write one is skipped)
    no_copy_ids: tuple[int, ...] = ()  # e.g. the instruction's ids: no copy_span-token span of them is repeated
    copy_span: int = 8
    think_labels: tuple[str, ...] = ()  # structured <think>..</think><answer>label</answer> over this label set
    answer_prior: tuple[float, ...] = ()  # the label path's probabilities over think_labels (module docstring)
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None


THINK_OPEN, THINK_CLOSE, ANSWER_CLOSE = "<think>", "</think><answer>", "</answer>"


class EmotionLLM(nn.Module):
    def __init__(self, model: nn.Module, tokenizer, lora_r: int = 0, lora_alpha: int = 16,
                 lora_dropout: float = 0.0, lora_targets: Sequence[str] = ("q_proj", "v_proj")):
        super().__init__()
        for p in model.parameters():
            p.requires_grad_(False)
        if lora_r and lora_r > 0:
            from peft import LoraConfig, get_peft_model

            lcfg = LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                              target_modules=list(lora_targets), bias="none", task_type="CAUSAL_LM")
            with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5
                warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
                model = get_peft_model(model, lcfg)
        self.model = model
        self.tokenizer = tokenizer
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no EOS token: label scoring needs an end marker")
        self.eos_id = int(tokenizer.eos_token_id)
        self.bos_id = tokenizer.bos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        self.hidden_size = self.input_embeddings.weight.shape[1]
        # Special tokens other than EOS may never be generated (they would decode to nothing).
        self.banned_ids = sorted({int(i) for i in tokenizer.all_special_ids} - {self.eos_id})
        self.options = InferenceOptions()
        self.precision = LLMPrecision("float32", None, None)  # step_model None: the LLM itself
        self._head_kv: dict[tuple, object] = {}
        self._tags: torch.Tensor | None = None  # tag_tokens()
        self._active = LABEL_ADAPTER  # the LoRA adapter the model runs with (use_adapter)

    # -- options --------------------------------------------------------------------------------------
    def set_options(self, options: InferenceOptions) -> None:
        self.options = options
        self._head_kv.clear()

    def set_precision(self, name: str) -> LLMPrecision:
        """float32 | bfloat16 | float16 | mixed (emotion_ros.model.precision; changes the weights in place)."""
        self.precision = set_llm_precision(self, name)
        self._head_kv.clear()
        return self.precision

    # -- helpers --------------------------------------------------------------------------------------
    @property
    def input_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    @property
    def has_lora(self) -> bool:
        return hasattr(self.model, "peft_config")

    @property
    def has_reasoning_adapter(self) -> bool:
        return self.has_lora and REASONING_ADAPTER in self.model.peft_config

    @property
    def reasoning_adapter(self) -> str:
        """The adapter the reasoning path runs with: the reasoning LoRA where there is one."""
        return REASONING_ADAPTER if self.has_reasoning_adapter else LABEL_ADAPTER

    def add_reasoning_adapter(self) -> None:
        """Add the reasoning LoRA (same rank and targets as the label LoRA), starting as a copy of the label
        LoRA: the reasoning path then starts where the label path is (it already reads the modal tokens)."""
        if not self.has_lora:
            raise ValueError("a reasoning adapter needs the label LoRA (this LLM has lora_r 0)")
        if self.has_reasoning_adapter:
            raise ValueError("the LLM already has a reasoning adapter")
        self.model.add_adapter(REASONING_ADAPTER, copy.deepcopy(self.model.peft_config[LABEL_ADAPTER]))
        named = dict(self.model.named_parameters())
        with torch.no_grad():
            for n, p in named.items():
                if f".{REASONING_ADAPTER}." in n:
                    p.copy_(named[n.replace(f".{REASONING_ADAPTER}.", f".{LABEL_ADAPTER}.")])
                    p.requires_grad_(False)
        self._active = None
        self.use_adapter(LABEL_ADAPTER)

    def use_adapter(self, name: str) -> None:
        """Run with LoRA ``name`` from now on (no-op without a reasoning adapter or when it is active already).
        The parameters' requires_grad flags are kept (peft's set_adapter would make the active one trainable)."""
        if self._active == name or not self.has_reasoning_adapter:
            return
        flags = [(p, p.requires_grad) for p in self.model.parameters()]
        self.model.set_adapter(name)
        for p, flag in flags:
            p.requires_grad_(flag)
        self._active = name

    def adapter_for(self, tasks: Sequence[str]) -> str:
        """The adapter of a batch of tasks: the reasoning adapter for reasoning tasks, where there is one."""
        reasoning = {t in ("reason", "think") for t in tasks}
        if not self.has_reasoning_adapter or reasoning == {False}:
            return LABEL_ADAPTER
        if len(reasoning) > 1:
            raise ValueError("this batch mixes label and reasoning tasks, which run with different LoRA "
                             "adapters: train them in separate batches")
        return REASONING_ADAPTER

    @property
    def device(self) -> torch.device:
        return self.input_embeddings.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.input_embeddings.weight.dtype

    def text_ids(self, text: str) -> list[int]:
        """Token ids of plain text; special-token strings inside the text are NOT special."""
        try:
            return list(self.tokenizer(text, add_special_tokens=False, split_special_tokens=True).input_ids)
        except TypeError:  # tokenizers without split_special_tokens
            return list(self.tokenizer(text, add_special_tokens=False).input_ids)

    def target_ids(self, text: str) -> list[int]:
        """Answer tokens as trained and scored: the text's tokens followed by EOS. The think format's tags are
        tokenised on their own (``<think>`` | reasoning | ``</think><answer>`` | label | ``</answer>``), exactly
        as structured decoding writes them, so training and decoding see the same token sequence."""
        ids = []
        for piece in re.split(r"(<think>|</think><answer>|</answer>)", text):
            if piece:
                ids += self.text_ids(piece)
        return ids + [self.eos_id]

    def embed_ids(self, ids: list[int] | torch.Tensor) -> torch.Tensor:
        ids = torch.as_tensor(ids, dtype=torch.long, device=self.device)
        return self.input_embeddings(ids)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def flat(self, prompt: Prompt) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole prompt as embeddings [P, H] and mask [P] (training, per-label scoring)."""
        parts = [self.embed_ids(prompt.head_ids), prompt.body.to(self.device, self.dtype),
                 self.embed_ids(prompt.tail_ids)]
        dev = self.device
        mask = torch.cat([torch.ones(len(prompt.head_ids), device=dev), prompt.body_mask.to(dev),
                          torch.ones(len(prompt.tail_ids), device=dev)])
        return torch.cat(parts), mask

    # -- model passes ---------------------------------------------------------------------------------
    def _causal_lm(self):
        """The HF causal LM under any peft wrapper."""
        m = self.model
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

    def _pass(self, embeds, mask, positions, cache=None, keep: int = 0):
        """One multi-token pass (embeds [1|B, n, H]); returns (logits of the last ``keep`` positions of the
        first row [keep, V] or None, the extended cache)."""
        embeds = embeds.to(self.dtype)
        body = self._body()
        if body is None:  # a causal LM without a separate decoder stack
            out = self.model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, cache=cache,
                             use_cache=True, logits_to_keep=max(keep, 1))
            return (out.logits[0, -keep:].float() if keep else None), out.cache
        out = body(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True)
        logits = self._logits(out.last_hidden_state[0, -keep:]) if keep else None
        return logits, out.cache

    def _positions(self, start: int, n: int) -> torch.Tensor:
        return torch.arange(start, start + n, device=self.device).unsqueeze(0)

    def _head_cache(self, head_ids: list[int]):
        """KV cache of a constant prompt head, computed once (a copy is handed out per use)."""
        key = (self._active, *head_ids)
        if key not in self._head_kv:
            mask = torch.ones(1, len(head_ids), dtype=torch.long, device=self.device)
            _, self._head_kv[key] = self._pass(self.embed_ids(head_ids).unsqueeze(0), mask,
                                               self._positions(0, len(head_ids)))
        return copy.deepcopy(self._head_kv[key])

    @torch.no_grad()
    def prefill(self, prompt: Prompt, adapter: str = LABEL_ADAPTER) -> Prefix:
        """The prefix cache of [head | body] under LoRA ``adapter`` (with prefix_kv the head's cache is reused
        across windows)."""
        self.use_adapter(adapter)
        dev = self.device
        nh = len(prompt.head_ids)
        mask = torch.cat([torch.ones(nh, device=dev), prompt.body_mask.to(dev)]).long().unsqueeze(0)
        keep = 0 if prompt.tail_ids else 1
        if self.options.prefix_kv and nh:
            logits, cache = self._pass(prompt.body.unsqueeze(0), mask, self._positions(nh, prompt.body.shape[0]),
                                       cache=self._head_cache(prompt.head_ids), keep=keep)
        else:
            emb = torch.cat([self.embed_ids(prompt.head_ids), prompt.body.to(dev, self.dtype)]).unsqueeze(0)
            logits, cache = self._pass(emb, mask, self._positions(0, mask.shape[1]), keep=keep)
        return Prefix(cache, mask.shape[1], mask, None if logits is None else logits[-1],
                      adapter if self.has_reasoning_adapter else LABEL_ADAPTER)

    def _tail(self, prefix: Prefix, tail_ids: list[int]):
        """(logits after the last prompt token [V], cache of the whole prompt, its mask [1, P])."""
        if not tail_ids:
            return prefix.last_logits.clone(), prefix.fork(), prefix.mask
        mask = torch.cat([prefix.mask, torch.ones(1, len(tail_ids), dtype=torch.long, device=self.device)], 1)
        logits, cache = self._pass(self.embed_ids(tail_ids).unsqueeze(0), mask,
                                   self._positions(prefix.length, len(tail_ids)), cache=prefix.fork(), keep=1)
        return logits[-1], cache, mask

    # -- label path -----------------------------------------------------------------------------------
    @torch.no_grad()
    def score_labels(self, prompt: Prompt, labels: Sequence[str], prefix: Prefix | None = None
                     ) -> tuple[torch.Tensor, Prefix | None]:
        """Probabilities [L] over ``labels`` (module docstring), and the prompt's prefix (None for
        per_label scoring, which keeps no cache) for the reasoning path of the same window to reuse."""
        if len(labels) == 0:
            raise ValueError("empty label set")
        seqs = [self.target_ids(lab) for lab in labels]
        self.use_adapter(LABEL_ADAPTER)
        method = self.options.label_scoring
        if method == "per_label":
            return torch.softmax(self._score_per_label(prompt, seqs), 0), None
        prefix = prefix or self.prefill(prompt)
        n_label_inputs = sum(len(s) - 1 for s in seqs)
        limit = self._sliding_limit()
        fits = limit is None or len(prompt) + n_label_inputs < limit
        if method == "tree" and prompt.tail_ids and fits:
            return torch.softmax(self._score_tree(prefix, prompt.tail_ids, seqs), 0), prefix
        return torch.softmax(self._score_batched(prefix, prompt.tail_ids, seqs), 0), prefix

    def _sliding_limit(self) -> int | None:
        """Tokens a sliding-window attention layer sees (Gemma 3: 512): the tree's packed label tokens must
        stay inside it, else the batched method is used."""
        cfg = getattr(self._causal_lm(), "config", None)
        cfg = getattr(cfg, "text_config", cfg)
        types = getattr(cfg, "layer_types", None) or []
        if getattr(cfg, "sliding_window", None) and any("sliding" in t for t in types):
            return int(cfg.sliding_window)
        return None

    def _score_tree(self, prefix: Prefix, tail_ids: list[int], seqs: list[list[int]]) -> torch.Tensor:
        dev, dtype = self.device, self.dtype
        B, nt = prefix.length, len(tail_ids)
        P = B + nt
        inputs = [s[:-1] for s in seqs]
        N = sum(len(x) for x in inputs)
        q = nt + N
        allowed = torch.zeros((1, 1, q, B + q), dtype=torch.bool, device=dev)
        allowed[0, 0, :, :B] = prefix.mask[0].bool()
        allowed[0, 0, :nt, B:B + nt] = torch.ones(nt, nt, dtype=torch.bool, device=dev).tril()
        allowed[0, 0, nt:, B:B + nt] = True
        ids, pos, start = list(tail_ids), list(range(B, P)), nt
        for x in inputs:
            for a in range(len(x)):
                allowed[0, 0, start + a, B + start:B + start + a + 1] = True
                ids.append(x[a])
                pos.append(P + a)
            start += len(x)
        mask = torch.full((1, 1, q, B + q), torch.finfo(dtype).min, dtype=dtype, device=dev).masked_fill_(allowed, 0.0)
        logits, _ = self._pass(self.embed_ids(ids).unsqueeze(0), mask, torch.tensor([pos], device=dev),
                               cache=prefix.fork(), keep=N + 1)
        logp = F.log_softmax(logits, dim=-1)  # [N+1, V]: last tail token, then the label tokens
        score = torch.stack([logp[0, s[0]] for s in seqs])
        extra = torch.zeros(len(seqs), device=dev)
        start = 1
        for j, s in enumerate(seqs):
            for a in range(len(s) - 1):
                extra[j] += logp[start + a, s[a + 1]]
            start += len(s) - 1
        return score + extra

    def _score_batched(self, prefix: Prefix, tail_ids: list[int], seqs: list[list[int]]) -> torch.Tensor:
        dev = self.device
        logits, cache, pmask = self._tail(prefix, tail_ids)
        first = F.log_softmax(logits, dim=-1)
        score = torch.stack([first[s[0]] for s in seqs])
        L, T = len(seqs), max(len(s) for s in seqs)
        if T == 1:
            return score
        ids = torch.full((L, T), self.pad_id, dtype=torch.long, device=dev)
        tm = torch.zeros(L, T, dtype=torch.long, device=dev)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s, device=dev)
            tm[i, :len(s)] = 1
        cache.batch_repeat_interleave(L)
        P = pmask.shape[1]
        mask = torch.cat([pmask.expand(L, -1), tm[:, :-1]], dim=1)
        pos = (P + torch.arange(T - 1, device=dev)).unsqueeze(0).expand(L, -1)
        out = self.model(inputs_embeds=self.embed_ids(ids[:, :-1]), attention_mask=mask, position_ids=pos,
                         cache=cache, use_cache=True)
        logp = F.log_softmax(out.logits.float(), dim=-1)
        tok = logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        return score + (tok * tm[:, 1:]).sum(-1)

    def _score_per_label(self, prompt: Prompt, seqs: list[list[int]]) -> torch.Tensor:
        dev = self.device
        emb, pmask = self.flat(prompt)
        scores = []
        for s in seqs:
            full = torch.cat([emb, self.embed_ids(s[:-1]).to(emb.dtype)]).unsqueeze(0)
            mask = torch.cat([pmask, torch.ones(len(s) - 1, device=dev)]).long().unsqueeze(0)
            out = self.model(inputs_embeds=full.to(self.dtype), attention_mask=mask,
                             position_ids=self._positions(0, full.shape[1]), use_cache=False, logits_to_keep=len(s))
            logp = F.log_softmax(out.logits[0].float(), dim=-1)  # positions P-1 .. P+len(s)-2
            scores.append(sum(logp[a, s[a]] for a in range(len(s))))
        return torch.stack(scores)

    # -- reasoning path -------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, prompt: Prompt, rules: DecodeRules | None = None, prefix: Prefix | None = None,
                 **overrides) -> Iterator[str]:
        """Text deltas token by token; each ``next()`` is one model step (the prompt pass yields ''). ``rules``
        (or DecodeRules fields as keywords) bound the text (module docstring). Stops at EOS, after
        ``max_new_tokens``, or once the text contains a ``stop`` string (the text then ends with it).
        ``prefix``: the window's prefix from ``score_labels`` (recomputed when the reasoning adapter differs).
        The reasoning adapter is made active again before every step (a label pass may run in between)."""
        rules = replace(rules or DecodeRules(), **overrides)
        adapter = self.reasoning_adapter
        if rules.answer_prior and len(rules.answer_prior) != len(rules.think_labels):
            raise ValueError("answer_prior needs one probability per think label")
        gen = None
        if rules.do_sample:
            gen = torch.Generator(device="cpu")
            gen.manual_seed(0 if rules.seed is None else int(rules.seed))
        if prefix is None or prefix.adapter != adapter:
            prefix = self.prefill(prompt, adapter)
        self.use_adapter(adapter)
        logits, cache, mask = self._tail(prefix, prompt.tail_ids)
        yield ""
        think = bool(rules.think_labels)
        if think:
            self.use_adapter(adapter)
            logits, cache, mask = self._force(self.text_ids(THINK_OPEN), cache, mask)
            yield THINK_OPEN
        ids: list[int] = []
        text = TextDeltas(self.decode, rules.stop)
        blocks = _NgramBlocks(rules)
        pending = False  # the last id is not in the cache yet (the loop ended right after choosing it)
        for step in range(rules.max_new_tokens):
            self.use_adapter(adapter)
            if self.banned_ids:
                logits[self.banned_ids] = float("-inf")
            early = step < rules.min_new_tokens
            if early:
                logits[self.eos_id] = float("-inf")
            if think and early:
                logits[self.tag_tokens()] = float("-inf")
            blocks.ban(logits, ids)
            penalise_repeats(logits, ids, rules.repetition_penalty)
            nxt = self._pick_allowed(logits, ids, rules, text.emitted, gen)
            if nxt is None or nxt == self.eos_id:
                break
            if think and bool(self.tag_tokens()[nxt]):
                break  # the model wants to write a tag: its reasoning ends here
            ids.append(nxt)
            delta, stopped = text.push(ids)
            if stopped or step == rules.max_new_tokens - 1:
                pending = True
                yield delta
                break
            mask = torch.cat([mask, torch.ones(1, 1, dtype=mask.dtype, device=self.device)], dim=1)
            logits, cache = self._step(nxt, mask, mask.shape[1] - 1, cache)
            yield delta
        rest = text.flush(ids)
        if rest:
            yield rest
        if think:
            self.use_adapter(adapter)
            if pending:
                mask = torch.cat([mask, torch.ones(1, 1, dtype=mask.dtype, device=self.device)], dim=1)
                _, cache = self._step(ids[-1], mask, mask.shape[1] - 1, cache)
            yield THINK_CLOSE + self._think_answer(cache, mask, rules.think_labels, rules.answer_prior) + ANSWER_CLOSE

    def _force(self, ids: list[int], cache, mask):
        """Append ``ids`` (text the format prescribes) in one pass: (logits after them, cache, mask)."""
        _cast_cache(cache, self.dtype)
        mask = torch.cat([mask, torch.ones(1, len(ids), dtype=mask.dtype, device=self.device)], dim=1)
        logits, cache = self._pass(self.embed_ids(ids).unsqueeze(0), mask,
                                   self._positions(mask.shape[1] - len(ids), len(ids)), cache=cache, keep=1)
        return logits[-1], cache, mask

    def _think_answer(self, cache, mask, labels: Sequence[str], prior: Sequence[float] = ()) -> str:
        """The label scored highest after [prompt | <think>reasoning] + ``</think><answer>``: each label's
        tokens + ``</answer>`` + EOS, the whole set in one tree-masked pass (batched past a sliding window);
        with ``prior`` (the label path's probabilities) plus its log (module docstring)."""
        _cast_cache(cache, self.dtype)
        prefix = Prefix(cache, mask.shape[1], mask)
        close = self.text_ids(THINK_CLOSE)
        seqs = [self.text_ids(lab) + self.text_ids(ANSWER_CLOSE) + [self.eos_id] for lab in labels]
        limit = self._sliding_limit()
        if limit is None or prefix.length + len(close) + sum(len(q) - 1 for q in seqs) < limit:
            scores = self._score_tree(prefix, close, seqs)
        else:
            scores = self._score_batched(prefix, close, seqs)
        if prior:
            p = torch.as_tensor(prior, dtype=torch.float32, device=scores.device).clamp_min(1e-12)
            scores = torch.log_softmax(scores.float(), 0) + torch.log(p / p.sum())
        return labels[int(torch.argmax(scores))]

    def tag_tokens(self) -> torch.Tensor:
        """Bool [V]: tokens whose text starts with '<' (a tag), computed once per tokenizer."""
        if self._tags is None:
            pieces = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))],
                                                 clean_up_tokenization_spaces=False)
            tags = torch.tensor([p.lstrip().startswith("<") for p in pieces], dtype=torch.bool)
            vocab = self.input_embeddings.weight.shape[0]
            self._tags = torch.cat([tags, torch.zeros(max(0, vocab - len(tags)), dtype=torch.bool)])[:vocab]
        return self._tags

    def _pick_allowed(self, logits, ids, rules: DecodeRules, text: str, gen) -> int | None:
        """The next token; one that would write a forbidden string (or start one at the end of the text) is
        skipped for the next best (up to 32 tries; None when every allowed token is exhausted)."""
        for _ in range(32):
            nxt = _pick(logits, rules.do_sample, rules.temperature, rules.top_p, gen)
            if not rules.forbidden or nxt == self.eos_id:
                return nxt
            new = self.decode(ids + [nxt])
            if not _writes_forbidden(new, len(text), rules.forbidden, rules.stop):
                return nxt
            logits[nxt] = float("-inf")
            if not torch.isfinite(logits).any():
                return None
        return None

    def _step(self, token: int, mask, position: int, cache):
        """One decode step (on the int8 copy under llm_precision mixed): (logits [V], cache)."""
        step_model = self.precision.step_model or self.model
        emb = self.embed_ids([[token]]).to(self.precision.step_dtype or self.dtype)
        out = step_model(inputs_embeds=emb, attention_mask=mask, position_ids=torch.tensor([[position]], device=self.device),
                         cache=cache, use_cache=True, logits_to_keep=1)
        return out.logits[0, -1].float(), out.cache

    # -- training -------------------------------------------------------------------------------------
    def loss(self, prompts: Sequence[Prompt], targets: Sequence[str], reduction: str = "mean") -> torch.Tensor:
        """Teacher-forced LM loss on the target tokens only.

        ``reduction``: "mean" = mean over all target tokens of the batch (the usual LM loss; long targets
        weigh more), "sum" = their sum, "per_sample" = a [B] tensor of each sample's mean token loss (so a
        trainer can weigh a 2-token label answer like a 100-token reasoning answer).
        targets: answer texts (EOS is appended). Rows are LEFT-padded so every target ends at the last
        position: logits (vocabulary-sized) are then computed only for the last max-target-length positions,
        not for the whole prompt. Position ids still start at 0 at each row's first real token, as in scoring
        and generation.
        """
        if len(prompts) != len(targets):
            raise ValueError("one target per prompt")
        rows = []
        for prompt, tgt in zip(prompts, targets):
            pe, pm = self.flat(prompt)
            tid = self.target_ids(tgt)
            emb = torch.cat([pe, self.embed_ids(tid)], 0)
            mask = torch.cat([pm.long(), torch.ones(len(tid), dtype=torch.long, device=self.device)])
            rows.append((emb, mask, tid))
        B, N, H = len(rows), max(r[0].shape[0] for r in rows), self.hidden_size
        T = max(len(r[2]) for r in rows)
        emb = torch.zeros(B, N, H, dtype=self.dtype, device=self.device)
        mask = torch.zeros(B, N, dtype=torch.long, device=self.device)
        pos = torch.zeros(B, N, dtype=torch.long, device=self.device)
        lab = torch.full((B, T), -100, dtype=torch.long, device=self.device)
        for i, (e, m, tid) in enumerate(rows):
            pad = N - e.shape[0]
            emb[i, pad:], mask[i, pad:] = e, m
            pos[i, pad:] = torch.arange(e.shape[0], device=self.device)
            lab[i, T - len(tid):] = torch.tensor(tid, device=self.device)
        out = self.model(inputs_embeds=emb, attention_mask=mask, position_ids=pos, use_cache=False,
                         logits_to_keep=T + 1)
        logits = out.logits[:, :-1].float()  # position j predicts token j+1: the last T tokens
        if reduction in ("mean", "sum"):
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), lab.reshape(-1), ignore_index=-100,
                                   reduction=reduction)
        if reduction != "per_sample":
            raise ValueError(f"reduction must be mean, sum or per_sample, not {reduction!r}")
        tok = F.cross_entropy(logits.transpose(1, 2), lab, ignore_index=-100, reduction="none")  # [B, T]
        return tok.sum(1) / (lab != -100).sum(1)

    # -- deployment -----------------------------------------------------------------------------------
    def merge_lora(self) -> None:
        """Fold LoRA into the base weights (peft merge_and_unload) for deployment; no-op without LoRA. With a
        reasoning adapter the two LoRAs cannot both be folded into one set of weights: refused."""
        if self.has_reasoning_adapter:
            raise ValueError("the LLM has a reasoning adapter beside the label LoRA: they stay unmerged "
                             "(use_adapter switches them)")
        if self.has_lora:
            self.model = self.model.merge_and_unload()
            self._head_kv.clear()


def _cast_cache(cache, dtype) -> None:
    """Keys/values in ``dtype``, in place: under llm_precision mixed the int8 decode copy appends float32
    entries to a bfloat16 prefix (torch.cat promotes), and a later pass of the bf16 LLM on that cache (the
    think format's forced tags and answer scoring) needs its own dtype."""
    for layer in getattr(cache, "layers", ()):
        for name in ("keys", "values"):
            t = getattr(layer, name, None)
            if isinstance(t, torch.Tensor) and t.dtype != dtype and t.is_floating_point():
                setattr(layer, name, t.to(dtype))


class _NgramBlocks:
    """Tokens that would repeat an n-gram of the text, or copy ``copy_span`` tokens of ``no_copy_ids``."""

    def __init__(self, rules: DecodeRules):
        self.n = rules.no_repeat_ngram
        self.span = rules.copy_span
        src = list(rules.no_copy_ids)
        self.copy: dict[tuple, set] = {}
        for i in range(len(src) - self.span + 1):
            self.copy.setdefault(tuple(src[i:i + self.span - 1]), set()).add(src[i + self.span - 1])

    def ban(self, logits: torch.Tensor, ids: list[int]) -> None:
        banned = set()
        n = self.n
        if n > 0 and len(ids) >= n - 1:
            head = tuple(ids[len(ids) - n + 1:]) if n > 1 else ()
            for i in range(len(ids) - n + 1):
                if tuple(ids[i:i + n - 1]) == head:
                    banned.add(ids[i + n - 1])
        if self.copy and len(ids) >= self.span - 1:
            banned |= self.copy.get(tuple(ids[len(ids) - self.span + 1:]), set())
        if banned:
            logits[list(banned)] = float("-inf")


def _writes_forbidden(text: str, old_len: int, forbidden: Sequence[str], stop: Sequence[str]) -> bool:
    """Does the text, grown from ``old_len`` characters, now contain a forbidden string, or end with the
    start (2+ characters) of one that is not also the start of a stop string?"""
    tail = text[max(0, old_len - max(len(f) for f in forbidden)):]
    if any(f in tail for f in forbidden):
        return True
    for f in forbidden:
        for k in range(2, len(f)):
            if text.endswith(f[:k]) and not any(s.startswith(f[:k]) for s in stop):
                return True
    return False


def _pick(logits, do_sample, temperature, top_p, gen) -> int:
    if not do_sample:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / max(temperature, 1e-5), dim=-1)
    if top_p < 1.0:
        sp, si = torch.sort(probs, descending=True)
        keep = torch.cumsum(sp, 0) - sp < top_p
        probs = torch.zeros_like(probs).scatter(0, si[keep], sp[keep])
    return int(torch.multinomial(probs.cpu(), 1, generator=gen))
