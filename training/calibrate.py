"""Fit the calibration stage of a checkpoint (emotion_ros/model/calibration.py) on held-out data, attach it.

    python -m emotion_ros_training.calibrate --checkpoint models/nano/adapters --manifest M --cache DIR \
        [--real-bags TUNING_BAG ...] [--report-bags HELD_OUT_BAG ...] [--min-confidence 0.5] --out report.json

Data, and what each part is used for (nothing of the report parts enters a fit):
- the manifest's train split: the pooled encoder features of each stream -> mean/std and the distance
  threshold (99th percentile) that define "far from the training data";
- the manifest's test split, halved by clip id: half A fits the temperature, half B is where ECE is
  reported (synthetic, held out from both training and this fit);
- --real-bags (annotated bags of real people, the TUNING part): windows far from the training data fit the
  second temperature (ood_temperature), the others join half A;
- --report-bags (the HELD-OUT real part): ECE and the unsure rates reported, never fitted on.
The rule for "unsure" (documented in calibration.py): calibrated confidence < --min-confidence, a stream far
from the training data, or the real-face expert's expression contradicting the label. Writes
calibration.json into the checkpoint folder (sha256 in its config.json) and the report (ECE before/after per
part, temperatures, unsure rates).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

import torch

from emotion_ros.io import write_text
from emotion_ros.model.calibration import (FILE, Calibration, expected_calibration_error, fit_temperature,
                                           pooled_features, stream_stats)
from emotion_ros_training.threads import torch_threads


def _half(clip_id: str) -> str:
    return "A" if hashlib.sha256(clip_id.encode()).digest()[0] % 2 == 0 else "B"


def cached_windows(model, cache, records):
    """(probs [L], truth index, pooled features, expert, labels) per record, from the feature cache."""
    out = []
    with model.evaluating():
        for rec in records:
            enc = cache.load(rec)
            labels = list(rec.label_space.labels)
            if rec.label not in labels:
                continue
            probs = model.llm.score_labels(model.prompts(enc, "emotion", labels)[0], labels)[0].float().cpu()
            out.append((probs, labels.index(rec.label), pooled_features(enc), model.expert_labels(enc, labels), labels))
    return out


def bag_windows(engine, config, bags):
    """(probs, truth index, pooled features, expert, labels) per annotated window of real bags, through the
    node's own windowing and engine (calibration off)."""
    from emotion_ros.bags import annotations as A
    from emotion_ros.bags.bag_io import BagReader
    from emotion_ros.bags.offline import OfflineRunner
    from emotion_ros.evaluation.evaluate import match_windows

    results = []

    class Recording:  # the engine, keeping each result (its features) for the fit
        def __getattr__(self, name):
            return getattr(engine, name)

        def process(self, window):
            res = engine.process(window)
            results.append(res)
            return res

    out = []
    runner = OfflineRunner(Recording(), config)
    for bag in bags:
        results.clear()
        states = runner.run(bag).states
        found = A.find_for_bag(bag)
        if not found:
            raise SystemExit(f"{bag}: no annotations next to the bag")
        with BagReader(bag) as reader:
            segments = A.load(found).resolve(reader.start_ns, reader.end_ns)
        by_index = {r.window.index: r for r in results}
        for st, seg in match_windows(segments, states):
            res = by_index[st.window_index]
            if seg.label in res.labels:
                out.append((torch.tensor(res.scores), res.labels.index(seg.label), res.features, res.expert,
                            res.labels))
    return out


def _stack(items):
    return (torch.stack([p for p, *_ in items]) if items else torch.zeros(0, 1),
            torch.tensor([t for _, t, *_ in items], dtype=torch.long))


def _ece_report(items, cal: Calibration) -> dict:
    if not items:
        return {"windows": 0}
    before, truth = _stack(items)
    after, unsure = [], 0
    for probs, _t, feats, expert, labels in items:
        p, why = cal.apply(probs, labels, feats, expert)
        after.append(p)
        unsure += bool(why)
    after = torch.stack(after)
    return {"windows": len(items), "accuracy": float((before.argmax(-1) == truth).double().mean()),
            "ece_before": expected_calibration_error(before, truth), "ece_after": expected_calibration_error(after, truth),
            "mean_confidence_before": float(before.max(-1).values.mean()),
            "mean_confidence_after": float(after.max(-1).values.mean()), "unsure_share": unsure / len(items)}


def fit(model, cache, records, engine=None, config=None, real_bags=(), report_bags=(), min_confidence=0.5,
        conflict_expert_min=0.7, min_stream_clips=20) -> tuple[Calibration, dict]:
    """The Calibration of ``model`` and its report (module docstring); a stream needs ``min_stream_clips``
    training clips for its feature statistics."""
    train = [r for r in records if r.split == "train"]
    test = [r for r in records if r.split == "test"]
    stats = {}
    feats = [pooled_features(cache.load(r)) for r in train]
    for name in ("audio", "vision", "face"):
        vecs = [f[name] for f in feats if f.get(name) is not None]
        if len(vecs) >= min_stream_clips:
            stats[name] = stream_stats(vecs)
    cal = Calibration(stats=stats, min_confidence=min_confidence, conflict_expert_min=conflict_expert_min)
    half_a = cached_windows(model, cache, [r for r in test if _half(r.clip_id) == "A"])
    half_b = cached_windows(model, cache, [r for r in test if _half(r.clip_id) == "B"])
    real = bag_windows(engine, config, real_bags) if real_bags else []
    is_far = [any(d > stats[n].threshold for n, d in cal.distances(w[2]).items()) for w in real]
    far = [w for w, f in zip(real, is_far) if f]
    near = [w for w, f in zip(real, is_far) if not f]
    cal.temperature = fit_temperature(*_stack(half_a + near))
    cal.ood_temperature = fit_temperature(*_stack(far)) if len(far) >= 5 else max(cal.temperature, 1.0)
    report = {"fit": {"synthetic_half_a": len(half_a), "real_tuning_near": len(near), "real_tuning_far": len(far),
                      "temperature": cal.temperature, "ood_temperature": cal.ood_temperature,
                      "streams": {n: {"threshold": s.threshold, "dims": len(s.mean)} for n, s in stats.items()}},
              "synthetic_held_out_half_b": _ece_report(half_b, cal),
              "real_tuning": _ece_report(real, cal)}
    if report_bags:
        report["real_held_out"] = _ece_report(bag_windows(engine, config, report_bags), cal)
    cal.fitted_on = {"synthetic_clips_half_a": len(half_a), "real_tuning_windows": len(real),
                     "ece_synthetic_held_out": report["synthetic_held_out_half_b"],
                     **({"ece_real_held_out": report["real_held_out"]} if report_bags else {})}
    return cal, report


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m emotion_ros_training.calibrate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="trainable checkpoint folder; calibration.json is added to it")
    ap.add_argument("--manifest", required=True, help="the training manifest (train split: feature statistics; "
                    "test split: temperature fit on one half, ECE on the other)")
    ap.add_argument("--cache", help="feature cache root (default: the cache training used for this checkpoint: "
                                    "recorded in it, or RUN/feature_cache of its run; else $EMOTION_ROS_CACHE/features)")
    ap.add_argument("--real-bags", nargs="*", default=[], help="annotated real bags of the TUNING part (fit)")
    ap.add_argument("--report-bags", nargs="*", default=[], help="annotated real bags of the HELD-OUT part (report)")
    ap.add_argument("--min-confidence", type=float, default=0.5, help="calibrated confidence below this = unsure")
    ap.add_argument("--conflict-expert-min", type=float, default=0.7,
                    help="face expert probability at which a contradicting label is unsure")
    ap.add_argument("--profile", default=None, help="profile for the bag runs (default: the checkpoint's)")
    ap.add_argument("--out", help="write the report JSON here")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    return ap


def main(argv=None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ns = build_parser().parse_args(argv)
    from emotion_ros.config import PerceptionConfig
    from emotion_ros.inference.engine import InferenceEngine
    from emotion_ros.model.checkpoint import attach_file
    from emotion_ros_training.data.manifest import read_manifest
    from emotion_ros_training.evaluate import load_checkpoint_model, open_cache

    with torch_threads(ns.threads):
        model, meta = load_checkpoint_model(ns.checkpoint)
        records = read_manifest(ns.manifest)
        from emotion_ros_training.features import default_cache_root

        cache = open_cache(model, meta, ns.cache or str(default_cache_root(ns.checkpoint, meta.get("metadata"))))
        records = cache.ensure(records, model, progress=True)
        engine = config = None
        if ns.real_bags or ns.report_bags:
            config = PerceptionConfig.load(profile=ns.profile or model.cfg.name, checkpoint=str(ns.checkpoint),
                                           calibrate=False, llm_precision="float32", reasoning_every=0)
            engine = InferenceEngine(model, config.engine)
        cal, report = fit(model, cache, records, engine, config, ns.real_bags, ns.report_bags, ns.min_confidence,
                          ns.conflict_expert_min)
    attach_file(ns.checkpoint, FILE, cal.to_json().encode())
    text = json.dumps(report, indent=1)
    if ns.out:
        write_text(ns.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
