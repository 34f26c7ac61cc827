"""Score emotion states against a bag's annotations: bag(s) + annotations -> metrics + report.

Where the states come from (per bag): the /emotion/state topic recorded in the bag itself (record the
node's outputs together with the inputs), a separate states bag, or offline mode (the bag through the
node's windowing + model code, no DDS). Two scoring levels:
- segment (default; the benchmark protocol: one prediction per annotated utterance/clip): the scores of
  all states whose window overlaps the segment are averaged, weighted by overlap; argmax = prediction.
  A segment no state overlaps is predicted "<none>" (counted wrong, and visible in the report);
- window: each state is scored against the annotated segment covering most of its window (states
  with less than half their window annotated are left out).
Every state is also kept as one row of the per-window table (window stamps, label, confidence, scores,
modalities used, transcript, latency, the annotated label it is scored against), and offline runs keep
their input account (messages read / accepted / dropped per bag topic, drops by reason, the windower's
accounting with "lost" = 0, bag topics that fed nothing and why), so the report shows every window and
every drop.
The official metric of each data set (emotion_ros.evaluation.metrics: score.sh's protocol, the segment's
predicted label as the response) is computed per data set over all its bags, then averaged over the sets
where it is defined (Avg; Avg-9 / Avg-18 when all their sets are there). An undefined metric (e.g. WAF on
an all-neutral set, hit rate without the wheel files) is reported with its reason. One bad bag is
recorded in `errors` and the rest go on.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from emotion_ros.evaluation import metrics as M
from emotion_ros.bags.annotations import AnnotationError, Annotations, find_for_bag, load as load_annotations
from emotion_ros.bags.bag_io import BagError, BagReader
from emotion_ros.bags.offline import StateRecord, read_states

NONE_LABEL = "<none>"
NS = 1_000_000_000


@dataclass
class BagJob:
    bag: Path
    annotations: Path | None = None
    states: Path | None = None      # separate bag with /emotion/state; None = the bag itself / offline
    dataset: str = ""               # overrides the annotation file's data set name
    name: str = ""

    def __post_init__(self):
        self.bag = Path(self.bag)
        self.annotations = Path(self.annotations) if self.annotations else None
        self.states = Path(self.states) if self.states else None
        self.name = self.name or self.bag.name


def load_manifest(path: str | Path) -> list[BagJob]:
    """A manifest of bags: JSON ([{bag, annotations?, states?, dataset?, name?}] or {"bags": [...]}) or a
    text file with one bag path per line. Relative paths are relative to the manifest's folder."""
    path = Path(path)
    base = path.parent
    text = path.read_text()
    entries: list = []
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        entries = data["bags"] if isinstance(data, dict) else data
    else:
        entries = [{"bag": line.strip()} for line in text.splitlines() if line.strip() and not line.startswith("#")]
    jobs = []
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            entry = {"bag": entry}
        if not isinstance(entry, dict) or "bag" not in entry:
            raise ValueError(f"{path}: entry {i} needs a 'bag' path")
        unknown = set(entry) - {"bag", "annotations", "states", "dataset", "name"}
        if unknown:
            raise ValueError(f"{path}: entry {i} has unknown field(s) {sorted(unknown)}")
        resolve = lambda p: None if not p else (Path(p) if Path(p).is_absolute() else base / p)  # noqa: E731
        jobs.append(BagJob(resolve(entry["bag"]), resolve(entry.get("annotations")), resolve(entry.get("states")),
                           str(entry.get("dataset") or ""), str(entry.get("name") or "")))
    return jobs


# ---------------------------------------------------------------------------------------- matching
@dataclass
class SegmentPrediction:
    start_ns: int
    end_ns: int
    truth: str
    truth_set: list[str]
    pred: str
    scores: dict[str, float]
    n_states: int
    onset_delay_s: float | None  # segment start -> end of the first state window predicting the truth
    id: str = ""


def _overlap(a0, a1, b0, b1) -> int:
    return max(0, min(a1, b1) - max(a0, b0))


def predict_segments(segments: Sequence[tuple[int, int, object]], states: Sequence[StateRecord]) -> list[SegmentPrediction]:
    """Overlap-weighted mean of state scores per annotated segment (see module docstring)."""
    out = []
    for s0, s1, seg in segments:
        acc: dict[str, float] = defaultdict(float)
        total = 0.0
        n = 0
        onset = None
        for st in states:
            w = _overlap(s0, s1, st.start_ns, st.end_ns)
            if w <= 0:
                continue
            n += 1
            total += w
            for lab, sc in zip(st.labels, st.scores):
                acc[lab] += w * float(sc)
            if onset is None and st.label == seg.label and st.end_ns >= s0:
                onset = (st.end_ns - s0) / NS
        scores = {k: v / total for k, v in acc.items()} if total > 0 else {}
        pred = max(scores, key=scores.get) if scores else NONE_LABEL
        out.append(SegmentPrediction(s0, s1, seg.label, seg.label_set, pred, scores, n, onset, seg.id))
    return out


def match_windows(segments: Sequence[tuple[int, int, object]], states: Sequence[StateRecord],
                  min_fraction: float = 0.5) -> list[tuple[StateRecord, object]]:
    """(state, segment) for each state whose window is at least min_fraction inside one segment."""
    pairs = []
    for st in states:
        length = max(1, st.end_ns - st.start_ns)
        best, best_w = None, 0
        for s0, s1, seg in segments:
            w = _overlap(s0, s1, st.start_ns, st.end_ns)
            if w > best_w:
                best, best_w = seg, w
        if best is not None and best_w / length >= min_fraction:
            pairs.append((st, best))
    return pairs


# ---------------------------------------------------------------------------------------- per bag
@dataclass
class BagResult:
    job: BagJob
    dataset: str
    labels: list[str]
    segments: list[SegmentPrediction]
    window_pairs: list[tuple[str, str]]
    states: list[StateRecord]
    annotated: list[tuple[int, int, str]]
    bag_start_ns: int
    bag_end_ns: int
    coverage: float
    latency: dict
    extra: dict = field(default_factory=dict)
    windows: list[dict] = field(default_factory=list)  # the per-window table (window_rows)

    def summary(self) -> dict:
        seg_true = [s.truth for s in self.segments]
        seg_pred = [s.pred for s in self.segments]
        out = {
            "bag": str(self.job.bag), "dataset": self.dataset, "segments": len(self.segments),
            "states": len(self.states), "scored_windows": len(self.window_pairs),
            "unscored_segments": sum(s.pred == NONE_LABEL for s in self.segments),
            "segment_accuracy": M.accuracy(seg_true, seg_pred) if seg_true else math.nan,
            "window_accuracy": M.accuracy(*zip(*self.window_pairs)) if self.window_pairs else math.nan,
            "coverage": self.coverage, "latency_ms": self.latency,
        }
        delays = [s.onset_delay_s for s in self.segments if s.onset_delay_s is not None]
        out["onset_delay_s_mean"] = float(np.mean(delays)) if delays else math.nan
        out.update(self.extra)
        return out


def window_rows(states: Sequence[StateRecord], segments: Sequence[tuple[int, int, object]], t0_ns: int,
                min_fraction: float = 0.5) -> list[dict]:
    """One row per state: the per-window table of the report (times in s from the bag start)."""
    from emotion_ros.ingest.window import modality_names

    annotated = {id(st): seg.label for st, seg in match_windows(segments, states, min_fraction)}
    rows = []
    for st in states:
        truth = annotated.get(id(st), "")
        rows.append({
            "window": int(st.window_index), "start_s": round((st.start_ns - t0_ns) / NS, 3),
            "end_s": round((st.end_ns - t0_ns) / NS, 3), "start_ns": int(st.start_ns), "end_ns": int(st.end_ns),
            "label": st.label, "confidence": float(st.confidence), "unsure": st.unsure_reason,
            "scores": {lab: float(sc) for lab, sc in zip(st.labels, st.scores)},
            "modalities": "+".join(modality_names(int(st.modalities))) or "none",
            "transcript": st.transcript, "latency_ms": float(st.latency_ms), "annotated": truth,
            "correct": (st.label == truth) if truth else None,
        })
    return rows


def input_report(offline) -> dict:
    """The input account of an OfflineResult (emotion_ros.bags.offline) for the report."""
    drops = offline.drops or {}
    return {
        "topics": offline.topics, "unused": offline.unused, "mapping": offline.mapping,
        "dropped": dict(drops.get("dropped", {})), "dropped_total": int(drops.get("total_dropped", 0)),
        "accepted": dict(drops.get("accepted", {})), "evicted": dict(drops.get("evicted", {})),
        "events": dict(drops.get("events", {})), "accounting": offline.accounting,
        "lost": sum(int(v.get("lost", 0)) for v in (offline.accounting or {}).values()),
        "warnings": list(offline.warnings),
    }


def evaluate_bag(job: BagJob, states_fn: Callable[[BagJob], list[StateRecord]] | None = None,
                 dataset: str = "", state_topic: str = "/emotion/state") -> BagResult:
    """Score one bag. states_fn(job) -> states or an OfflineResult (offline mode); default: read them from
    job.states or the bag."""
    ann_path = job.annotations or find_for_bag(job.bag)
    if ann_path is None:
        from emotion_ros.bags.annotations import candidates_for_bag

        looked = ", ".join(str(c) for c in candidates_for_bag(job.bag))
        raise AnnotationError(f"{job.bag}: no annotation file (looked for {looked}; or pass --annotations)")
    ann: Annotations = load_annotations(ann_path)
    with BagReader(job.bag) as bag:
        start_ns, end_ns = bag.start_ns, bag.end_ns
    inputs = None
    if states_fn is not None:
        states = states_fn(job)
        if hasattr(states, "states"):  # an OfflineResult: keep its input account for the report
            inputs = input_report(states)
            states = states.states
    else:
        states = read_states(job.states or job.bag, state_topic)
    states = sorted(states, key=lambda s: (s.end_ns, s.window_index))
    segments = ann.resolve(start_ns, end_ns)
    labels = list(ann.label_space)
    for st in states[:1]:
        labels += [x for x in st.labels if x not in labels]
    for _, _, seg in segments:
        labels += [x for x in seg.label_set if x not in labels]
    seg_preds = predict_segments(segments, states)
    pairs = [(seg.label, st.label) for st, seg in match_windows(segments, states)]
    cov = M.coverage([(a, b) for a, b, _ in segments], [(s.start_ns, s.end_ns) for s in states])
    extra = {"inputs": inputs} if inputs is not None else {}
    return BagResult(
        job=job, dataset=job.dataset or dataset or ann.dataset or "unnamed", labels=labels, segments=seg_preds,
        window_pairs=pairs, states=states, annotated=[(a, b, seg.label) for a, b, seg in segments],
        bag_start_ns=start_ns, bag_end_ns=end_ns, coverage=cov,
        latency=M.latency_stats([s.latency_ms for s in states]), extra=extra,
        windows=window_rows(states, segments, start_ns),
    )


# ---------------------------------------------------------------------------------------- all bags
def _dataset_scores(results: list[BagResult], wheels: M.EmotionWheels | None,
                    waf_variant: str = M.WAF_EMOTION_LLAMA_V2) -> dict:
    """The official metric of each data set over its segments (metrics.score_dataset); the response of a
    segment is its predicted label, an empty response when no state covered it."""
    by_set: dict[str, list[BagResult]] = defaultdict(list)
    for r in results:
        by_set[r.dataset].append(r)
    out = {}
    for name, rs in sorted(by_set.items()):
        segs = [s for r in rs for s in r.segments]
        if not segs:
            continue
        metric = M.dataset_metric(name)
        labels = []
        for r in rs:
            labels += [x for x in r.labels if x not in labels]
        responses = ["" if s.pred == NONE_LABEL else s.pred for s in segs]
        multi = metric in (M.MAP, M.OV_F)
        truth = [s.truth_set if multi else s.truth for s in segs]
        extra = {}
        if metric == M.MAP:  # the score-based mAP beside the official binary one
            extra = {"scores": np.array([[s.scores.get(lab, 0.0) for lab in labels] for s in segs]), "labels": labels}
        out[name] = M.score_dataset(name, truth, responses, wheels=wheels, waf_variant=waf_variant, **extra)
    return out


def evaluate(jobs: Sequence[BagJob], states_fn: Callable[[BagJob], list[StateRecord]] | None = None, *,
             dataset: str = "", wheels: M.EmotionWheels | None = None, state_topic: str = "/emotion/state",
             waf_variant: str = M.WAF_EMOTION_LLAMA_V2,
             progress: bool = True) -> dict:
    """Evaluate bags; returns the metrics dict (see report.write_report for the files)."""
    results: list[BagResult] = []
    errors = []
    seen: dict[str, int] = {}
    for job in jobs:  # report keys must be unique: bags of the same folder name get a suffix
        seen[job.name] = seen.get(job.name, 0) + 1
        if seen[job.name] > 1:
            job.name = f"{job.name}#{seen[job.name]}"
    iterator = jobs
    if progress:
        from tqdm import tqdm

        iterator = tqdm(jobs, desc="evaluate", unit="bag")
    for job in iterator:
        try:
            results.append(evaluate_bag(job, states_fn, dataset=dataset, state_topic=state_topic))
        except (BagError, AnnotationError, ValueError, OSError) as err:
            errors.append({"bag": str(job.bag), "reason": getattr(err, "reason", type(err).__name__),
                           "error": str(err)})
    return summarise(results, errors, wheels, waf_variant)


def summarise(results: list[BagResult], errors: list[dict], wheels: M.EmotionWheels | None = None,
              waf_variant: str = M.WAF_EMOTION_LLAMA_V2) -> dict:
    labels: list[str] = []
    for r in results:
        labels += [x for x in r.labels if x not in labels]
    seg_true = [s.truth for r in results for s in r.segments]
    seg_pred = [s.pred for r in results for s in r.segments]
    win = [p for r in results for p in r.window_pairs]
    cm_labels = labels + ([NONE_LABEL] if NONE_LABEL in seg_pred else [])
    overall: dict = {}
    if seg_true:
        overall["segment"] = M.classification_report(seg_true, seg_pred, cm_labels)
    if win:
        overall["window"] = M.classification_report([a for a, _ in win], [b for _, b in win], labels)
    all_states = [s for r in results for s in r.states]
    overall["latency_ms"] = M.latency_stats([s.latency_ms for s in all_states])
    covs = [(r.coverage, sum(b - a for a, b, _ in r.annotated)) for r in results if not math.isnan(r.coverage)]
    overall["coverage"] = (sum(c * w for c, w in covs) / sum(w for _, w in covs)) if covs else math.nan
    delays = [s.onset_delay_s for r in results for s in r.segments if s.onset_delay_s is not None]
    overall["onset_delay_s"] = M.latency_stats([d * 1e3 for d in delays])  # ms, same stats as latency
    datasets = _dataset_scores(results, wheels, waf_variant)
    dropped: dict[str, int] = defaultdict(int)
    for r in results:
        for reason, n in ((r.extra.get("inputs") or {}).get("dropped") or {}).items():
            dropped[reason] += int(n)
    return {
        "summary": {"bags": len(results) + len(errors), "bags_evaluated": len(results), "bags_failed": len(errors),
                    "segments": len(seg_true), "states": len(all_states), "scored_windows": len(win),
                    "labels": labels, "dropped": dict(sorted(dropped.items())),
                    "dropped_total": sum(dropped.values()),
                    "inputs_counted": any("inputs" in r.extra for r in results),
                    "lost": sum(int((r.extra.get("inputs") or {}).get("lost", 0)) for r in results)},
        "datasets": datasets,
        "avg": M.average_over_sets(datasets),
        "avg_over": [k for k, v in datasets.items() if M.is_defined(v)],
        "benchmark_averages": M.benchmark_averages(datasets),
        "overall": overall,
        "bags": {r.job.name: r.summary() for r in results},
        "errors": errors,
        "_results": results,  # in-memory only (plots); report.write_report drops it from metrics.json
    }
