"""LLM wrapper: any Hugging Face causal LM + its tokenizer, LoRA through peft, label scoring, streaming.

Label path (``score_labels``): the probability of each label as the answer, in ONE batched pass that
reuses the prefix's key/value cache. The prefix (multimodal prompt) runs once with ``use_cache``; its
cache is repeated over the L labels; the L continuations (each label's tokens + the end-of-sequence
token, right-padded) run as one batch of L rows on top of it. Score of a label = sum of the log-probs
of its tokens AND of the final EOS. Softmax over the L scores gives P(label | prompt, answer in set):
the exact sequence probability renormalised over the label set. Including EOS removes the bias
towards labels that are prefixes of other text ("sad" vs "sadness") and makes the score that of the
complete answer; we deliberately do not length-normalise, which would break the probabilistic meaning.
Training's emotion-task target is the same token sequence (``target_ids``), so scoring and training agree.

Reasoning path (``stream``): greedy (or seeded sampling) generation token by token with the cache; the
whole generated sequence is decoded at every step and the new suffix is yielded, which keeps
SentencePiece spacing and multi-byte characters right (a trailing incomplete character, decoded as
U+FFFD, is held back until it completes). The deltas concatenate to the final decoded text.

Position ids are always 0..n-1 over the sequence (masked modality slots keep their positions), in
training, scoring and generation alike.
"""
from __future__ import annotations

import warnings
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from emotion_ros.model.prompt import format_think_target, parse_answer  # re-exported: the answer format

__all__ = ["EmotionLLM", "format_think_target", "parse_answer", "penalise_repeats"]


def clip_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to and including its first ``stop`` string, and whether one was found. One token can
    carry characters past the stop string ("</answer>:"); they are not part of the answer."""
    ends = [text.index(s) + len(s) for s in stop if s in text]
    return (text[:min(ends)], True) if ends else (text, False)


class TextDeltas:
    """The text of a growing list of generated ids, as deltas: never half a UTF-8 character, and ending at
    the first stop string (``clip_at_stop``). Shared by the reference and the optimised decode loops."""

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
        self._banned = sorted({int(i) for i in tokenizer.all_special_ids} - {self.eos_id})

    # -- helpers -----------------------------------------------------------------------------------
    @property
    def input_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    @property
    def has_lora(self) -> bool:
        return hasattr(self.model, "peft_config")

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
        """Answer tokens as trained and scored: the text's tokens followed by EOS."""
        return self.text_ids(text) + [self.eos_id]

    def embed_ids(self, ids: list[int] | torch.Tensor) -> torch.Tensor:
        ids = torch.as_tensor(ids, dtype=torch.long, device=self.device)
        return self.input_embeddings(ids)

    def _forward(self, embeds, mask, positions, cache=None, logits_to_keep=0):
        return self.model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions,
                          past_key_values=cache, use_cache=True, logits_to_keep=logits_to_keep)

    # -- label path --------------------------------------------------------------------------------
    @torch.no_grad()
    def score_labels(self, prefix_embeds: torch.Tensor, prefix_mask: torch.Tensor,
                     labels: Sequence[str]) -> torch.Tensor:
        """prefix_embeds [P,H] (or [1,P,H]), prefix_mask [P] -> probabilities [L] over ``labels``."""
        if len(labels) == 0:
            raise ValueError("empty label set")
        emb = prefix_embeds if prefix_embeds.dim() == 3 else prefix_embeds.unsqueeze(0)
        pmask = (prefix_mask if prefix_mask.dim() == 2 else prefix_mask.unsqueeze(0)).to(self.device).long()
        emb = emb.to(self.device, self.dtype)
        P = emb.shape[1]
        out = self._forward(emb, pmask, torch.arange(P, device=self.device).unsqueeze(0), logits_to_keep=1)
        first_logp = F.log_softmax(out.logits[0, -1].float(), dim=-1)  # predicts every label's 1st token

        seqs = [self.target_ids(lab) for lab in labels]
        L, T = len(seqs), max(len(s) for s in seqs)
        ids = torch.full((L, T), self.pad_id, dtype=torch.long, device=self.device)
        tmask = torch.zeros(L, T, dtype=torch.long, device=self.device)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s, device=self.device)
            tmask[i, :len(s)] = 1
        score = first_logp[ids[:, 0]]
        if T > 1:
            cache = out.past_key_values
            cache.batch_repeat_interleave(L)
            inp = ids[:, :-1]
            mask = torch.cat([pmask.expand(L, -1), tmask[:, :-1]], dim=1)
            pos = (P + torch.arange(T - 1, device=self.device)).unsqueeze(0).expand(L, -1)
            out2 = self._forward(self.embed_ids(inp), mask, pos, cache=cache)
            logp = F.log_softmax(out2.logits.float(), dim=-1)  # [L, T-1, V]
            tok = logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)  # [L, T-1]
            score = score + (tok * tmask[:, 1:]).sum(-1)
        return torch.softmax(score, dim=0)

    # -- reasoning path ----------------------------------------------------------------------------
    @torch.no_grad()
    def stream(self, prefix_embeds: torch.Tensor, prefix_mask: torch.Tensor, max_new_tokens: int = 64,
               do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0, seed: int | None = None,
               min_new_tokens: int = 1, stop: Sequence[str] = (), repetition_penalty: float = 1.0) -> Iterator[str]:
        """Yield decoded text deltas token by token (greedy unless ``do_sample``; ``seed`` makes sampling
        reproducible; ``repetition_penalty`` > 1 discourages tokens already generated, see
        ``penalise_repeats``). Stops at EOS, after ``max_new_tokens``, or once the text contains a ``stop``
        string (the text ends with it)."""
        emb = prefix_embeds if prefix_embeds.dim() == 3 else prefix_embeds.unsqueeze(0)
        mask = (prefix_mask if prefix_mask.dim() == 2 else prefix_mask.unsqueeze(0)).to(self.device).long()
        emb = emb.to(self.device, self.dtype)
        P = emb.shape[1]
        gen = None
        if do_sample:
            gen = torch.Generator(device="cpu")
            gen.manual_seed(0 if seed is None else int(seed))
        out = self._forward(emb, mask, torch.arange(P, device=self.device).unsqueeze(0), logits_to_keep=1)
        cache = out.past_key_values
        logits = out.logits[0, -1].float()
        ids: list[int] = []
        text = TextDeltas(self._decode, stop)
        for step in range(max_new_tokens):
            if self._banned:
                logits[self._banned] = float("-inf")
            if step < min_new_tokens:
                logits[self.eos_id] = float("-inf")
            penalise_repeats(logits, ids, repetition_penalty)
            nxt = self._pick(logits, do_sample, temperature, top_p, gen)
            if nxt == self.eos_id:
                break
            ids.append(nxt)
            delta, stopped = text.push(ids)
            if delta:
                yield delta
            if stopped:
                break
            if step == max_new_tokens - 1:
                break
            mask = torch.cat([mask, torch.ones(1, 1, dtype=mask.dtype, device=self.device)], dim=1)
            pos = torch.tensor([[P + step]], device=self.device)
            out = self._forward(self.embed_ids([[nxt]]), mask, pos, cache=cache)
            cache = out.past_key_values
            logits = out.logits[0, -1].float()
        rest = text.flush(ids)
        if rest:
            yield rest

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    @staticmethod
    def _pick(logits, do_sample, temperature, top_p, gen) -> int:
        if not do_sample:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits / max(temperature, 1e-5), dim=-1)
        if top_p < 1.0:
            sp, si = torch.sort(probs, descending=True)
            keep = torch.cumsum(sp, 0) - sp < top_p
            probs = torch.zeros_like(probs).scatter(0, si[keep], sp[keep])
        return int(torch.multinomial(probs.cpu(), 1, generator=gen))

    # -- training ----------------------------------------------------------------------------------
    def loss(self, prefixes: Sequence[tuple[torch.Tensor, torch.Tensor]], targets: Sequence[str],
             reduction: str = "mean") -> torch.Tensor:
        """Teacher-forced LM loss on the target tokens only.

        ``reduction``: "mean" = mean over all target tokens of the batch (the usual LM loss; long targets
        weigh more), "sum" = their sum, "per_sample" = a [B] tensor of each sample's mean token loss (so a
        trainer can weigh a 2-token label answer like a 100-token reasoning answer).
        prefixes: per sample (embeds [P_i,H], mask [P_i]); targets: answer texts (EOS is appended).
        Rows are LEFT-padded so every target ends at the last position: logits (vocabulary-sized) are then
        computed only for the last max-target-length positions, not for the whole prompt. Position ids
        still start at 0 at each row's first real token, as in scoring and generation.
        """
        if len(prefixes) != len(targets):
            raise ValueError("one target per prefix")
        rows = []
        for (pe, pm), tgt in zip(prefixes, targets):
            tid = self.target_ids(tgt)
            emb = torch.cat([pe.to(self.device, self.dtype), self.embed_ids(tid)], 0)
            mask = torch.cat([pm.to(self.device).long(), torch.ones(len(tid), dtype=torch.long, device=self.device)])
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

    # -- deployment --------------------------------------------------------------------------------
    def merge_lora(self) -> None:
        """Fold LoRA into the base weights (peft merge_and_unload) for deployment; no-op without LoRA."""
        if self.has_lora:
            self.model = self.model.merge_and_unload()
