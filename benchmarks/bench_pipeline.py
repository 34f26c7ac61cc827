"""Naive vs optimised per-window pipeline, measured in the same run, per stage, per profile.

One synthetic 640x480 @ 15 Hz camera + 16 kHz speech-like sequence (tests.helpers.synthetic) is cut
into overlapping windows (default window 2 s / hop 0.5 s) and every window goes through:

The engine is the one the node runs (emotion_ros.inference.InferenceEngine on the model's own stages); the
variants are its ``pipeline`` presets (emotion_ros.model.config.InferenceOptions), LLM in float32:

- ``naive``:     Whisper on the 30 s padded input, all 17 images encoded per window, one full LLM forward of
                 prompt + label per label, and the reasoning path re-encodes the window;
- ``reference``: no caches: real-length Whisper, every frame encoded, label set scored as one batch on a
                 repeated prefix cache;
- ``optimised``: every speed-up on (frame cache, real-length Whisper, prefix KV shared with reasoning,
                 whole label set in one tree-masked pass);
- optional ``optimised_ort`` (encoders + fusion/adapter on onnxruntime) and ``optimised_<precision>`` (the
  LLM in bfloat16 or ``mixed`` = bf16 prompt passes + int8 decode, model/precision.py; run last, each on
  a freshly built model, because the change is in place).
Settings (profile, checkpoint, window, hop) come from the node's PerceptionConfig (launch/perceive.yaml
unless --params-file), windows are cut by the node's Windower from the synthetic sensor stream; nano loads
the shipped trained adapters (checkpoint auto), i.e. the model the node deploys.

Reported per variant: stage times (audio enc, vision enc, fusion+adapter, LLM label), per-window latency
p50/p95, windows/s, real-time factor (mean service time / hop), label latency after window end for a
live stream (windows arrive at their end time and queue when the engine is busy), reasoning prefill ms
and decode tokens/s, peak RSS (psutil, sampled). llama.cpp decode tokens/s on the same LLM is measured
when llama-cpp-python is importable (see --llama-cpp). Writes out/bench/pipeline.json + pipeline.md.

    .venv/bin/python benchmarks/bench_pipeline.py --profiles tiny nano
"""
from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import torch  # noqa: E402

STAGES = ("audio_enc", "vision_enc", "fusion_adapter", "llm_label")
TRANSCRIPTS = ["I really did not expect that to happen today", None,
               "well, that is just great, thank you so much", "hmm okay"]


class PeakRSS:
    """Peak resident memory of this process while active (sampled every 10 ms)."""

    def __init__(self):
        self.proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self):
        self.peak = self.proc.memory_info().rss
        self._th = threading.Thread(target=self._run, daemon=True)
        self._th.start()
        return self

    def _run(self):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._th.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def pct(values, q):
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else float("nan")


def live_latency(windows, service_s, hop_s):
    """Label latency after window end when windows arrive at their end time and are served in order."""
    t0 = windows[0].end_ns / 1e9
    free = 0.0
    lat = []
    for w, s in zip(windows, service_s):
        arrive = w.end_ns / 1e9 - t0
        start = max(arrive, free)
        free = start + s
        lat.append(free - arrive)
    return lat


def run_variant(name, engine, windows, hop_s, reason_windows, reason_tokens):
    """Label path over all windows (fresh caches), then the reasoning path on a few windows."""
    cache = engine.model.vision_encoder.cache
    engine.process(copy.copy(windows[0]))  # warm-up (allocations, oneDNN primitive caches)
    if cache is not None:
        cache.clear()
    gc.collect()
    service, stages, labels, frames_encoded = [], {k: [] for k in STAGES}, [], []
    with PeakRSS() as rss:
        for w in windows:
            w = copy.copy(w)
            t = time.perf_counter()
            res = engine.process(w)
            service.append(time.perf_counter() - t)
            labels.append((res.label, [round(s, 6) for s in res.scores]))
            for k in STAGES:
                if k in res.stage_ms:
                    stages[k].append(res.stage_ms[k])
            if "frames_encoded" in res.stage_ms:
                frames_encoded.append(res.stage_ms["frames_encoded"])
        reasoning = []
        for w in windows[len(windows) // 2:len(windows) // 2 + reason_windows]:
            w = copy.copy(w)
            engine.process(w)  # the node runs the label first; with prefix_kv the window's KV is kept for it
            t = time.perf_counter()
            first = None
            text = ""
            for d in engine.stream_reasoning(w):
                if first is None:
                    first = time.perf_counter()
                text += d
            end = time.perf_counter()
            n_tok = len(engine.model.llm.text_ids(text)) if text else 0
            reasoning.append({"first_delta_ms": 1e3 * ((first or end) - t), "tokens": n_tok,
                              "decode_tok_s": (n_tok - 1) / (end - first) if first and n_tok > 1 and end > first
                              else float("nan")})
    total = sum(service)
    lat = live_latency(windows, service, hop_s)
    out = {
        "variant": name,
        "windows": len(windows),
        "stage_ms_mean": {k: float(np.mean(v)) for k, v in stages.items() if v},
        "latency_ms_p50": 1e3 * pct(service, 50),
        "latency_ms_p95": 1e3 * pct(service, 95),
        "windows_per_s": len(service) / total,
        "rtf": (total / len(service)) / hop_s,
        "label_latency_after_end_ms_p50": 1e3 * pct(lat, 50),
        "label_latency_after_end_ms_p95": 1e3 * pct(lat, 95),
        "reasoning_first_delta_ms": float(np.mean([r["first_delta_ms"] for r in reasoning])) if reasoning else None,
        "reasoning_tok_s": float(np.nanmean([r["decode_tok_s"] for r in reasoning])) if reasoning else None,
        "reasoning_tokens": [r["tokens"] for r in reasoning],
        "peak_rss_mb": rss.peak / 2 ** 20,
        "labels": labels,
    }
    if frames_encoded:
        out["images_encoded_per_window"] = float(np.mean(frames_encoded))
    if cache is not None:
        out["frame_cache"] = cache.stats()
    return out


def agreement(a, b):
    """Label agreement and max |prob difference| between two variants' outputs on the same windows."""
    same = sum(x[0] == y[0] for x, y in zip(a["labels"], b["labels"]))
    diff = max(max(abs(p - q) for p, q in zip(x[1], y[1])) for x, y in zip(a["labels"], b["labels"]))
    return {"label_agreement": same / len(a["labels"]), "max_prob_diff": diff}


def llama_cpp_decode(model, n_tokens: int, threads: int, gguf: str | None, out_dir: Path) -> dict | None:
    """llama.cpp prefill ms and greedy decode tokens/s on the same LLM, or None without llama-cpp-python.

    Files: ``--gguf`` if given; for the nano LLM (Gemma from the packaged Q4_K_M GGUF) the packaged file and
    the deployed model itself: the LLM with its trained LoRA merged, written in the packaged file's own
    storage types by inference.export.export_merged_gguf. ``model`` must still carry its LoRA."""
    try:
        import llama_cpp
    except ImportError:
        return None
    from parity_llama_cpp import llama_greedy

    results = {"version": llama_cpp.__version__}
    files = {}
    if gguf:
        files["given"] = gguf
    elif model.cfg.llm.kind == "gemma3-gguf":
        from emotion_ros.backbones.gemma_gguf import gemma_gguf_file
        from emotion_ros.inference.export import export_merged_gguf

        files["packaged_q4_k_m"] = str(gemma_gguf_file())
        if model.llm.has_lora:
            files["merged_lora_q4_k_m"] = str(export_merged_gguf(model.llm, gemma_gguf_file(),
                                                                 out_dir / "merged_lora_q4_k_m.gguf"))
    prompt = "The person in the video looks surprised because"
    for tag, path in files.items():
        llm = llama_cpp.Llama(model_path=path, n_ctx=512, n_threads=threads, seed=0, verbose=False)
        ids = llm.tokenize(prompt.encode(), add_bos=True)
        llama_greedy(llm, ids, 2)  # warm-up
        t = time.perf_counter()
        llama_greedy(llm, ids, 1)
        prefill = time.perf_counter() - t
        t = time.perf_counter()
        tokens = llama_greedy(llm, ids, n_tokens + 1)
        dt = time.perf_counter() - t - prefill
        results[tag] = {"file": path, "decode_tok_s": n_tokens / dt, "prefill_ms": 1e3 * prefill,
                        "prompt_tokens": len(ids), "text": llm.detokenize(tokens).decode("utf-8", "replace")}
        del llm
        gc.collect()
    return results


def torch_decode(model, n_tokens: int, step_model=None, step_dtype=None) -> dict:
    """PyTorch greedy decode tokens/s of the bare LLM on a short text prompt (same protocol as
    llama_cpp_decode); ``step_model`` = what an engine decodes with (the int8 copy under ``mixed``)."""
    llm = model.llm
    step = step_model or llm.model
    dtype = step_dtype or llm.dtype
    ids = ([llm.bos_id] if llm.bos_id is not None else []) + llm.text_ids("The person in the video looks surprised because")
    with torch.no_grad():
        out = step(inputs_embeds=llm.embed_ids([ids]).to(dtype), use_cache=True, logits_to_keep=1)
        cache, tok = out.cache, int(out.logits[0, -1].argmax())
        tokens = [tok]
        t = time.perf_counter()
        for _ in range(n_tokens):
            out = step(inputs_embeds=llm.embed_ids([[tok]]).to(dtype), cache=cache, use_cache=True)
            cache, tok = out.cache, int(out.logits[0, -1].argmax())
            tokens.append(tok)
        dt = time.perf_counter() - t
    return {"decode_tok_s": n_tokens / dt, "dtype": str(dtype), "text": llm.decode(tokens)}


def bench_profile(profile: str, args) -> dict:
    from dataclasses import replace

    from emotion_ros.config import PerceptionConfig
    from emotion_ros.inference.backends import make_backend
    from emotion_ros.inference.engine import InferenceEngine, load_model
    from tests.helpers.synthetic import synthetic_sequence, windows_from_windower

    config = PerceptionConfig.load(args.params_file, profile=profile, checkpoint=args.checkpoint, asr="never",
                                   window_s=args.window, hop_s=args.hop, reasoning_max_tokens=args.reason_tokens)
    cfg = replace(config.engine, llm_precision="float32")  # the speed-ups alone; precision variants below
    t = time.perf_counter()
    model, _, model_id, _ = load_model(cfg)
    build_s = time.perf_counter() - t
    frames, stamps, audio = synthetic_sequence(args.seconds, height=480, width=640, seed=0)
    w = config.windowing
    windows = windows_from_windower(frames, stamps, audio, w.window_s, w.hop_s, transcripts=TRANSCRIPTS)
    if args.max_windows:
        windows = windows[:args.max_windows]
    variants = {}
    order = args.variants
    for name in order:
        if name.startswith("optimised_") and name != "optimised_ort":
            continue  # precision variants last (each on a fresh model: they change it in place)
        print(f"[{profile}] {name} ...", flush=True)
        if name in ("naive", "reference", "optimised"):
            eng = InferenceEngine(model, replace(cfg, pipeline=name), model_id=model_id)
        elif name == "optimised_ort":
            be = make_backend("onnxruntime", model, onnx_dir=Path(args.out) / f"onnx_{profile}")
            eng = InferenceEngine(model, replace(cfg, pipeline="optimised"), model_id=model_id, backend=be)
        else:
            raise ValueError(name)
        variants[name] = _safe(run_variant, name, eng, windows, w.hop_s, args.reason_windows, args.reason_tokens)
        if name == "optimised_ort" and "error" not in variants[name]:
            variants[name]["backend"] = eng.backend.describe()
        _print_row(profile, variants[name])
    InferenceEngine(model, replace(cfg, pipeline="optimised"))  # back to the PyTorch stages
    torch_llm = {"float32": torch_decode(model, args.decode_tokens)}
    llama = None
    if args.llama_cpp:
        llama = llama_cpp_decode(model, args.decode_tokens, torch.get_num_threads(), args.gguf,
                                 Path(args.out) / f"gguf_{profile}")
    for name in order:
        if name.startswith("optimised_") and name != "optimised_ort":
            precision = name.split("_", 1)[1]
            print(f"[{profile}] {name} ...", flush=True)
            del model
            gc.collect()
            model = load_model(cfg)[0]
            eng = InferenceEngine(model, replace(cfg, pipeline="optimised", llm_precision=precision), model_id=model_id)
            variants[name] = _safe(run_variant, name, eng, windows, w.hop_s, args.reason_windows, args.reason_tokens)
            _print_row(profile, variants[name])
            torch_llm[precision] = _safe(torch_decode, model, args.decode_tokens, eng.precision.step_model,
                                         eng.precision.step_dtype)
    result = {"profile": profile, "build_s": build_s, "windows": len(windows), "window_s": w.window_s,
              "hop_s": w.hop_s, "sequence_s": args.seconds, "variants": variants, "torch_llm_decode": torch_llm}
    ok = {k: v for k, v in variants.items() if "error" not in v}
    if "naive" in ok:
        base = ok["naive"]
        for k, v in ok.items():
            v["speedup_vs_naive"] = base["latency_ms_p50"] / v["latency_ms_p50"]
            v["agreement_vs_naive"] = agreement(base, v)
    for base in ("reference", "optimised"):  # optimised: what the precision variants change
        if base in ok:
            for k, v in ok.items():
                v[f"speedup_vs_{base}"] = ok[base]["latency_ms_p50"] / v["latency_ms_p50"]
                v[f"agreement_vs_{base}"] = agreement(ok[base], v)
    if args.llama_cpp:
        result["llama_cpp"] = llama if llama is not None else {
            "missing": "llama-cpp-python is not installed; `.venv/bin/python benchmarks/parity_llama_cpp.py` "
                       "builds it (~7-10 min), then re-run this benchmark"}
    del model
    gc.collect()
    return result


def _safe(fn, *a):
    """Run one measurement; a failure is recorded in the report instead of losing the whole run."""
    try:
        return fn(*a)
    except Exception as exc:  # noqa: BLE001
        import traceback

        traceback.print_exc()
        return {"variant": a[0] if isinstance(a[0], str) else fn.__name__, "error": f"{type(exc).__name__}: {exc}"}


def _print_row(profile, v):
    if "error" in v:
        print(f"  {profile:5s} {v['variant']:16s} FAILED: {v['error']}", flush=True)
        return
    st = v["stage_ms_mean"]
    print(f"  {profile:5s} {v['variant']:16s} p50 {v['latency_ms_p50']:8.1f} ms  p95 {v['latency_ms_p95']:8.1f} ms  "
          f"RTF {v['rtf']:.2f}  " + " ".join(f"{k}={st[k]:.1f}" for k in st)
          + f"  reason {v['reasoning_tok_s'] or float('nan'):.1f} tok/s  RSS {v['peak_rss_mb']:.0f} MB", flush=True)


def markdown(report: dict) -> str:
    lines = [f"# Pipeline benchmark ({report['machine']['cpu']}, {report['machine']['threads']} torch threads, "
             f"load avg at start {report['machine']['loadavg_start']})", "",
             f"window {report['profiles'][0]['window_s']} s / hop {report['profiles'][0]['hop_s']} s, synthetic "
             f"{report['args']['seconds']} s sequence, 640x480 @ 15 Hz, transcripts given (ASR off).", "",
             "| profile | variant | audio enc ms | vision enc ms | fusion+adapter ms | LLM label ms | p50 ms | p95 ms "
             "| windows/s | RTF | label latency after end p50/p95 ms | speed-up vs naive | vs reference "
             "| reasoning tok/s | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for prof in report["profiles"]:
        for name, v in prof["variants"].items():
            if "error" in v:
                lines.append(f"| {prof['profile']} | {name} | failed: {v['error'][:80]} |" + " |" * 13)
                continue
            st = v["stage_ms_mean"]
            f = lambda k: f"{st[k]:.1f}" if k in st else "-"  # noqa: E731
            lines.append(
                f"| {prof['profile']} | {name} | {f('audio_enc')} | {f('vision_enc')} | {f('fusion_adapter')} | "
                f"{f('llm_label')} | {v['latency_ms_p50']:.1f} | {v['latency_ms_p95']:.1f} | {v['windows_per_s']:.2f} | "
                f"{v['rtf']:.2f} | {v['label_latency_after_end_ms_p50']:.0f} / {v['label_latency_after_end_ms_p95']:.0f} | "
                f"{v.get('speedup_vs_naive', float('nan')):.2f}x | {v.get('speedup_vs_reference', float('nan')):.2f}x | "
                f"{(v['reasoning_tok_s'] or float('nan')):.1f} | {v['peak_rss_mb']:.0f} |")
    lines.append("")
    for prof in report["profiles"]:
        lines.append(f"- {prof['profile']}: PyTorch bare-LLM decode " + ", ".join(
            f"{k} {d['decode_tok_s']:.1f} tok/s" for k, d in prof["torch_llm_decode"].items() if "decode_tok_s" in d))
        lc = prof.get("llama_cpp")
        if lc:
            if "missing" in lc:
                lines.append(f"- {prof['profile']}: llama.cpp: {lc['missing']}")
            else:
                lines.append(f"- {prof['profile']}: llama.cpp {lc['version']} decode " + ", ".join(
                    f"{k} {d['decode_tok_s']:.1f} tok/s" for k, d in lc.items() if isinstance(d, dict)))
                ref = lc.get("merged_lora_q4_k_m") or lc.get("given") or lc.get("packaged_q4_k_m")
                if ref:
                    lines.append(f"- {prof['profile']}: llama.cpp decode / engine reasoning tokens/s: " + ", ".join(
                        f"{name} {ref['decode_tok_s'] / v['reasoning_tok_s']:.2f}x"
                        for name, v in prof["variants"].items() if v.get("reasoning_tok_s")))
        for name, v in prof["variants"].items():
            for base in ("reference", "optimised"):
                if f"agreement_vs_{base}" in v and name != base and not (base == "optimised" and name == "reference"):
                    a = v[f"agreement_vs_{base}"]
                    lines.append(f"- {prof['profile']} {name} vs {base}: label agreement {a['label_agreement']:.2f}, "
                                 f"max |prob diff| {a['max_prob_diff']:.2g}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profiles", nargs="+", default=["tiny", "nano"], help="model profiles measured")
    ap.add_argument("--variants", nargs="+", default=["naive", "reference", "optimised", "optimised_ort"],
                    help="naive reference optimised optimised_ort optimised_<precision> (bfloat16, mixed: "
                         "emotion_ros/model/precision.py)")
    ap.add_argument("--seconds", type=float, default=12.0, help="length of the synthetic sequence (10-20 s)")
    ap.add_argument("--params-file", default=None, help="the node's parameter file (default launch/perceive.yaml)")
    ap.add_argument("--window", type=float, default=None, help="window length s (default: the params file's)")
    ap.add_argument("--hop", type=float, default=None, help="hop s (default: the params file's)")
    ap.add_argument("--max-windows", type=int, default=0, help="cap the windows per variant (0 = all)")
    ap.add_argument("--reason-windows", type=int, default=2, help="windows whose reasoning stream is timed")
    ap.add_argument("--reason-tokens", type=int, default=32, help="reasoning tokens generated per timed window")
    ap.add_argument("--decode-tokens", type=int, default=32, help="tokens of the bare LLM decode comparison")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--llama-cpp", action="store_true", help="also measure llama.cpp decode on the same LLM")
    ap.add_argument("--gguf", default=None, help="GGUF file of the merged LLM for --llama-cpp")
    ap.add_argument("--checkpoint", default=None,
                    help="trained weights (default: the params file's checkpoint, auto = the profile's shipped "
                         "adapters, none for tiny; '' = none)")
    ap.add_argument("--out", default=str(ROOT / "out" / "bench"), help="output folder (JSON + Markdown)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import warnings

    warnings.filterwarnings("ignore")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "threads": torch.get_num_threads(), "torch": torch.__version__,
                          "loadavg_start": [round(x, 2) for x in os.getloadavg()]},
              "args": vars(args), "profiles": []}
    for profile in args.profiles:
        report["profiles"].append(bench_profile(profile, args))
        (out / "pipeline.json").write_text(json.dumps(report, indent=1))
    report["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    (out / "pipeline.json").write_text(json.dumps(report, indent=1))
    md = markdown(report)
    (out / "pipeline.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
