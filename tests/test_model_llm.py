"""LLM wrapper: the cached one-pass label scoring equals an independent computation, the loss covers
target tokens only, LoRA is applied as configured and merges without changing outputs."""
import copy

import pytest
import torch
import torch.nn.functional as F

from emotion_ros.model.config import InferenceOptions, get_profile
from emotion_ros.model.emotion_llama import build_model
from emotion_ros.model.llm import Prompt


@pytest.fixture(scope="module")
def llm():
    m = build_model(get_profile("tiny"))
    with torch.no_grad():  # make LoRA non-zero so it matters in every check below
        for n, p in m.llm.model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    return m.llm


def _prefix(llm, n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(n, llm.hidden_size, generator=g) * 0.5
    emb[0] = llm.embed_ids([llm.bos_id])[0]
    mask = torch.ones(n)
    mask[10:20] = 0  # a missing modality inside the prefix
    return emb, mask


def _naive_scores(llm, emb, mask, labels):
    """log P(label tokens + EOS | prefix) by one full forward per label, no cache."""
    out = []
    with torch.no_grad():
        for lab in labels:
            ids = llm.target_ids(lab)
            e = torch.cat([emb, llm.embed_ids(ids)])
            m = torch.cat([mask, torch.ones(len(ids))]).long()
            logits = llm.model(inputs_embeds=e[None], attention_mask=m[None],
                               position_ids=torch.arange(e.shape[0])[None]).logits[0]
            lp = F.log_softmax(logits.float(), -1)
            P = emb.shape[0]
            out.append(sum(float(lp[P - 1 + j, t]) for j, t in enumerate(ids)))
    return torch.tensor(out)


def _probs(llm, emb, mask, labels):
    return llm.score_labels(Prompt.from_embeds(emb, mask), labels)[0]


@pytest.mark.parametrize("method", ["tree", "batched", "per_label"])
@pytest.mark.parametrize("prefix_kv", [True, False])
def test_every_scoring_method_equals_one_forward_per_label(llm, method, prefix_kv):
    """A prompt split as [head ids | body embeddings | tail ids], as the model builds it."""
    labels = ["neutral", "happy", "sad", "angry", "worried", "surprise", "a"]
    emb, mask = _prefix(llm)
    head, tail = [llm.bos_id] + llm.text_ids("[INST] <Vid>"), llm.text_ids("</Vid> [emotion] which? [/INST]")
    prompt = Prompt(head, emb[1:], mask[1:], tail)
    flat, flat_mask = llm.flat(prompt)
    expected = torch.softmax(_naive_scores(llm, flat, flat_mask, labels), 0)
    llm.set_options(InferenceOptions(label_scoring=method, prefix_kv=prefix_kv))
    try:
        for _ in range(2):  # the second time on the cached head
            probs, prefix = llm.score_labels(prompt, labels)
            torch.testing.assert_close(probs, expected, atol=1e-5, rtol=1e-4)
        assert (prefix is None) == (method == "per_label")
        if prefix is not None:  # the prefix stays reusable: scoring again on it gives the same numbers
            torch.testing.assert_close(llm.score_labels(prompt, labels, prefix)[0], expected, atol=1e-5, rtol=1e-4)
    finally:
        llm.set_options(InferenceOptions.preset("reference"))


def test_cached_batched_scoring_equals_naive(llm):
    labels = ["neutral", "happy", "sad", "angry", "worried", "surprise", "a"]
    emb, mask = _prefix(llm)
    probs = _probs(llm, emb, mask, labels)
    expected = torch.softmax(_naive_scores(llm, emb, mask, labels), 0)
    torch.testing.assert_close(probs, expected, atol=1e-5, rtol=1e-4)
    assert abs(float(probs.sum()) - 1) < 1e-5


def test_scoring_respects_the_mask(llm):
    emb, mask = _prefix(llm)
    labels = ["happy", "sad"]
    base = _probs(llm, emb, mask, labels)
    emb2 = emb.clone()
    emb2[10:20] += 5.0  # masked slots: changing them must not matter
    torch.testing.assert_close(_probs(llm, emb2, mask, labels), base)
    emb3 = emb.clone()
    emb3[25] += 5.0  # an attended slot does matter
    assert not torch.allclose(_probs(llm, emb3, mask, labels), base)


def test_loss_on_target_tokens_only(llm):
    emb, mask = _prefix(llm)
    emb_b, mask_b = _prefix(llm, n=33, seed=1)
    rows = [Prompt.from_embeds(emb, mask), Prompt.from_embeds(emb_b, mask_b)]
    loss = llm.loss(rows, ["happy", "it is sad"])
    # reference: -mean log-prob of all target tokens (incl. EOS) over the batch
    tot, n = 0.0, 0
    for (e, m), tgt in [((emb, mask), "happy"), ((emb_b, mask_b), "it is sad")]:
        ids = llm.target_ids(tgt)
        tot += -_naive_scores(llm, e, m, [tgt])[0].item()
        n += len(ids)
    assert abs(loss.item() - tot / n) < 1e-4
    summed = llm.loss(rows, ["happy", "it is sad"], reduction="sum")
    assert abs(summed.item() - tot) < 1e-3
    # gradients reach LoRA but not the frozen base
    loss.backward()
    named = dict(llm.model.named_parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for k, p in named.items() if "lora_" in k)
    assert all(p.grad is None for k, p in named.items() if "lora_" not in k)
    llm.model.zero_grad(set_to_none=True)


def test_per_sample_loss_weighs_each_answer_alike(llm):
    """reduction="per_sample": each row's own mean token loss, whatever the other rows' lengths."""
    rows = [_prefix(llm), _prefix(llm, n=33, seed=1)]
    targets = ["happy", "it is sad because the voice is low and slow"]
    prompts = [Prompt.from_embeds(e, m) for e, m in rows]
    per = llm.loss(prompts, targets, reduction="per_sample")
    assert per.shape == (2,)
    for (e, m), tgt, got in zip(rows, targets, per):
        alone = -_naive_scores(llm, e, m, [tgt])[0].item() / len(llm.target_ids(tgt))
        assert abs(got.item() - alone) < 1e-4
    # the token mean is dominated by the long answer; the per-sample mean is not
    n = [len(llm.target_ids(t)) for t in targets]
    token_mean = llm.loss(prompts, targets).item()
    assert abs(token_mean - (per[0].item() * n[0] + per[1].item() * n[1]) / sum(n)) < 1e-4
    with pytest.raises(ValueError, match="reduction"):
        llm.loss(prompts, targets, reduction="max")


def test_lora_config_applied():
    cfg = get_profile("tiny", llm__lora_r=8, llm__lora_alpha=16)
    m = build_model(cfg)
    pc = m.llm.model.peft_config["default"]
    assert pc.r == 8 and pc.lora_alpha == 16 and set(pc.target_modules) == {"q_proj", "v_proj"}
    lora_names = [n for n, p in m.named_parameters() if p.requires_grad and "lora_" in n]
    assert lora_names and all(("q_proj" in n or "v_proj" in n) for n in lora_names)
    trainable = {n.split(".")[0] for n, p in m.named_parameters() if p.requires_grad}
    assert trainable == {"fusion", "adapter", "llm"}


def test_merge_lora_keeps_outputs(llm):
    emb, mask = _prefix(llm)
    labels = ["happy", "sad", "neutral"]
    before = _probs(llm, emb, mask, labels)
    merged = copy.deepcopy(llm)
    merged.merge_lora()
    assert not merged.has_lora
    torch.testing.assert_close(_probs(merged, emb, mask, labels), before, atol=1e-5, rtol=1e-4)


def test_stream_stops_and_handles_partial_utf8(llm):
    """Deltas never contain a half character; their concatenation is the decoded sequence."""
    tok = llm.tokenizer
    ids = tok("héllo wörld ✓", add_special_tokens=False).input_ids
    from emotion_ros.model.llm import TextDeltas  # the stream's incremental decode

    text = TextDeltas(llm.decode)
    deltas = [text.push(ids[:k])[0] for k in range(1, len(ids) + 1)]
    assert not any("\ufffd" in d for d in deltas)
    assert "".join(deltas) + text.flush(ids) == "héllo wörld ✓" and text.emitted == "héllo wörld ✓"
    emb, mask = _prefix(llm)
    deltas = [d for d in llm.generate(Prompt.from_embeds(emb, mask), max_new_tokens=5) if d]
    assert 1 <= len(deltas) <= 5


def test_repetition_penalty_scales_only_generated_tokens():
    from emotion_ros.model.llm import penalise_repeats

    logits = torch.tensor([2.0, -2.0, 1.0, 0.5])
    out = penalise_repeats(logits.clone(), [0, 1, 0], 2.0)
    assert torch.allclose(out, torch.tensor([1.0, -4.0, 1.0, 0.5]))  # positive / p, negative * p, others kept
    assert torch.equal(penalise_repeats(logits.clone(), [0, 1], 1.0), logits)
    assert torch.equal(penalise_repeats(logits.clone(), [], 2.0), logits)


def test_stream_text_ends_at_the_stop_string_even_inside_a_token():
    """A token that completes the stop string and carries more characters ("</answer>:") is cut after it
    (TextDeltas is the decode bookkeeping of the one decode loop, EmotionLLM.generate)."""
    from emotion_ros.model.llm import TextDeltas, clip_at_stop

    vocab = ["<think>hm</think>", "<answer>sad</", "answer>:", " more"]
    text = TextDeltas(lambda ids: "".join(vocab[i] for i in ids), stop=["</answer>"])
    assert text.push([0]) == ("<think>hm</think>", False)
    assert text.push([0, 1]) == ("<answer>sad</", False)
    assert text.push([0, 1, 2]) == ("answer>", True)
    assert text.flush([0, 1, 2]) == "" and text.emitted == "<think>hm</think><answer>sad</answer>"
    assert clip_at_stop("a</answer>:b</answer>", ["</answer>"]) == ("a</answer>", True)
    assert clip_at_stop("abc", ["</answer>"]) == ("abc", False)
