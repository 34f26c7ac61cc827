"""End-to-end tests of the curriculum on the `tiny` recipe and a handful of synthetic clips.

One session fixture generates 12 short clips and fills one feature cache; every run below trains on
those cached features (the frozen encoders run once).
"""
import json
import os
import socket
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from emotion_ros_training.data.manifest import read_manifest
from emotion_ros_training.train import TrainArgs, Trainer


@pytest.fixture(scope="session")
def synth(tmp_path_factory):
    from emotion_ros_training.synth.generate import SynthConfig, generate

    root = tmp_path_factory.mktemp("train_synth")
    generate(SynthConfig(num=12, seed=11, duration_s=1.0, size=(64, 64), workers=2), root / "data")
    manifest = str(root / "data" / "manifest.jsonl")
    cache = str(root / "cache")
    # fill the feature cache once (the frozen encoders of the tiny model)
    from emotion_ros.model.emotion_llama import build_model
    from emotion_ros_training.features import FeatureCache
    from emotion_ros_training.recipes import get_recipe

    recipe = get_recipe("tiny")
    cfg = recipe.model_config()
    fc = FeatureCache(cache, cfg, cfg.vision.num_frames, recipe.frame_size)
    recs = read_manifest(manifest)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # far faster than 2 OpenMP threads when the machine is busy
    try:
        usable = fc.ensure(recs, build_model(cfg), progress=False)
    finally:
        torch.set_num_threads(threads)
    assert len(usable) == len(recs) and fc.stats.computed == len(recs)
    return {"root": root, "manifest": manifest, "cache": cache}


def _args(synth, out, stage="1", **kw):
    base = dict(recipe="tiny", manifest=synth["manifest"], stage=stage, out=str(out), cache=synth["cache"],
                progress=False)
    base.update(kw)
    return TrainArgs(**base)


def _log(path):
    return [json.loads(line) for line in open(path) if line.strip()]


def _final_tensors(stage_dir):
    t = load_file(str(stage_dir / "final" / "modal.safetensors"))
    t.update({"lora." + k: v for k, v in load_file(str(stage_dir / "final" / "adapter_model.safetensors")).items()})
    return t


def test_feature_cache_keys_follow_media_and_encoder(synth, tmp_path):
    from emotion_ros_training.features import FeatureCache, keep_modalities
    from emotion_ros_training.recipes import get_recipe

    recipe = get_recipe("tiny")
    cfg = recipe.model_config()
    fc = FeatureCache(synth["cache"], cfg, cfg.vision.num_frames, recipe.frame_size)
    recs = read_manifest(synth["manifest"])
    assert all(fc.has(r) for r in recs)  # filled by the fixture: a hit, no model needed
    assert fc.ensure(recs, model=None, progress=False) == recs and fc.stats.hits == len(recs)
    enc = fc.batch(recs[:3])
    assert len(enc) == 3 and enc.transcripts == [fc.load(r).transcripts[0] for r in recs[:3]]
    # another encoder setting (seed of the random encoders) -> another folder
    other = FeatureCache(synth["cache"], recipe.model_config(seed=1), cfg.vision.num_frames, recipe.frame_size)
    assert other.dir != fc.dir and not other.has(recs[0])
    # changed media bytes -> another key
    import shutil
    from dataclasses import replace

    rec = next(r for r in recs if r.video_path)
    copy = tmp_path / "clip.mp4"
    shutil.copy(rec.video_path, copy)
    moved = replace(rec, video_path=str(copy), audio_path=str(copy) if rec.audio_path == rec.video_path else rec.audio_path)
    k1 = FeatureCache(synth["cache"], cfg, 16, recipe.frame_size).key(moved)
    with open(copy, "ab") as f:
        f.write(b"\0")
    assert FeatureCache(synth["cache"], cfg, 16, recipe.frame_size).key(moved) != k1
    # modality removal = missing input
    a = keep_modalities(enc, ["audio"])
    assert a.global_mask.sum() == 0 and a.temporal_tokens.abs().sum() == 0 and a.transcripts == [None] * 3
    assert torch.equal(a.audio_tokens, enc.audio_tokens)
    # an undecodable clip is dropped and counted, not silently used
    bad = replace(recs[0], clip_id="broken", video_path=str(tmp_path / "missing.mp4"),
                  audio_path=str(tmp_path / "missing.mp4"))
    from emotion_ros.model.emotion_llama import build_model

    ok = fc.ensure([bad], build_model(cfg), progress=False)
    assert ok == [] and fc.stats.drops == {"media_missing": 1}


def test_two_stages_train_loss_falls_and_evaluate(synth, tmp_path):
    out = tmp_path / "run"
    r1 = Trainer(_args(synth, out, "1", steps=10, eval_split="test")).run()
    assert r1["step"] == 10 and not r1["interrupted"]
    log1 = [x for x in _log(out / "stage1" / "metrics.jsonl") if x["kind"] == "train"]
    assert [x["step"] for x in log1] == list(range(1, 11))
    assert all(set(x["tasks"]) >= {"emotion"} and x["tasks"]["emotion"] == 4 for x in log1)
    first = sum(x["loss"] for x in log1[:3]) / 3
    last = sum(x["loss"] for x in log1[-3:]) / 3
    assert last < first - 0.05, (first, last)
    assert (out / "stage1" / "loss.png").stat().st_size > 1000
    ev = json.loads((out / "stage1" / "eval.json").read_text())
    n_test = sum(r.split == "test" for r in read_manifest(synth["manifest"]))
    assert ev["overall"]["n"] == n_test and 0.0 <= ev["overall"]["accuracy"] <= 1.0
    assert ev["chance"]["uniform"] == pytest.approx(1 / 6)
    assert set(ev["overall"]["per_label_accuracy"]) == {"neutral", "happy", "sad", "angry", "worried", "surprise"}

    # Stage 2 starts from Stage 1's final weights and mixes recognition with reasoning
    r2 = Trainer(_args(synth, out, "2", steps=4)).run()
    assert r2["step"] == 4
    log2 = [x for x in _log(out / "stage2" / "metrics.jsonl") if x["kind"] == "train"]
    tasks = {k: sum(x["tasks"][k] for x in log2) for k in ("emotion", "think", "reason")}
    assert tasks["emotion"] > 0 and tasks["think"] + tasks["reason"] > 0
    s1, s2 = _final_tensors(out / "stage1"), _final_tensors(out / "stage2")
    assert s1.keys() == s2.keys() and any(not torch.equal(s1[k], s2[k]) for k in s1)

    # the evaluation CLI on the final checkpoint writes benchmark metrics
    from emotion_ros_training.evaluate import main as eval_main

    mpath = tmp_path / "metrics.json"
    assert eval_main(["--checkpoint", str(out / "stage2" / "final"), "--manifest", synth["manifest"],
                      "--out", str(mpath), "--no-progress", "--threads", "1"]) == 0
    m = json.loads(mpath.read_text())
    assert m["overall"]["n"] == n_test and m["per_dataset"]["SYNTH"]["metric"] == "accuracy"
    assert m["dropped"] == {}
    # without --cache it reads the features training cached (recorded in the checkpoint), none recomputed
    # into the data folder
    assert m["feature_cache"].startswith(str(Path(synth["cache"]).resolve()))
    assert not (Path(synth["manifest"]).parent / "feature_cache").exists()

    # fp16 export (what ships) loads into the fp32 model of the recorded config, close to the original
    from emotion_ros_training.export import export
    from emotion_ros.model.checkpoint import modal_state

    exp = export(str(out / "stage2" / "final"), str(tmp_path / "shipped"))
    half = load_file(str(exp / "modal.safetensors"))
    assert all(v.dtype == torch.float16 for v in half.values())
    from emotion_ros_training.evaluate import load_checkpoint_model

    model, _ = load_checkpoint_model(str(exp))
    for k, v in modal_state(model).items():
        assert v.dtype == torch.float32 and torch.allclose(v, s2[k], atol=1e-3), k


def test_resume_continues_from_the_saved_step(synth, tmp_path, capsys):
    kw = dict(steps=6, batch_size=2, checkpoint_every=2)
    ref = tmp_path / "ref"
    Trainer(_args(synth, ref, **kw)).run()

    run = tmp_path / "run"
    r = Trainer(_args(synth, run, stop_after=3, **kw)).run()
    assert r["interrupted"] and r["step"] == 3
    ck = run / "stage1" / "checkpoints"
    assert json.loads((ck / "latest.json").read_text())["step"] == 3
    state = json.loads((ck / "step_0000003" / "state.json").read_text())
    assert state["data_position"]["next_sample"] == 6
    assert not (run / "stage1" / "final").exists()
    # emulate a crash after step 3 whose last checkpoint is step 2: step 3 must be redone exactly once
    import shutil

    shutil.rmtree(ck / "step_0000003")
    (ck / "latest.json").write_text(json.dumps({"checkpoint": "step_0000002", "step": 2}))
    r = Trainer(_args(synth, run, resume=True, **kw)).run()
    assert r["step"] == 6 and r["steps_this_run"] == 4
    steps = [x["step"] for x in _log(run / "stage1" / "metrics.jsonl") if x["kind"] == "train"]
    assert steps == list(range(1, 7))  # nothing repeated, nothing lost
    a, b = _final_tensors(ref / "stage1"), _final_tensors(run / "stage1")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6, rtol=0), k
    ref_loss = [x["loss"] for x in _log(ref / "stage1" / "metrics.jsonl") if x["kind"] == "train"]
    run_loss = [x["loss"] for x in _log(run / "stage1" / "metrics.jsonl") if x["kind"] == "train"]
    assert run_loss == pytest.approx(ref_loss, abs=1e-6)
    # resuming a finished stage does nothing
    r = Trainer(_args(synth, run, resume=True, **kw)).run()
    assert r["steps_this_run"] == 0 and r["step"] == 6
    # a fresh start (neither --resume nor --overwrite) over the finished run is refused, and nothing is deleted
    from emotion_ros_training.train import RunExistsError, main

    with pytest.raises(RunExistsError, match=r"already holds a stage-1 run \(checkpoints up to step_0000006, "
                                             r"final weights\): pass --resume .* or --overwrite"):
        Trainer(_args(synth, run, **kw)).setup()
    assert (ck / "step_0000006").is_dir() and (run / "stage1" / "final").is_dir()
    argv = ["--recipe", "tiny", "--manifest", synth["manifest"], "--stage", "1", "--out", str(run),
            "--cache", synth["cache"], "--no-progress"]
    capsys.readouterr()
    assert main(argv) == 2  # the command line: one sentence, no traceback
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "--overwrite" in err[0]
    # --overwrite forgets the old run's checkpoints, log and final weights
    t = Trainer(_args(synth, run, overwrite=True, **kw))
    t.setup()
    assert t.step == 0 and t.latest_checkpoint() is None and not (run / "stage1" / "metrics.jsonl").exists()
    assert not (run / "stage1" / "final").exists()


def test_reasoning_adapter_stage_trains_only_the_reasoning_lora(synth, tmp_path):
    """Stage "reason" adds a second LoRA on a finished label model and trains only it: the label path of the
    result scores exactly as the label model did; an interrupted + resumed run equals an uninterrupted one;
    the checkpoint carries the adapter under reason/ (export included) and loading it switches adapters."""
    from emotion_ros.model.checkpoint import REASON_LORA_FILE, read_config
    from emotion_ros_training.evaluate import load_checkpoint_model, open_cache, predict_cached

    out = tmp_path / "run"
    Trainer(_args(synth, out, "1", steps=4)).run()
    init = str(out / "stage1" / "final")
    ref = Trainer(_args(synth, tmp_path / "ref", "reason", steps=6, checkpoint_every=2, init=init)).run()
    assert ref["step"] == 6
    log = [x for x in _log(tmp_path / "ref" / "stagereason" / "metrics.jsonl") if x["kind"] == "train"]
    assert all(x["tasks"]["emotion"] == 0 and x["tasks"]["think"] + x["tasks"]["reason"] == 4 for x in log)
    r = Trainer(_args(synth, out, "reason", steps=6, checkpoint_every=2, init=init, stop_after=3)).run()
    assert r["interrupted"]
    r = Trainer(_args(synth, out, "reason", steps=6, checkpoint_every=2, init=init, resume=True)).run()
    assert r["step"] == 6 and r["steps_this_run"] == 3
    final = out / "stagereason" / "final"
    a = load_file(str(tmp_path / "ref" / "stagereason" / "final" / REASON_LORA_FILE))
    b = load_file(str(final / REASON_LORA_FILE))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a)
    # the label LoRA and the modal parts are the label model's, bit for bit; the reasoning LoRA moved
    assert all(torch.equal(v, _final_tensors(out / "stage1")[k]) for k, v in _final_tensors(out / "stagereason").items())
    label = load_file(str(final / "adapter_model.safetensors"))
    assert label.keys() == b.keys() and any(not torch.equal(label[k], b[k]) for k in b)
    assert REASON_LORA_FILE in read_config(final)["files"]

    from emotion_ros_training.export import export

    shipped = export(str(final), str(tmp_path / "shipped"))
    model, meta = load_checkpoint_model(str(shipped))
    base, _ = load_checkpoint_model(init)
    assert model.llm.has_reasoning_adapter and not base.llm.has_reasoning_adapter
    cache = open_cache(model, meta, synth["cache"])
    recs = [r for r in read_manifest(synth["manifest"]) if r.split == "test"][:2]
    p_new, p_old = predict_cached(model, cache, recs), predict_cached(base, cache, recs)
    for x, y in zip(p_new, p_old):
        assert x["probs"] == pytest.approx(y["probs"], abs=1e-3)  # the label path is untouched (fp16 storage)
    enc = cache.load(recs[0])
    labels = list(recs[0].label_space.labels)
    prompt = model.prompts(enc, "think", labels)[0]
    alone = "".join(model.llm.generate(prompt, model.reasoning_rules("think", labels, 8)))
    own = labels.index(model.parse_answer(alone, labels))
    for k in (own, (own + 1) % len(labels)):  # a near-certain label-path prior decides the joint answer
        prior = [1e-9] * len(labels)
        prior[k] = 1.0
        text = "".join(model.llm.generate(prompt, model.reasoning_rules("think", labels, 8, answer_prior=prior)))
        assert model.parse_answer(text, labels) == labels[k], text
        assert text.split("</think>")[0] == alone.split("</think>")[0]  # the prior changes the answer only
    # the reasoning text itself runs with the reasoning LoRA: it differs from the label LoRA's
    model.llm.use_adapter("default")
    with torch.no_grad():
        label_loss = float(model.loss(enc, "emotion", [labels], None, [labels[0]]))
        base_loss = float(base.loss(enc, "emotion", [labels], None, [labels[0]]))
        think = "<think>x</think><answer>happy</answer>"
        reason_loss = float(model.loss(enc, "think", [labels], None, [think]))
        assert model.llm._active == "reason"
        model.llm.use_adapter("default")  # the label LoRA on a think target: another number
        assert float(model.llm.loss(model.prompts(enc, "think", [labels]), [think])) != pytest.approx(reason_loss)
    assert label_loss == pytest.approx(base_loss, abs=1e-3)
    with pytest.raises(ValueError, match="mixes label and reasoning tasks"):
        model.llm.adapter_for(["emotion", "think"])


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, args):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    from emotion_ros_training.train import train

    train(args)


def test_two_process_gloo_equals_one_process(synth, tmp_path):
    kw = dict(steps=3, batch_size=4, micro_batch=2, threads=1)
    one = tmp_path / "one"
    Trainer(_args(synth, one, **kw)).run()
    two = tmp_path / "two"
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(2, _free_port(), _args(synth, two, **kw)), nprocs=2, join=True)
    l1 = [x for x in _log(one / "stage1" / "metrics.jsonl") if x["kind"] == "train"]
    l2 = [x for x in _log(two / "stage1" / "metrics.jsonl") if x["kind"] == "train"]
    assert [x["world_size"] for x in l2] == [2, 2, 2]
    assert [x["tokens"] for x in l1] == [x["tokens"] for x in l2]
    assert [x["loss"] for x in l2] == pytest.approx([x["loss"] for x in l1], abs=1e-5)
    a, b = _final_tensors(one / "stage1"), _final_tensors(two / "stage1")
    from emotion_ros.model.emotion_llama import build_model
    from emotion_ros.model.checkpoint import lora_state, modal_state
    from emotion_ros_training.recipes import get_recipe

    init_model = build_model(get_recipe("tiny").model_config())
    init = modal_state(init_model)
    init.update({"lora." + k: v for k, v in lora_state(init_model).items()})
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    moved = max(float((a[k] - init[k]).abs().max()) for k in a)
    # Adam turns float round-off of near-zero gradients into tiny update differences: compare against
    # how far training moved the weights (lr 1e-3..3e-3 per step here).
    assert diff < 1e-4 and moved > 100 * diff, (diff, moved)

    # Stage 2 mixes 3-token labels with long reasoning answers and weighs every SAMPLE alike
    # (loss_weighting "sample" in the tiny recipe): the same equality must hold for that normalisation.
    from emotion_ros_training.recipes import get_recipe

    assert get_recipe("tiny").stage2.loss_weighting == "sample"
    kw2 = dict(steps=2, batch_size=4, micro_batch=1, threads=1, init=str(one / "stage1" / "final"))
    Trainer(_args(synth, one, stage="2", **kw2)).run()
    mp.spawn(_worker, args=(2, _free_port(), _args(synth, two, stage="2", **kw2)), nprocs=2, join=True)
    s1 = [x for x in _log(one / "stage2" / "metrics.jsonl") if x["kind"] == "train"]
    s2 = [x for x in _log(two / "stage2" / "metrics.jsonl") if x["kind"] == "train"]
    assert sum(x["tasks"]["think"] + x["tasks"]["reason"] for x in s1) > 0  # reasoning samples were mixed in
    assert [x["loss"] for x in s2] == pytest.approx([x["loss"] for x in s1], abs=1e-5)
    a, b = _final_tensors(one / "stage2"), _final_tensors(two / "stage2")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4


def test_report_tiny(synth, tmp_path, monkeypatch):
    from emotion_ros_training.report import main as report_main

    out = tmp_path / "report"
    argv = ["--recipe", "tiny", "--manifest", synth["manifest"], "--out", str(out), "--cache", synth["cache"],
            "--variants", "stage1,stage2,no_prefusion,text_only", "--steps-scale", "0.05", "--think", "1",
            "--threads", "1", "--no-progress"]
    assert report_main(argv) == 0
    rep = json.loads((out / "report.json").read_text())
    assert set(rep["results"]) == {"stage1", "stage2", "no_prefusion", "text_only"}
    # the reasoning path is scored for the variant trained with reasoning data only
    assert rep["results"]["stage2"]["metrics"]["think"]["n"] == 1
    nll = rep["results"]["stage2"]["metrics"]["think"]["target_nll"]  # the tiny clips all have descriptions
    assert nll is not None and 0 < nll < 50
    assert "think" not in rep["results"]["stage1"]["metrics"]
    assert rep["chance"]["uniform"] == pytest.approx(1 / 6)
    assert rep["results"]["text_only"]["modalities"] == ["text"]
    md = (out / "report.md").read_text()
    assert "Table 10" in md and "Conflict subset" in md and "chance" in md.lower()
    assert rep["feature_probe"]["metrics"]["overall"]["n"] == rep["n_test"]
    assert "frozen features without the LLM" in md and "Reasoning path" in md

    # a second run trains nothing and evaluates nothing again: the kept evaluations are reused
    import emotion_ros_training.evaluate

    def no_eval(*a, **k):
        raise AssertionError("evaluated again")

    monkeypatch.setattr(emotion_ros_training.evaluate, "evaluate_cached", no_eval)
    assert report_main(argv) == 0
    again = json.loads((out / "report.json").read_text())
    for v, r in rep["results"].items():
        assert again["results"][v]["metrics"] == r["metrics"]
        assert again["results"][v]["train_seconds"] is None  # weights existed


def test_calibration_fit_on_held_out_parts_is_attached_to_the_checkpoint(synth, tmp_path):
    """emotion_ros_training.calibrate: feature statistics from the train split, temperature from half of the
    test split plus real tuning bags (here a synthetic stand-in bag), report on the rest; the result travels
    in the checkpoint and the engine applies it."""
    from emotion_ros.bags.clips import write_synthetic_bag
    from emotion_ros.config import PerceptionConfig
    from emotion_ros.inference.engine import InferenceEngine
    from emotion_ros.model.checkpoint import read_calibration, save_trainable
    from emotion_ros.model.emotion_llama import build_model
    from emotion_ros_training.calibrate import fit
    from emotion_ros_training.features import FeatureCache
    from emotion_ros_training.recipes import get_recipe

    recipe = get_recipe("tiny")
    cfg = recipe.model_config()
    model = build_model(cfg)
    ckpt = save_trainable(model, tmp_path / "ckpt", {"recipe": "tiny"})
    cache = FeatureCache(synth["cache"], cfg, cfg.vision.num_frames, recipe.frame_size)
    records = read_manifest(synth["manifest"])
    bag = tmp_path / "bag"
    write_synthetic_bag(bag, [("happy", 2.5), ("sad", 2.5)], fps=10)
    config = PerceptionConfig.load("", profile="tiny", checkpoint=str(ckpt), calibrate=False, asr="never",
                                   llm_precision="float32", reasoning_every=0)
    engine = InferenceEngine(model, config.engine)
    cal, report = fit(model, cache, records, engine, config, real_bags=[bag], report_bags=[bag], min_stream_clips=5)
    assert {"audio", "vision"} <= set(cal.stats) and cal.temperature > 0
    assert report["real_tuning"]["windows"] >= 5 and "ece_after" in report["real_held_out"]
    from emotion_ros.model.calibration import FILE
    from emotion_ros.model.checkpoint import attach_file

    attach_file(ckpt, FILE, cal.to_json().encode())
    assert read_calibration(ckpt) == cal
