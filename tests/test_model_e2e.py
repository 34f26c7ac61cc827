"""(b) The tiny model end to end: raw uint8 frames + raw float audio + text -> label distribution and
streamed reasoning text."""
import re

import numpy as np
import pytest
import torch

from emotion_ros.model.config import get_profile
from emotion_ros.model.emotion_llama import EmotionLLaMA, Prediction, build_model, window_from_arrays
from emotion_ros.model.llm import DecodeRules, Prompt
from emotion_ros.model.prompt import LABEL_SETS, parse_answer


@pytest.fixture(scope="module")
def model() -> EmotionLLaMA:
    return build_model(get_profile("tiny"))


def _window(seed=0, seconds=2.0, h=60, w=80, transcript="I can't believe you did that!"):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (16, h, w, 3), dtype=np.uint8)
    audio = (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32)
    return window_from_arrays(frames, audio, transcript)


def test_predict_distribution(model):
    preds = model.predict([_window(0), _window(1, seconds=0.7)])
    labels = model.cfg.labels
    assert len(preds) == 2
    for p in preds:
        assert isinstance(p, Prediction)
        assert list(p.probs) == labels
        assert abs(sum(p.probs.values()) - 1.0) < 1e-5
        assert all(0.0 <= v <= 1.0 for v in p.probs.values())
        assert p.label in labels and labels[p.label_index] == p.label
        assert p.probs[p.label] == max(p.probs.values())


def test_predict_other_label_set_and_inputs_matter(model):
    labels = LABEL_SETS["MELD7"]
    a, b = model.predict([_window(0), _window(5, transcript="what a lovely day")], labels=labels)
    assert set(a.probs) == set(labels)
    # different inputs give different distributions (the inputs reach the LLM)
    assert max(abs(a.probs[k] - b.probs[k]) for k in labels) > 0


def test_predict_is_deterministic(model):
    w = _window(3)
    p1 = model.predict([w])[0].probs
    p2 = model.predict([w])[0].probs
    assert p1 == p2


def test_decode_loop_deltas_are_the_greedy_generation(model):
    w = _window(0)
    llm = model.llm
    prompt = model.prompts(model.encode([w]), "reason", model.cfg.labels)[0]
    deltas = [d for d in llm.generate(prompt, DecodeRules(max_new_tokens=12)) if d]
    assert deltas and all(isinstance(d, str) for d in deltas)
    # the deltas concatenate to the decoded full generation (greedy generation reproduced step by step)
    emb, mask = llm.flat(prompt)
    ids = _greedy_ids(llm, emb, mask, 12)
    assert "".join(deltas) == llm.tokenizer.decode(ids, skip_special_tokens=True,
                                                  clean_up_tokenization_spaces=False)


def test_think_output_always_parses_to_a_label_of_the_set(model):
    labels = model.cfg.labels
    for i in range(4):
        text = "".join(model.stream_reasoning(_window(i), max_new_tokens=10, repetition_penalty=1.2))
        m = re.fullmatch(r"<think>(.*)</think><answer>(.*)</answer>", text, re.S)
        assert m, text
        assert m.group(2) in labels and parse_answer(text, labels) == m.group(2)
        assert not any(t in m.group(1) for t in ("<think>", "</think>", "<answer>", "[INST]", "[/INST]", "<Vid>"))


def test_think_answer_is_the_label_scored_best_after_the_reasoning(model):
    """With no reasoning tokens the structured answer must be the argmax of log p(label </answer> EOS | prompt
    <think></think><answer>), computed here by one full forward per label."""
    llm = model.llm
    labels = model.cfg.labels
    emb, mask = llm.flat(model.prompts(model.encode([_window(3)]), "think", labels)[0])
    text = "".join(llm.generate(Prompt.from_embeds(emb, mask), DecodeRules(max_new_tokens=0, think_labels=tuple(labels))))
    head = llm.text_ids("<think>") + llm.text_ids("</think><answer>")
    scores = []
    with torch.no_grad():
        for lab in labels:
            ids = head + llm.text_ids(lab) + llm.text_ids("</answer>") + [llm.eos_id]
            e = torch.cat([emb, llm.embed_ids(ids)])
            m = torch.cat([mask, torch.ones(len(ids))]).long()
            logp = torch.log_softmax(llm.model(inputs_embeds=e[None], attention_mask=m[None],
                                               position_ids=torch.arange(e.shape[0])[None]).logits[0].float(), -1)
            P = emb.shape[0] + len(head)
            scores.append(sum(float(logp[P - 1 + j, t]) for j, t in enumerate(ids[len(head):])))
    assert text == f"<think></think><answer>{labels[int(np.argmax(scores))]}</answer>"


def test_decode_rules_bound_the_text(model):
    """No forbidden string, no repeated 4-gram, no 8-token span of the instruction copied."""
    llm = model.llm
    prompt = model.prompts(model.encode([_window(1)]), "reason", model.cfg.labels)[0]
    instr = llm.text_ids("abcdefghijklmnopqrstuvwxyz")
    rules = DecodeRules(max_new_tokens=40, no_repeat_ngram=4, forbidden=("ab", "[INST]"), no_copy_ids=tuple(instr),
                        copy_span=8, min_new_tokens=40)
    fed, step = [], llm._step

    def recording(token, *a):  # every generated token but the last goes through one decode step
        fed.append(token)
        return step(token, *a)

    llm._step = recording
    try:
        text = "".join(llm.generate(prompt, rules))
    finally:
        del llm._step
    assert "ab" not in text and "[INST]" not in text
    assert len(fed) >= 20
    grams = [tuple(fed[i:i + 4]) for i in range(len(fed) - 3)]
    assert len(grams) == len(set(grams))
    copied = {tuple(instr[i:i + 8]) for i in range(len(instr) - 7)}
    assert not copied & {tuple(fed[i:i + 8]) for i in range(len(fed) - 7)}


def _greedy_ids(llm, emb, mask, n):
    """Greedy ids by full re-computation (no cache), banning specials like EmotionLLM.generate."""
    ids = []
    with torch.no_grad():
        for step in range(n):
            e = torch.cat([emb, llm.embed_ids(ids)]) if ids else emb
            m = torch.cat([mask, torch.ones(len(ids))])
            out = llm.model(inputs_embeds=e[None], attention_mask=m[None].long(),
                            position_ids=torch.arange(e.shape[0])[None])
            logits = out.logits[0, -1].clone()
            logits[llm.banned_ids] = float("-inf")
            if step == 0:
                logits[llm.eos_id] = float("-inf")
            nxt = int(torch.argmax(logits))
            if nxt == llm.eos_id:
                break
            ids.append(nxt)
            if "</answer>" in llm.tokenizer.decode(ids):
                break
    return ids


def test_stream_sampling_seeded(model):
    w = _window(2)
    a = "".join(model.stream_reasoning(w, max_new_tokens=12, do_sample=True, seed=7))
    b = "".join(model.stream_reasoning(w, max_new_tokens=12, do_sample=True, seed=7))
    assert a == b and a


def test_reason_task_streams(model):
    deltas = list(model.stream_reasoning(_window(4), task="reason", max_new_tokens=8))
    assert "".join(deltas)


def test_parse_answer_only_labels_in_set():
    labels = LABEL_SETS["MER6"]
    assert parse_answer("<think>smiles, bright voice</think><answer>happy</answer>", labels) == "happy"
    assert parse_answer("<think>x</think><answer>Happy.</answer>", labels) == "happy"
    assert parse_answer("<answer>The emotion is sad</answer>", labels) == "sad"
    assert parse_answer("<answer>joy</answer>", labels) is None  # not in the set
    assert parse_answer("<answer>happy or sad</answer>", labels) is None  # ambiguous
    assert parse_answer("<answer>sad</answer> ... <answer>angry</answer>", labels) == "angry"
    assert parse_answer("no tags at all, happy", labels) is None
    assert parse_answer("", labels) is None
    assert parse_answer("<answer>worried", labels) == "worried"  # cut off by max_new_tokens




def test_encoded_batch_cache_roundtrip(model, tmp_path):
    """Training caches encoder outputs: safetensors round trip -> same loss; select/cat keep rows."""
    from safetensors.torch import load_file, save_file

    from emotion_ros.model.emotion_llama import EncodedBatch

    enc = model.encode([_window(0), _window(1, transcript=None)])
    save_file({k: v.contiguous() for k, v in enc.tensors().items()}, str(tmp_path / "c.safetensors"))
    back = EncodedBatch.from_tensors(load_file(str(tmp_path / "c.safetensors")), enc.transcripts)
    args = ("emotion", model.cfg.labels, None, ["happy", "sad"])
    with torch.no_grad():
        assert torch.equal(model.loss(enc, *args), model.loss(back, *args))
    both = EncodedBatch.cat([enc.select([1]), enc.select([0])])
    assert both.transcripts == [None, enc.transcripts[0]]
    assert torch.equal(both.audio_tokens[1], enc.audio_tokens[0])


def test_training_step_changes_prediction(model):
    """One optimiser step on fusion+adapter+LoRA moves the label distribution towards the target."""
    import copy

    m = copy.deepcopy(model)
    w = _window(0)
    enc = m.encode([w])
    before = m.predict([w])[0].probs["worried"]
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2)
    m.train()
    for _ in range(3):
        opt.zero_grad()
        loss = m.loss(enc, "emotion", m.cfg.labels, None, ["worried"])
        loss.backward()
        opt.step()
    after = m.predict([w])[0].probs["worried"]
    assert after > before


@pytest.mark.nano
@pytest.mark.slow
def test_nano_profile_end_to_end():
    """The embedded default with its packaged pretrained weights (Whisper-base, EfficientNet-Lite0,
    Gemma-3-270M): builds offline and runs both paths."""
    m = build_model(get_profile("nano"))
    w = _window(0, h=240, w=320)
    enc = m.encode([w])
    assert enc.global_patches.shape == (1, 49, 1280) and enc.temporal_tokens.shape == (1, 64, 1280)
    assert enc.audio_tokens.shape == (1, 64, 512)
    p = m.predict([w])[0]
    assert p.label in m.cfg.labels and abs(sum(p.probs.values()) - 1) < 1e-4
    assert "".join(m.stream_reasoning(w, max_new_tokens=3))
