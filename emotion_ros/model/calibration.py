"""Calibrated confidence and abstention: the last stage of the label path.

The label path's softmax over the label set is the model's own belief; on inputs unlike its training data
(a real voice after training on synthetic speech) it can be confidently wrong. This stage, fitted on
held-out data by ``emotion_ros_training.calibrate`` and shipped in the checkpoint folder
(``calibration.json``, sha256-checked like every checkpoint file), makes the published confidence mean
what it says and decides when the node says it is unsure:

- a stream far from the training data does not vote: per stream (audio, vision, face) the pooled encoder
  features' mean squared z-score against the training set (``stats``); above the stream's threshold (the
  99th percentile on the training clips) the stream is far, and with ``drop_far_streams`` the engine scores
  the window as if that modality were missing (``streams_to_drop`` -> ``EncodedBatch.without``): the label
  then rests on the streams the model knows (why: on the real-data check's TUNING part the EfficientNet
  view of every real photograph and half of the real voices were far; their votes made calm speech
  "worried"/"sad"; with this rule and the expert vote below, TUNING went from 38/96 to 60/96 windows right,
  docs/real_check/AFTER.md);
- nothing to go on: when every present stream is left out and the window has no words, the label path
  would score an empty prompt, whose answer is whatever the adapters learned for nothing (measured: the
  shipped adapters say neutral, a run with real tweets said happy on 63 of 96 real TUNING windows). The
  published distribution is then the training label frequencies of the label set (``prior``, fitted with
  the rest; neutral is the common class), unsure "no_evidence";
- temperature scaling (Guo et al. 2017): p_i ∝ p_i^(1/T), T fitted by minimum NLL on held-out windows; a
  second temperature ``ood_temperature`` applies to windows with a far stream (fitted on held-out windows
  that have one, never below 1: such a window is not made more confident than the model made it), so a
  real voice does not get the synthetic clips' confidence; each part's temperature and
  expert weight are fitted together (``fit_pooling``);
- the real-face expert as a second opinion (log-linear pooling, a product of experts): log p += w · log q,
  q = the FER2013 expert's expression distribution mapped onto the label set, smoothed by ``expert_smoothing``
  towards uniform; ``ood_expert_weight`` on the windows with a far stream, fitted with their temperature
  (0 = off): the fused model was trained on rendered faces, its own reading of a real face is untrusted,
  the expert was trained on real faces. ``expert_weight`` (windows near the training data) is 0 as
  calibrate fits by default: there the fused model already reads the expert through its face stream, and
  a second vote counted that evidence twice (synthetic held-out 72.9 -> 64.3 % with it);
- unsure (EmotionState.unsure + unsure_reason, counted on /diagnostics) when there is nothing to go on
  ("no_evidence", above), when a present stream is far from
  the training data ("far_from_training_data"), when the calibrated confidence is below ``min_confidence``
  ("low_confidence"), or when the real-face expert's expression strongly contradicts the label
  ("modality_conflict": expert top probability >= ``conflict_expert_min`` on an expression that maps to
  another label).
The label is the argmax of the calibrated distribution (a consumer may still want the best guess, flagged
unsure); temperature scaling alone leaves it unchanged, dropping a far stream and the expert's vote change it.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

import torch

FILE = "calibration.json"
FORMAT = "emotion_ros.calibration/1"


@dataclass
class StreamStats:
    """Pooled-feature statistics of one stream on the training clips."""

    mean: list[float]
    std: list[float]
    threshold: float  # mean squared z-score above which a window is "far from the training data"


@dataclass
class Calibration:
    temperature: float = 1.0
    ood_temperature: float = 1.0
    min_confidence: float = 0.0
    stats: dict[str, StreamStats] = field(default_factory=dict)
    conflict_expert_min: float = 1.1  # > 1: off
    drop_far_streams: bool = False  # score windows without their far streams (see streams_to_drop)
    expert_weight: float = 0.0  # w of log p += w log q (the real-face expert's vote; 0 = off)
    ood_expert_weight: float = 0.0  # the same for windows with a far stream (fitted on those)
    expert_smoothing: float = 0.05  # q = (1 - s) q + s / L: one confident expert frame never vetoes a label
    # label-set key ("neutral,happy,...", see prior_key) -> label -> share of the training clips: what the
    # engine publishes for a window with nothing to go on (see no_evidence); {} = off
    prior: dict = field(default_factory=dict)
    fitted_on: dict = field(default_factory=dict)  # what the fit used and its figures (ECE before/after ...)

    # -- applying --------------------------------------------------------------------------------------
    def distances(self, features: dict[str, torch.Tensor | None]) -> dict[str, float]:
        """Mean squared z-score of each present stream's pooled feature vector (see ``pooled_features``)."""
        out = {}
        for name, vec in features.items():
            st = self.stats.get(name)
            if vec is None or st is None:
                continue
            mean = torch.tensor(st.mean, dtype=torch.float32)
            std = torch.tensor(st.std, dtype=torch.float32)
            z = (vec.float().cpu() - mean) / std
            out[name] = float((z * z).mean())
        return out

    def far_streams(self, features: dict[str, torch.Tensor | None]) -> list[str]:
        """The present streams whose pooled features are far from the training data."""
        return [n for n, d in self.distances(features).items() if d > self.stats[n].threshold]

    def streams_to_drop(self, features: dict[str, torch.Tensor | None]) -> list[str]:
        """The streams the engine scores the window without (the far ones, with ``drop_far_streams``)."""
        return self.far_streams(features) if self.drop_far_streams else []

    def no_evidence(self, features: dict[str, torch.Tensor | None], labels: Sequence[str],
                    transcript: str | None) -> bool:
        """True when the window has nothing the model knows to go on (every present stream left out, no
        words) and a prior of ``labels`` was fitted."""
        if prior_key(labels) not in self.prior or (transcript or "").strip():
            return False
        dropped = set(self.streams_to_drop(features))
        return all(vec is None or name in dropped for name, vec in features.items())

    def apply(self, probs: torch.Tensor, labels: Sequence[str], features: dict[str, torch.Tensor | None],
              expert: dict[str, float] | None = None, transcript: str | None = None) -> tuple[torch.Tensor, str]:
        """(calibrated probabilities, unsure reason or '') of one window. ``probs``: the label path's scores
        of the window as the engine scored it (without ``streams_to_drop(features)``); ``expert``: the face
        expert's distribution of what was scored (None without a face); ``transcript``: its words."""
        if self.no_evidence(features, labels, transcript):
            prior = self.prior[prior_key(labels)]
            return torch.tensor([prior.get(lab, 0.0) for lab in labels], dtype=probs.dtype), "no_evidence"
        far = self.far_streams(features)
        logits = torch.log(probs.double().clamp_min(1e-300)) / (self.ood_temperature if far else self.temperature)
        weight = self.ood_expert_weight if far else self.expert_weight
        if expert and weight > 0:
            logits = logits + weight * expert_log_scores([expert], labels, self.expert_smoothing)[0]
        probs = torch.softmax(logits, 0).to(probs.dtype)
        best = int(torch.argmax(probs))
        if far:
            return probs, "far_from_training_data"
        if float(probs[best]) < self.min_confidence:
            return probs, "low_confidence"
        if expert:
            top, p = max(expert.items(), key=lambda kv: kv[1])
            if p >= self.conflict_expert_min and top in labels and top != labels[best]:
                return probs, "modality_conflict"
        return probs, ""

    # -- storage ---------------------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **asdict(self)}, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = FILE) -> "Calibration":
        data = json.loads(text)
        if data.pop("format", None) != FORMAT:
            raise ValueError(f"{where}: not a {FORMAT} file")
        stats = {k: StreamStats(**v) for k, v in data.pop("stats", {}).items()}
        cal = cls(stats=stats, **data)
        if not (cal.temperature > 0 and cal.ood_temperature > 0):
            raise ValueError(f"{where}: temperatures must be > 0")
        return cal


def prior_key(labels: Sequence[str]) -> str:
    """The key of a label set in ``Calibration.prior``."""
    return ",".join(labels)


def label_prior(records) -> dict[str, dict[str, float]]:
    """``Calibration.prior`` of training records (anything with ``label`` and ``label_space.labels``): per
    label set, each label's share of the records (every label of the set present, at least one count each
    so no label is impossible)."""
    counts: dict[str, dict[str, int]] = {}
    for rec in records:
        labels = list(rec.label_space.labels)
        if rec.label in labels:
            c = counts.setdefault(prior_key(labels), dict.fromkeys(labels, 1))
            c[rec.label] += 1
    return {key: {lab: n / sum(c.values()) for lab, n in c.items()} for key, c in counts.items()}


def temper(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Temperature scaling of a probability vector: softmax(log p / T)."""
    if temperature == 1.0:
        return probs
    logp = torch.log(probs.double().clamp_min(1e-300))
    return torch.softmax(logp / temperature, 0).to(probs.dtype)


def pooled_features(enc, i: int = 0) -> dict[str, torch.Tensor | None]:
    """One window's pooled encoder outputs per stream (None where the modality is missing): the vectors
    ``Calibration`` measures the distance of. audio: mean of the real audio tokens; vision: the global CLS;
    face: mean of the frames with a face (when the profile has the face expert)."""
    out: dict[str, torch.Tensor | None] = {"audio": None, "vision": None}
    m = enc.audio_mask[i]
    if float(m.sum()) > 0:
        out["audio"] = (enc.audio_tokens[i] * m[:, None]).sum(0) / m.sum()
    if float(enc.global_mask[i]) > 0:
        out["vision"] = enc.global_cls[i]
    face = getattr(enc, "face_tokens", None)
    if face is not None:
        fm = enc.face_mask[i]
        out["face"] = (face[i] * fm[:, None]).sum(0) / fm.sum() if float(fm.sum()) > 0 else None
    return out


# -- fitting (used by emotion_ros_training.calibrate; plain functions, tested with known answers) -------
def nll(probs: torch.Tensor, truth: torch.Tensor, temperature: float, offset: torch.Tensor | None = None) -> float:
    """Mean negative log-likelihood of the true labels [N] under tempered probabilities [N, L] (plus an
    additive log-score ``offset`` [N, L], e.g. the expert's weighted log-probabilities)."""
    logits = torch.log(probs.double().clamp_min(1e-300)) / temperature
    if offset is not None:
        logits = logits + offset
    logp = torch.log_softmax(logits, -1)
    return float(-logp[torch.arange(len(truth)), truth].mean())


def fit_temperature(probs: torch.Tensor, truth: torch.Tensor, lo: float = 0.05, hi: float = 50.0,
                    offset: torch.Tensor | None = None) -> float:
    """The T minimising held-out NLL (golden-section search on log T; NLL(T) is unimodal here)."""
    if len(truth) == 0:
        return 1.0
    a, b = math.log(lo), math.log(hi)
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    for _ in range(80):
        if nll(probs, truth, math.exp(c), offset) < nll(probs, truth, math.exp(d), offset):
            b = d
        else:
            a = c
        c, d = b - g * (b - a), a + g * (b - a)
    return math.exp((a + b) / 2)


def expert_log_scores(experts: Sequence[dict | None], labels: Sequence[str], smoothing: float) -> torch.Tensor:
    """[N, L] log q of each window's smoothed expert distribution (zeros where there is no expert): the
    offset that ``expert_weight`` multiplies (the same formula as ``Calibration.apply``)."""
    out = torch.zeros(len(experts), len(labels), dtype=torch.float64)
    for i, e in enumerate(experts):
        if e:
            q = torch.tensor([e.get(lab, 0.0) for lab in labels], dtype=torch.float64)
            out[i] = torch.log((1 - smoothing) * q / q.sum().clamp_min(1e-12) + smoothing / len(labels))
    return out


EXPERT_WEIGHTS = tuple(x / 10 for x in range(0, 31))  # the grid fit_pooling searches: 0, 0.1, ..., 3


def fit_pooling(probs: torch.Tensor, truth: torch.Tensor, logq: torch.Tensor,
                weights: Sequence[float] = EXPERT_WEIGHTS,
                min_temperature: float = 0.05) -> tuple[float, float]:
    """(temperature, expert weight) minimising the NLL of one part of the held-out windows (probs [N, L],
    truth [N], the expert's log-scores [N, L]): a grid over the weight, the temperature fitted by
    ``fit_temperature`` (at least ``min_temperature``) at each. Fewer than 5 windows: (1.0, 0.0)."""
    if len(truth) < 5:
        return 1.0, 0.0
    best = None
    for w in weights:
        t = fit_temperature(probs, truth, lo=min_temperature, offset=w * logq)
        loss = nll(probs, truth, t, w * logq)
        if best is None or loss < best[0] - 1e-12:
            best = (loss, t, w)
    return best[1], best[2]


def expected_calibration_error(probs: torch.Tensor, truth: torch.Tensor, bins: int = 15) -> float:
    """ECE with equal-width confidence bins: sum over bins of |accuracy - mean confidence| x share."""
    if len(truth) == 0:
        return float("nan")
    conf, pred = probs.max(-1)
    correct = (pred == truth).double()
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    ece = 0.0
    for k in range(bins):
        inside = (conf.double() > edges[k]) & (conf.double() <= edges[k + 1])
        if k == 0:
            inside |= conf.double() == 0
        if inside.any():
            ece += float(inside.double().mean()) * abs(float(correct[inside].mean()) - float(conf[inside].double().mean()))
    return ece


def stream_stats(vectors: Sequence[torch.Tensor], quantile: float = 0.99) -> StreamStats:
    """Mean/std of training vectors and the distance threshold at ``quantile`` of their own distances."""
    x = torch.stack([v.float().cpu() for v in vectors])
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    d = (((x - mean) / std) ** 2).mean(1)
    return StreamStats(mean.tolist(), std.tolist(), float(torch.quantile(d, quantile)))
