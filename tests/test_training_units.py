"""Fast unit tests of training/: curriculum sampling, schedule, state round trips, metrics, plots."""
import json
import math

import numpy as np
import pytest
import torch

from emotion_ros.model.prompt import BOX_I, BOX_II
from emotion_ros_training.curriculum import Curriculum, epoch_order
from emotion_ros_training.data.manifest import MER6, ClipRecord
from emotion_ros_training.evaluate import compute_metrics, conflict_analysis
from emotion_ros_training.recipes import RECIPES, Recipe, get_recipe
from emotion_ros_training.train import lr_factor, optimizer_from_files, optimizer_to_files, restore_rng_json, rng_json


def _records(n=10, with_desc=True):
    out = []
    for i in range(n):
        lab = MER6.labels[i % 6]
        out.append(ClipRecord(clip_id=f"c{i}", dataset="SYNTH", split="train", label_space=MER6, labels=[lab],
                              subtitle="hello there", modalities=["text"],
                              description=f"The cues point to {lab}." if with_desc else None))
    return out


def _box(pool, text, labels):
    return any(text == p.replace("{labels}", ", ".join(labels)) for p in pool)


def test_stage1_is_recognition_with_box_i():
    cur = Curriculum(_records(), "1", batch_size=4, seed=3)
    for k in range(40):
        s = cur.sample(k)
        assert s.task == "emotion"
        assert s.target == s.record.label
        assert _box(BOX_I, s.instruction, s.labels)


def test_stage2_mixes_recognition_and_reasoning():
    cur = Curriculum(_records(), "2", batch_size=4, seed=3, recognition_fraction=0.4, think_fraction=0.75)
    tasks = {"emotion": 0, "think": 0, "reason": 0}
    for k in range(400):
        s = cur.sample(k)
        tasks[s.task] += 1
        if s.task == "emotion":
            assert _box(BOX_I, s.instruction, s.labels) and s.target == s.record.label
        elif s.task == "think":
            assert _box(BOX_II[2:], s.instruction, s.labels)
            assert s.target == f"<think>{s.record.description}</think><answer>{s.record.label}</answer>"
        else:
            assert _box(BOX_II[:2], s.instruction, s.labels) and s.target == s.record.description
    assert 0.3 < tasks["emotion"] / 400 < 0.5
    assert tasks["think"] > 2 * tasks["reason"] > 0


def test_stage2_without_description_falls_back_to_recognition():
    cur = Curriculum(_records(with_desc=False), "2", batch_size=2, recognition_fraction=0.0)
    assert {cur.sample(k).task for k in range(30)} == {"emotion"}


def test_sampling_is_deterministic_and_epochs_cover_all_clips():
    recs = _records(7)
    a = Curriculum(recs, "1", 3, seed=5)
    b = Curriculum(recs, "1", 3, seed=5)
    c = Curriculum(recs, "1", 3, seed=6)
    seq = [(a.sample(k).record.clip_id, a.sample(k).instruction) for k in range(21)]
    assert seq == [(b.sample(k).record.clip_id, b.sample(k).instruction) for k in range(21)]
    assert seq != [(c.sample(k).record.clip_id, c.sample(k).instruction) for k in range(21)]
    for e in range(3):  # every epoch is a permutation
        assert sorted(x[0] for x in seq[7 * e:7 * e + 7]) == sorted(r.clip_id for r in recs)
    assert not np.array_equal(epoch_order(7, 5, "1", 0), epoch_order(7, 5, "1", 1))
    # random access out of order gives the same samples (resume mid-epoch)
    assert a.sample(15).record.clip_id == seq[15][0] and a.sample(2).record.clip_id == seq[2][0]


def test_rank_shards_partition_the_global_batch():
    cur = Curriculum(_records(), "2", batch_size=6, seed=1, recognition_fraction=0.5)
    for step in (0, 3, 11):
        whole = cur.batch_indices(step)
        shards = [cur.batch_indices(step, r, 2) for r in range(2)]
        assert sorted(shards[0] + shards[1]) == whole
        assert not set(shards[0]) & set(shards[1])
    with pytest.raises(ValueError):
        cur.batch_indices(0, 0, 4)  # 6 is not divisible by 4


def test_lr_schedule_warmup_then_cosine():
    f = [lr_factor(s, 10, 110, 0.1) for s in range(110)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(x < y for x, y in zip(f[:9], f[1:10]))  # rising warm-up
    assert all(x >= y for x, y in zip(f[10:], f[11:]))  # monotone decay
    assert f[60] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(110, 10, 110, 0.1) == pytest.approx(0.1)


def test_recipes_paper_settings_and_round_trip():
    p = get_recipe("paper")
    assert (p.stage1.peak_lr, p.stage1.warmup_steps, p.stage1.weight_decay) == (1e-4, 1000, 0.05)
    assert p.stage1.steps + p.stage2.steps == 100_000
    cfg = p.model_config()
    assert (cfg.llm.lora_r, cfg.llm.lora_alpha, sorted(cfg.llm.lora_targets)) == (64, 16, ["q_proj", "v_proj"])
    for name in RECIPES:
        r = get_recipe(name)
        assert Recipe.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    with pytest.raises(ValueError):
        get_recipe("huge")


def test_optimizer_state_round_trips_through_safetensors_and_json():
    torch.manual_seed(0)
    ps = [torch.nn.Parameter(torch.randn(3, 4)), torch.nn.Parameter(torch.randn(5))]
    opt = torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.05)
    for _ in range(3):
        opt.zero_grad()
        (ps[0].sum() ** 2 + ps[1].pow(3).sum()).backward()
        opt.step()
    tensors, meta = optimizer_to_files(opt, ["a", "b"])
    meta = json.loads(json.dumps(meta))
    ps2 = [torch.nn.Parameter(p.detach().clone()) for p in ps]
    opt2 = torch.optim.AdamW(ps2, lr=1.0)
    optimizer_from_files(opt2, tensors, meta, ["a", "b"])
    for o in (opt, opt2):
        o.zero_grad()
    for params, o in ((ps, opt), (ps2, opt2)):
        (params[0].sum() ** 2 + params[1].pow(3).sum()).backward()
        o.step()
    for a, b in zip(ps, ps2):
        assert torch.equal(a, b)
    with pytest.raises(ValueError):
        optimizer_from_files(opt2, tensors, meta, ["a", "c"])


def test_python_and_numpy_rng_state_round_trip():
    import random

    random.seed(1)
    np.random.seed(2)
    state = json.loads(json.dumps(rng_json()))
    a = (random.random(), np.random.rand())
    restore_rng_json(state)
    assert (random.random(), np.random.rand()) == a


def test_compute_metrics_conflict_and_chance():
    recs = _records(6)
    recs[0].meta.update(kind="conflict", face_emotion="neutral", voice_emotion="happy", text_emotion="neutral")
    recs[1].meta.update(kind="conflict", face_emotion="sad", voice_emotion="happy", text_emotion="neutral")
    preds = [{"label": lab, "probs": [1 / 6] * 6} for lab in ["happy", "happy", "sad", "angry", "sad", "surprise"]]
    m = compute_metrics(recs, preds)
    assert m["overall"]["accuracy"] == pytest.approx(4 / 6)
    assert m["chance"]["uniform"] == pytest.approx(1 / 6)
    assert m["per_dataset"]["SYNTH"]["metric"] == "accuracy"
    assert m["per_kind"]["conflict"] == {"n": 2, "accuracy": 0.5}
    assert m["overall"]["per_label_accuracy"]["worried"] == 0.0
    c = conflict_analysis(recs, [p["label"] for p in preds])
    assert c["n"] == 2 and c["follows"]["voice"] == 1.0 and c["follows"]["face"] == 0.0


def test_compute_metrics_reports_an_undefined_set_instead_of_crashing():
    """issue 17: a sentiment set whose ground truth is all neutral made training.evaluate raise after
    encoding every clip ('WAF is undefined'); now that set is reported undefined and the rest is scored."""
    from emotion_ros_training.data.manifest import SENTIMENT3

    recs = _records(4)
    recs += [ClipRecord(clip_id=f"s{i}", dataset="MOSI", split="test", label_space=SENTIMENT3, labels=["neutral"],
                        subtitle="fine", modalities=["text"]) for i in range(3)]
    preds = [{"label": lab, "probs": [0.25] * 6} for lab in ["neutral", "sad", "sad", "sad"]]
    preds += [{"label": "positive", "probs": [0.2, 0.5, 0.3]} for _ in range(3)]
    m = compute_metrics(recs, preds)
    assert math.isnan(m["per_dataset"]["MOSI"]["value"]) and "neutral" in m["undefined"]["MOSI"]
    # SYNTH is outside the benchmark: official accuracy (neutral, happy, sad, angry vs neutral, sad, sad, sad)
    assert m["per_dataset"]["SYNTH"]["value"] == pytest.approx(2 / 4)
    assert m["avg"] == pytest.approx(0.5) and m["avg_over"] == ["SYNTH"]


def test_plot_losses_writes_png(tmp_path):
    from emotion_ros_training.plots import plot_losses, read_log

    log = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"kind": "train", "stage": "1", "step": s, "loss": 5 - s * 0.1, "lr": 1e-3}) for s in range(1, 30)]
    log.write_text("\n".join(lines + ["{broken", json.dumps({"kind": "eval", "accuracy": 0.5})]) + "\n")
    assert len(read_log(log)) == 29
    out = plot_losses([log, log], tmp_path / "loss.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError):
        plot_losses(empty, tmp_path / "x.png")


def test_plots_command_on_a_missing_log_is_one_sentence(tmp_path, capsys):
    from emotion_ros_training.plots import main

    missing = tmp_path / "run" / "stage1" / "metrics.jsonl"
    assert main([str(missing), "--out", str(tmp_path / "loss.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: metrics log {missing} not found (emotion_ros_training.train writes "
                   "RUN/stage<S>/metrics.jsonl)"]
    (tmp_path / "empty.jsonl").write_text("")
    assert main([str(tmp_path / "empty.jsonl"), "--out", str(tmp_path / "loss.png")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not (tmp_path / "loss.png").exists()


def test_feature_probe_learns_a_label_carried_by_one_modality():
    """The frozen-feature reference row: the label is readable from the audio tokens only -> the probe
    finds it; with the audio removed (missing modality = zeros) it falls to chance."""
    from emotion_ros.model.emotion_llama import EncodedBatch
    from emotion_ros_training.probe import pooled_features, probe_predictions

    gen = torch.Generator().manual_seed(0)
    recs = _records(120)
    codes = torch.randn(6, 16, generator=gen) * 3

    def encoded(i, audio=True):
        lab = MER6.labels.index(recs[i].label)
        a = torch.randn(1, 8, 16, generator=gen) + (codes[lab] if audio else 0)
        t = {"audio_tokens": a if audio else torch.zeros(1, 8, 16), "audio_mask": torch.full((1, 8), float(audio)),
             "global_patches": torch.randn(1, 4, 12, generator=gen), "global_cls": torch.randn(1, 12, generator=gen),
             "global_mask": torch.ones(1), "temporal_tokens": torch.randn(1, 8, 12, generator=gen),
             "temporal_mask": torch.ones(1)}
        return EncodedBatch.from_tensors(t, [None])

    class Cache:
        def __init__(self, audio):
            self.items = {r.clip_id: encoded(i, audio) for i, r in enumerate(recs)}

        def batch(self, records):
            return EncodedBatch.cat([self.items[r.clip_id] for r in records])

    assert pooled_features(Cache(True).batch(recs[:3])).shape == (3, 16 + 16 + 12 + 12)
    train, test = recs[:90], recs[90:]
    for audio, lo, hi in ((True, 0.9, 1.0), (False, 0.0, 0.5)):
        preds = probe_predictions(Cache(audio), train, test)
        acc = compute_metrics(test, preds)["overall"]["accuracy"]
        assert lo <= acc <= hi, (audio, acc)
        assert all(abs(sum(p["probs"]) - 1) < 1e-6 for p in preds)


def test_evaluation_finds_the_feature_cache_training_used(tmp_path, monkeypatch):
    from emotion_ros_training.features import default_cache_root, run_cache_root

    monkeypatch.setenv("EMOTION_ROS_CACHE", str(tmp_path / "user"))
    run = tmp_path / "run"
    final = run / "stage2" / "final"
    final.mkdir(parents=True)
    assert run_cache_root(run) == run / "feature_cache"  # training's default for --out RUN
    assert default_cache_root(final) == run / "feature_cache"  # the run the checkpoint is in
    assert default_cache_root(run / "stage1" / "checkpoints" / "step_0000010" / "trainable") == run / "feature_cache"
    own = tmp_path / "elsewhere"
    own.mkdir()
    assert default_cache_root(final, {"feature_cache": str(own)}) == own  # recorded by training
    shipped = tmp_path / "models" / "adapters"
    assert default_cache_root(shipped) == tmp_path / "user" / "features"  # never the data folder
    (run / "feature_cache").mkdir()
    assert default_cache_root(shipped, {"exported_from": str(final)}) == run / "feature_cache"
