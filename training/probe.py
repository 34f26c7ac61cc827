"""Frozen-feature reference: logistic regression on pooled encoder features (no fusion, no LLM).

Why: it tells how much label information the frozen encoders' audio and vision features carry for a data
set, which is the yardstick for what the trained fusion + adapter + LoRA path extracts from the same
features at the same data size. It is a diagnostic row of the ablation report, not a model the node runs
(it cannot read the transcript and produces no reasoning).

Features per clip (from the feature cache): mean and standard deviation of the real audio tokens, mean
of the temporal-view tokens, the global-view pooled vector; a missing modality is zeros, as in the model.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def pooled_features(enc) -> np.ndarray:
    """One row per clip of an EncodedBatch: [audio mean | audio std | temporal mean | global pooled]."""
    rows = []
    for i in range(len(enc)):
        n = int(enc.audio_mask[i].sum())
        audio = enc.audio_tokens[i, :n].float()
        a_mean = audio.mean(0) if n else enc.audio_tokens.new_zeros(enc.audio_tokens.shape[-1])
        a_std = audio.std(0) if n > 1 else enc.audio_tokens.new_zeros(enc.audio_tokens.shape[-1])
        temporal = enc.temporal_tokens[i].float().mean(0) * enc.temporal_mask[i]
        glob = enc.global_cls[i].float() * enc.global_mask[i]
        rows.append(np.concatenate([a_mean.numpy(), a_std.numpy(), temporal.numpy(), glob.numpy()]))
    return np.stack(rows)


def probe_predictions(cache, train_records: Sequence, test_records: Sequence, c: float = 0.1,
                      seed: int = 0) -> list[dict]:
    """Fit on ``train_records``' cached features, predict ``test_records``: [{"label", "probs"}] in the
    test records' label-space order (the format emotion_ros_training.evaluate.compute_metrics takes)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = list(test_records[0].label_space.labels)
    x_train = pooled_features(cache.batch(train_records))
    x_test = pooled_features(cache.batch(test_records))
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000, random_state=seed))
    clf.fit(x_train, [r.label for r in train_records])
    proba = clf.predict_proba(x_test)
    classes = list(clf.classes_)
    out = []
    for row in proba:
        probs = [float(row[classes.index(lab)]) if lab in classes else 0.0 for lab in labels]
        out.append({"label": labels[int(np.argmax(probs))], "probs": probs})
    return out
