"""Loss curves from the JSONL metrics log(s) of emotion_ros_training.train, as a PNG (matplotlib, no display).

    python -m emotion_ros_training.plots RUN/stage1/metrics.jsonl RUN/stage2/metrics.jsonl --out RUN/loss.png

Several logs (stages) are drawn one after the other on a common step axis, each in its own colour,
with the learning rate on a second axis; a moving average smooths the noisy per-step loss.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np


def read_log(path) -> list[dict]:
    """Training lines (kind == "train") of a metrics.jsonl, in step order; unreadable lines skipped."""
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("kind") == "train" and "loss" in rec:
            rows.append(rec)
    rows.sort(key=lambda r: r["step"])
    return rows


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if window <= 1 or len(v) < 2:
        return v
    window = min(window, len(v))
    c = np.cumsum(np.insert(v, 0, 0.0))
    out = np.empty_like(v)
    for i in range(len(v)):
        lo = max(0, i - window + 1)
        out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
    return out


def plot_losses(paths, out, title: str | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if isinstance(paths, (str, Path)):
        paths = [paths]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    ax2 = ax.twinx()
    offset = 0
    drawn = 0
    for path in paths:
        rows = read_log(path)
        if not rows:
            continue
        stage = rows[0].get("stage", Path(path).parent.name)
        steps = np.array([r["step"] for r in rows]) + offset
        loss = [r["loss"] for r in rows]
        line, = ax.plot(steps, loss, alpha=0.3, lw=0.8)
        ax.plot(steps, smooth(loss, max(1, len(loss) // 20)), color=line.get_color(), lw=1.8,
                label=f"stage {stage} loss")
        ax2.plot(steps, [r["lr"] for r in rows], color=line.get_color(), ls=":", lw=1.0)
        offset = int(steps[-1])
        drawn += 1
    if not drawn:
        plt.close(fig)
        raise ValueError(f"no training lines in {list(map(str, paths))}")
    ax.set_xlabel("optimizer step (stages concatenated)")
    ax.set_ylabel("LM loss on target tokens")
    ax2.set_ylabel("learning rate (dotted)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    ax.set_title(title or "training loss")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m emotion_ros_training.plots", description=__doc__.split("\n\n")[0])
    ap.add_argument("logs", nargs="+", help="metrics.jsonl files (RUN/stage<S>/metrics.jsonl), in stage order")
    ap.add_argument("--out", required=True, help="PNG file to write")
    ap.add_argument("--title", help="plot title (default: 'training loss')")
    return ap


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    missing = [p for p in ns.logs if not Path(p).is_file()]
    if missing:  # one sentence, not a FileNotFoundError traceback
        print(f"error: metrics log {', '.join(missing)} not found (emotion_ros_training.train writes "
              f"RUN/stage<S>/metrics.jsonl)", file=sys.stderr)
        return 2
    try:
        print(plot_losses(ns.logs, ns.out, ns.title))
    except ValueError as e:  # logs without a single training line
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
