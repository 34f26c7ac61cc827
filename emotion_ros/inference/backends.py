"""Runtime backends for the non-LLM part (audio encoder, image backbone, fusion+adapter) behind one interface.

- ``torch``: the model's own modules (reference).
- ``onnxruntime``: the graphs of ``export.export_onnx``; providers tried in the order TensorRT EP -> CUDA EP
  -> CPU EP. ``get_available_providers()`` lists GPU providers even on machines without a GPU (the
  onnxruntime-gpu wheel), so the provider that REALLY runs is read back from ``session.get_providers()``
  and reported in ``describe()``; a fallback is logged as a warning.
- ``tensorrt``: engines built from the same ONNX files (fp16 / int8 options). ``tensorrt`` is imported
  lazily; where it is missing, constructing the backend raises ``BackendUnavailable`` with one sentence
  saying so, and ``make_backend`` falls back (tensorrt -> onnxruntime -> torch) with a warning.

The LLM is not part of this interface: it runs in PyTorch (emotion_ros.model.llm; the measured CPU options
are in the benchmark report).
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

log = logging.getLogger("emotion_ros.inference")

BACKENDS = ("torch", "onnxruntime", "tensorrt")
ORT_PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run on this machine (missing package, device or files)."""


class Backend:
    """Another runtime for the non-LLM stages, installed into the model's own stages as their hooks:
    ``AudioEncoder.run_states`` (mel [B, n_mels, T] -> states [B, T/2, D]), ``MultiviewVisionEncoder.run_backbone``
    (pixels [N,3,S,S] -> grid, pooled) and ``EmotionLLaMA.run_projection`` (fusion + adapter). Mel, frame
    preprocessing, the frame cache, pooling and masks stay in the stages: one implementation of each."""

    name = "base"

    def audio_states(self, mel: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def vision_backbone(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def fusion_adapter(self, audio_tokens, temporal_tokens, global_cls, global_patches) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def install(self, model) -> None:
        model.audio_encoder.run_states = self.audio_states
        model.vision_encoder.run_backbone = self.vision_backbone
        model.run_projection = self.fusion_adapter

    def describe(self) -> dict:
        return {"backend": self.name}


class TorchBackend(Backend):
    """The model's own PyTorch modules (no hooks)."""

    name = "torch"

    def __init__(self, model):
        self.model = model

    def install(self, model) -> None:
        model.audio_encoder.run_states = None
        model.vision_encoder.run_backbone = None
        model.run_projection = None

    def describe(self):
        return {"backend": "torch", "device": str(self.model.device), "threads": torch.get_num_threads()}


# -- onnxruntime ---------------------------------------------------------------------------------------
def ort_providers(preferred: Sequence[str] = ORT_PROVIDER_ORDER) -> list:
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    chosen = [p for p in preferred if p in available]
    return chosen or ["CPUExecutionProvider"]


class OnnxRuntimeBackend(Backend):
    """onnxruntime sessions over the exported graphs (exported on first use if missing or stale)."""

    name = "onnxruntime"

    def __init__(self, model, onnx_dir: str | Path, providers: Sequence[str] = ORT_PROVIDER_ORDER,
                 threads: int | None = None, export_if_missing: bool = True):
        import onnxruntime as ort

        from emotion_ros.inference.export import export_onnx, onnx_files, onnx_up_to_date

        self.model = model
        self.dir = Path(onnx_dir)
        if not onnx_up_to_date(model, self.dir):
            if not export_if_missing:
                raise BackendUnavailable(f"no up-to-date ONNX export of this model in {self.dir}")
            log.info("exporting ONNX graphs to %s", self.dir)
            export_onnx(model, self.dir)
        files = onnx_files(model)
        requested = ort_providers(providers)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        self.sessions = {}
        for key, fname in files.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.sessions[key] = ort.InferenceSession(str(self.dir / fname), sess_options=opts,
                                                          providers=requested)
        self.requested = requested
        self.active = {k: s.get_providers()[0] for k, s in self.sessions.items()}
        first = next(iter(self.active.values()))
        if requested[0] != first:
            warnings.warn(f"onnxruntime: requested {requested[0]} but {first} really runs "
                          f"(session.get_providers())", RuntimeWarning, stacklevel=2)
        log.info("onnxruntime providers really running: %s", self.active)
        v = model.vision_encoder
        self._vision_key = {v.global_size: f"vision_{v.global_size}", v.temporal_size: f"vision_{v.temporal_size}"}
        self.device = model.device

    def _run(self, key: str, feeds: dict) -> list[np.ndarray]:
        return self.sessions[key].run(None, {k: np.ascontiguousarray(t.detach().float().cpu().numpy())
                                             for k, t in feeds.items()})

    def _t(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).to(self.device)

    def audio_states(self, mel):
        return self._t(self._run("audio", {"mel": mel})[0])

    def vision_backbone(self, pixels):
        key = self._vision_key.get(int(pixels.shape[-1]))
        if key is None:
            raise ValueError(f"no ONNX vision graph for size {pixels.shape[-1]}")
        grid, pooled = self._run(key, {"pixels": pixels})
        return self._t(grid), self._t(pooled)

    def fusion_adapter(self, audio_tokens, temporal_tokens, global_cls, global_patches):
        outs = self._run("fusion_adapter", {"audio_tokens": audio_tokens, "temporal_tokens": temporal_tokens,
                                            "global_cls": global_cls, "global_patches": global_patches})
        return {k: self._t(o) for k, o in zip(("fusion", "image", "video", "audio"), outs)}

    def describe(self):
        return {"backend": "onnxruntime", "requested_providers": list(self.requested),
                "active_providers": dict(self.active), "onnx_dir": str(self.dir)}


# -- TensorRT ------------------------------------------------------------------------------------------
def _import_tensorrt():
    try:
        import tensorrt as trt  # noqa: F401
    except Exception as exc:  # ImportError, or missing CUDA libraries behind the module
        raise BackendUnavailable("TensorRT is not available here (the `tensorrt` Python package and an NVIDIA "
                                 f"GPU with CUDA are required): {exc}") from exc
    if not torch.cuda.is_available():
        raise BackendUnavailable("TensorRT needs an NVIDIA GPU with CUDA, and torch sees none")
    return trt


def build_tensorrt_engine(onnx_path: str | Path, engine_path: str | Path, fp16: bool = True, int8: bool = False,
                          calibration: Sequence[dict] | None = None, max_batch: int = 32,
                          workspace_gb: float = 2.0) -> Path:
    """Build a serialized TensorRT engine from one ONNX file with a dynamic-batch optimisation profile.

    fp16: allow half-precision kernels. int8: also INT8 kernels, calibrated on ``calibration`` (a list of
    feed dicts name -> np.ndarray, e.g. ~100 windows of real inputs) with an entropy calibrator.
    """
    trt = _import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if int8:
        if not calibration:
            raise ValueError("int8 needs calibration inputs (a list of feed dicts)")
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = _make_calibrator(trt, calibration, Path(engine_path).with_suffix(".calib"))
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        inp = network.get_input(i)
        shape = list(inp.shape)
        rest = [d if d > 0 else None for d in shape[1:]]
        if any(d is None for d in rest):
            raise ValueError(f"input {inp.name} has dynamic non-batch axes {shape}: export with fixed shapes "
                             "for TensorRT or extend the profile")
        profile.set_shape(inp.name, [1] + rest, [max(1, max_batch // 2)] + rest, [max_batch] + rest)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
    Path(engine_path).write_bytes(bytes(serialized))
    return Path(engine_path)


def _make_calibrator(trt, batches: Sequence[dict], cache_file: Path):
    class _Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()
            self.batches = list(batches)
            self.i = 0
            self.buffers = {}

        def get_batch_size(self):
            return int(next(iter(self.batches[0].values())).shape[0])

        def get_batch(self, names):
            if self.i >= len(self.batches):
                return None
            feed = self.batches[self.i]
            self.i += 1
            self.buffers = {n: torch.from_numpy(np.ascontiguousarray(feed[n])).cuda() for n in names}
            return [int(self.buffers[n].data_ptr()) for n in names]

        def read_calibration_cache(self):
            return cache_file.read_bytes() if cache_file.exists() else None

        def write_calibration_cache(self, cache):
            cache_file.write_bytes(bytes(cache))

    return _Calibrator()


class _TrtRunner:
    """One deserialized engine; I/O through CUDA torch tensors."""

    def __init__(self, trt, engine_path: Path):
        self.trt = trt
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
        self.context = self.engine.create_execution_context()
        self.names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in self.names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in self.names if n not in self.inputs]

    def __call__(self, feeds: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        stream = torch.cuda.current_stream()
        keep = {}
        for n in self.inputs:
            t = feeds[n].detach().float().cuda().contiguous()
            keep[n] = t
            self.context.set_input_shape(n, tuple(t.shape))
            self.context.set_tensor_address(n, t.data_ptr())
        outs = []
        for n in self.outputs:
            o = torch.empty(tuple(self.context.get_tensor_shape(n)), dtype=torch.float32, device="cuda")
            self.context.set_tensor_address(n, o.data_ptr())
            outs.append(o)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        stream.synchronize()
        return outs


class TensorRTBackend(Backend):
    """TensorRT engines built from the ONNX export (the audio graph is built for the deployment window
    length: TensorRT wants fixed non-batch shapes here, so other lengths fall back to the ONNX session)."""

    name = "tensorrt"

    def __init__(self, model, onnx_dir: str | Path, fp16: bool = True, int8: bool = False,
                 calibration: dict | None = None):
        trt = _import_tensorrt()
        from emotion_ros.inference.export import export_onnx, onnx_files, onnx_up_to_date

        self.model = model
        self.dir = Path(onnx_dir)
        if not onnx_up_to_date(model, self.dir):
            export_onnx(model, self.dir)
        self.runners = {}
        tag = ("int8" if int8 else "fp16" if fp16 else "fp32")
        for key, fname in onnx_files(model).items():
            if key == "audio":
                continue  # dynamic frame axis: kept on onnxruntime (see class docstring)
            engine = self.dir / f"{Path(fname).stem}.{tag}.engine"
            if not engine.exists():
                build_tensorrt_engine(self.dir / fname, engine, fp16=fp16, int8=int8,
                                      calibration=(calibration or {}).get(key))
            self.runners[key] = _TrtRunner(trt, engine)
        self._ort = OnnxRuntimeBackend(model, self.dir)
        v = model.vision_encoder
        self._vision_key = {v.global_size: f"vision_{v.global_size}", v.temporal_size: f"vision_{v.temporal_size}"}
        self.precision = tag

    def audio_states(self, mel):
        return self._ort.audio_states(mel)

    def vision_backbone(self, pixels):
        grid, pooled = self.runners[self._vision_key[int(pixels.shape[-1])]]({"pixels": pixels})
        return grid.to(self.model.device), pooled.to(self.model.device)

    def fusion_adapter(self, audio_tokens, temporal_tokens, global_cls, global_patches):
        outs = self.runners["fusion_adapter"]({"audio_tokens": audio_tokens, "temporal_tokens": temporal_tokens,
                                               "global_cls": global_cls, "global_patches": global_patches})
        return {k: o.to(self.model.device) for k, o in zip(("fusion", "image", "video", "audio"), outs)}

    def describe(self):
        return {"backend": "tensorrt", "precision": self.precision, "onnx_dir": str(self.dir),
                "audio": self._ort.describe()}


# -- choice with fallback ----------------------------------------------------------------------------------
def make_backend(name: str, model, onnx_dir: str | Path | None = None, **options) -> Backend:
    """The requested backend, or the next one down (tensorrt -> onnxruntime -> torch) with a warning."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}")
    chain = {"torch": ["torch"], "onnxruntime": ["onnxruntime", "torch"],
             "tensorrt": ["tensorrt", "onnxruntime", "torch"]}[name]
    errors = []
    for cand in chain:
        try:
            if cand == "torch":
                backend = TorchBackend(model)
            elif cand == "onnxruntime":
                backend = OnnxRuntimeBackend(model, _onnx_dir(model, onnx_dir), **_only(options, "providers", "threads"))
            else:
                backend = TensorRTBackend(model, _onnx_dir(model, onnx_dir), **_only(options, "fp16", "int8", "calibration"))
        except Exception as exc:  # noqa: BLE001 - any failure means: fall back, loudly
            errors.append(f"{cand}: {exc}")
            warnings.warn(f"backend {cand!r} unavailable, falling back: {exc}", RuntimeWarning, stacklevel=2)
            log.warning("backend %s unavailable (%s); falling back", cand, exc)
            continue
        log.info("runtime backend: %s %s", cand, backend.describe())
        backend.fallbacks = errors
        return backend
    raise BackendUnavailable("no backend could be created: " + "; ".join(errors))


def _only(options: dict, *keys) -> dict:
    return {k: v for k, v in options.items() if k in keys}


def _onnx_dir(model, onnx_dir):
    if onnx_dir:
        return Path(onnx_dir)
    import os

    from emotion_ros.inference.export import weights_fingerprint

    base = Path(os.environ.get("EMOTION_ROS_CACHE", Path.home() / ".cache" / "emotion_ros")) / "onnx"
    return base / f"{model.cfg.name}-{weights_fingerprint(model)}"
