"""Cold vs warm start-up of the nano profile's pretrained backbones.

Cold = an empty cache directory: every loader joins/checks its packaged files and converts them
(CTranslate2 -> safetensors, .pth -> safetensors, GGUF -> HF folder). Warm = the same cache again: the
loaders only read the cached safetensors. Each run is a fresh Python process (imports included);
``--profile`` also times ``build_model(get_profile("nano"))`` on the warm cache.

    .venv/bin/python benchmarks/bench_nano_startup.py [--profile] [--warm-runs 2]

The cold run takes a few minutes (the GGUF dequantisation dominates). Prints a Markdown table and
writes out/bench/nano_startup.json. Uses a temporary cache directory; the user cache is not touched.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
import torch, transformers  # noqa: F401  (import cost reported separately)
from emotion_ros import backbones
times = {{"imports": time.perf_counter() - t0}}
mode = {mode!r}
if mode == "backbones":
    for name, fn in [("whisper_encoder", backbones.load_whisper_encoder),
                     ("efficientnet", backbones.load_efficientnet),
                     ("gemma", backbones.load_gemma),
                     ("asr_transcriber", lambda: backbones.Transcriber())]:
        t = time.perf_counter()
        obj = fn()
        times[name] = time.perf_counter() - t
        del obj
else:
    from emotion_ros.model.config import get_profile
    from emotion_ros.model.emotion_llama import build_model
    t = time.perf_counter()
    model = build_model(get_profile("nano"))
    times["build_model_nano"] = time.perf_counter() - t
times["process_total"] = time.perf_counter() - t0
print("RESULT " + json.dumps(times))
"""


def run_child(mode: str, cache: Path) -> dict:
    env = {**os.environ, "EMOTION_ROS_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT), mode=mode)], env=env,
                          capture_output=True, text=True, cwd=str(ROOT))
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{mode} child failed:\n{proc.stderr[-3000:]}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    res = json.loads(line[len("RESULT "):])
    res["wall_incl_interpreter"] = wall
    return {k: round(v, 2) for k, v in res.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--warm-runs", type=int, default=2, help="warm starts timed after the cold one (best is kept)")
    ap.add_argument("--profile", action="store_true", help="also time build_model(get_profile('nano')) warm")
    ap.add_argument("--out", default=str(ROOT / "out" / "bench" / "nano_startup.json"), help="result JSON")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="emotion_ros_cache_") as tmp:
        cache = Path(tmp)
        cold = run_child("backbones", cache)
        warm = [run_child("backbones", cache) for _ in range(args.warm_runs)]
        profile = run_child("profile", cache) if args.profile else None
        size_mb = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file()) / 1e6
    best_warm = min(warm, key=lambda r: r["process_total"])
    result = {"cold": cold, "warm_runs": warm, "warm_best": best_warm, "profile_warm": profile,
              "cache_size_mb": round(size_mb, 1), "cpu_count": os.cpu_count(),
              "load_average_1m": round(os.getloadavg()[0], 2)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"\nnano backbones start-up, seconds (fresh process each; cache {size_mb:.0f} MB; "
          f"load average at end {result['load_average_1m']} on {os.cpu_count()} cores)\n")
    print("| step | cold (empty cache) | warm (best of %d) |" % len(warm))
    print("|---|---|---|")
    for key in ["imports", "whisper_encoder", "efficientnet", "gemma", "asr_transcriber", "process_total",
                "wall_incl_interpreter"]:
        print(f"| {key} | {cold[key]} | {best_warm[key]} |")
    if profile:
        print(f"| build_model(nano), warm | | {profile['build_model_nano']} |")
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
